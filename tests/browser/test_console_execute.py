"""The device page's log buttons end to end: Chromium -> console (gunicorn) -> execute service
-> salt-api -> salt-master -> minion with its own Docker engine -> the output on the page.
One daemon set for the module (the session's salt fixtures)."""

from __future__ import annotations

import pytest
import requests

from tests.fixtures.api import ApiFactory
from tests.fixtures.browser import (
    ConsoleServer,
    migrated_sqlite_app,
    screenshot,
    start_gunicorn,
    stop_gunicorn,
)
from tests.fixtures.salt import LOGS_LINE

pytestmark = [pytest.mark.salt_daemons, pytest.mark.docker]


@pytest.fixture(scope="module")
def console_server(tmp_path_factory, salt_api, salt_minions):
    """The console (gunicorn) talking to the session's salt-api; the first minion a device."""
    workdir = tmp_path_factory.mktemp("console-execute")
    app, url = migrated_sqlite_app(workdir)
    factory = ApiFactory(app)
    account = factory.account("console-exec")
    user = factory.user(account, email="exec@example.com", password="console-pass-1")
    env = {**salt_api.env(), "BERTH_SALT_API_TIMEOUT": "60"}
    proc, base, log_path = start_gunicorn(url, workdir, env_extra=env)
    device = factory.device(account, unit_id=salt_minions[0].id)
    try:
        yield ConsoleServer(base, app, factory, account, user, log_path, {"device": device})
    finally:
        stop_gunicorn(proc)


def test_docker_logs_on_a_device_shows_its_output(page, console_server, logs_container):
    device = console_server.extra["device"]
    page.goto(f"{console_server.url}/ui/devices/{device.id}/")
    page.get_by_label("Container").fill(logs_container)
    page.get_by_role("button", name="docker.logs").click()
    output = page.locator("#exec-output pre.output")
    output.wait_for(timeout=90_000)  # htmx polls the job until the minion returned
    assert LOGS_LINE in output.inner_text()
    assert page.locator("#exec-output .job").get_attribute("data-state") == "COMMAND_EXECUTED"
    screenshot(page, "device-logs")

    # minionutil.last_logs: the minion's own log lines
    page.get_by_role("button", name="minionutil.last_logs").click()
    page.locator(
        '#exec-output .job[data-state="COMMAND_EXECUTED"]', has_text="minionutil.last_logs"
    ).wait_for(timeout=90_000)


def test_a_refused_function_shows_the_apis_message(page, console_server):
    result = console_server.app.test_cli_runner().invoke(
        args=["accounts", "commands", console_server.account.name, "--allow", "test.ping"]
    )
    assert result.exit_code == 0, result.output
    device = console_server.extra["device"]
    try:
        page.goto(f"{console_server.url}/ui/devices/{device.id}/")
        page.get_by_role("button", name="minionutil.last_logs").click()
        error = page.locator("#exec-output .error")
        error.wait_for()
        token = console_server.factory.token("user", user=console_server.user)
        api = requests.post(
            f"{console_server.url}/dongle/devices/{device.id}/execute/",
            json={"command": "minionutil.last_logs"},
            headers=token.headers,
            timeout=30,
        )
        assert api.status_code == 403
        assert error.inner_text() == api.json()["detail"]
    finally:
        console_server.app.test_cli_runner().invoke(
            args=["accounts", "commands", console_server.account.name, "--default"]
        )
