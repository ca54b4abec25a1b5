"""Execute through the API end to end with real daemons: API (real database) -> salt-api
(rest_cherrypy, sharedsecret eauth) -> salt-master -> minion (own dockerd) -> job cache ->
API poll, and signed webhooks delivered by a real ``flask --app api worker`` process.
Also: the outbox reaching real minions (refresh_pillar, then docker.release_pull)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select, update

from api.deployments.service import enqueue_release_notification
from api.execute.webhooks import SIGNATURE_HEADER, verify
from api.extensions import db
from api.outbox import OutboxMessage
from api.salt_client import SaltApiClient
from api.types import utcnow
from api.worker import run_once
from tests.fixtures.api import TEST_SECRET_KEY
from tests.fixtures.salt import LOGS_LINE

pytestmark = [pytest.mark.salt_daemons, pytest.mark.docker, pytest.mark.db]

REPO = pathlib.Path(__file__).resolve().parents[2]
TESTBED = REPO / "scripts" / "testbed"


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture
def fleet(app, client, api_factory, account, user_token, salt_api, salt_minions):
    # A generous timeout: a loaded CI machine can make the master slow to publish.
    app.config.update(salt_api.env(), BERTH_SALT_API_TIMEOUT="60")
    devices = [api_factory.device(account, unit_id=m.id) for m in salt_minions]
    # these tests exercise the execute machinery with test.sleep/test.echo: widen the safe default
    result = app.test_cli_runner().invoke(
        args=["accounts", "commands", account.name]
        + ["--allow", "test.*", "--allow", "minionutil.*", "--allow", "docker.*"]
    )
    assert result.exit_code == 0, result.output
    return {"headers": user_token.headers, "devices": devices, "account": account}


class Receiver:
    """A real HTTP server receiving webhooks; answers the queued statuses, then 200."""

    def __init__(self, statuses=()):
        self.calls: list[tuple[dict, bytes]] = []
        self.statuses = list(statuses)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.calls.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(statuses=()):
        made.append(Receiver(statuses))
        return made[-1]

    yield make
    for r in made:
        r.close()


@pytest.fixture
def worker(app, api_database_url, salt_api, tmp_path):
    """``flask --app api worker`` as a real process on the test database."""
    env = {
        **os.environ,
        **salt_api.env(),
        "BERTH_SALT_API_TIMEOUT": "60",
        "BERTH_WEBHOOK_ALLOW_PRIVATE_TARGETS": "1",
        "DATABASE_URL": api_database_url,
        "BERTH_SECRET_KEY": TEST_SECRET_KEY,
        "BERTH_INSTANCE_PATH": str(tmp_path / "worker-instance"),
    }
    log = open(tmp_path / "worker.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "api", "worker", "--interval", "0.2"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    proc.log_path = tmp_path / "worker.log"
    yield proc
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def webhook_secret(app, account) -> str:
    result = app.test_cli_runner().invoke(args=["accounts", "webhook-secret", account.name])
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {str(last)[:1500]}")


def poll(client, headers, device, jid, timeout=60):
    def done():
        resp = client.get(f"/dongle/devices/{device.id}/execute/{jid}/", headers=headers)
        assert resp.status_code == 200, resp.json
        return resp.json if resp.json["state"] != "PENDING" else None

    return wait_until(done, timeout, f"job {jid} on {device.unit_id}")


# -- execute and poll -----------------------------------------------------------------


def test_execute_returns_202_at_once_then_poll_gives_the_return(client, fleet):
    device = fleet["devices"][0]
    started = time.monotonic()
    resp = client.post(
        f"/dongle/devices/{device.id}/execute/",
        json={"command": "test.sleep", "arg": [10]},
        headers=fleet["headers"],
    )
    assert resp.status_code == 202, resp.json
    assert time.monotonic() - started < 10  # never waits for the device (the command takes 10 s)
    assert resp.json["minions"] == [device.unit_id] and resp.json["jid"]
    pending = client.get(
        f"/dongle/devices/{device.id}/execute/{resp.json['jid']}/", headers=fleet["headers"]
    ).json
    assert pending["state"] == "PENDING"
    result = poll(client, fleet["headers"], device, resp.json["jid"])
    assert result["state"] == "COMMAND_EXECUTED"
    assert result["response"] == {
        "fun": "test.sleep",
        "fun_args": [10],
        "return": True,
        "retcode": 0,
        "success": True,
    }


def test_execute_raw_docker_logs(client, fleet, logs_container):
    device = fleet["devices"][0]
    resp = client.post(
        f"/dongle/devices/{device.id}/execute_raw/",
        json={"command": f"docker.logs {logs_container} tail=10"},
        headers=fleet["headers"],
    )
    assert resp.status_code == 202, resp.json
    result = poll(client, fleet["headers"], device, resp.json["jid"])
    response = result["response"]
    assert result["state"] == "COMMAND_EXECUTED" and response["success"] is True, response
    assert response["fun"] == "docker.logs"
    assert LOGS_LINE in json.dumps(response["return"])


def test_execute_minionutil_last_logs(client, fleet):
    device = fleet["devices"][1]
    resp = client.post(
        f"/dongle/devices/{device.id}/execute/",
        json={"command": "minionutil.last_logs", "kwarg": {"limit": 20}},
        headers=fleet["headers"],
    )
    assert resp.status_code == 202, resp.json
    result = poll(client, fleet["headers"], device, resp.json["jid"])
    assert result["state"] == "COMMAND_EXECUTED" and result["response"]["success"] is True, result
    assert result["response"]["return"]  # the minion's own log lines


def test_failing_command_reports_retcode(client, fleet):
    device = fleet["devices"][0]
    resp = client.post(
        f"/dongle/devices/{device.id}/execute/",
        json={"command": "docker.logs", "arg": ["no-such-container"]},
        headers=fleet["headers"],
    )
    assert resp.status_code == 202, resp.json
    result = poll(client, fleet["headers"], device, resp.json["jid"])
    assert result["state"] == "COMMAND_EXECUTED"
    assert result["response"]["success"] is False and result["response"]["retcode"] != 0


def test_timeout(client, fleet):
    device = fleet["devices"][0]
    resp = client.post(
        f"/dongle/devices/{device.id}/execute/",
        json={"command": "test.sleep", "arg": [10], "callback_timeout": 1},
        headers=fleet["headers"],
    )
    assert resp.status_code == 202
    time.sleep(1.5)
    result = client.get(
        f"/dongle/devices/{device.id}/execute/{resp.json['jid']}/", headers=fleet["headers"]
    ).json
    assert result["state"] == "TIMEOUT" and result["response"]["return"] is None


def test_another_accounts_device_is_404_and_forbidden_command_403(app, client, fleet, api_factory):
    other_account = api_factory.account()
    other_token = api_factory.token("user", account=other_account)
    device = fleet["devices"][0]
    resp = client.post(
        f"/dongle/devices/{device.id}/execute/",
        json={"command": "test.ping"},
        headers=other_token.headers,
    )
    assert resp.status_code == 404
    runner = app.test_cli_runner()
    assert (
        runner.invoke(
            args=["accounts", "commands", fleet["account"].name, "--allow", "docker.*"]
        ).exit_code
        == 0
    )
    resp = client.post(
        f"/dongle/devices/{device.id}/execute_raw/",
        json={"command": "cmd.run 'cat /etc/shadow'"},
        headers=fleet["headers"],
    )
    assert resp.status_code == 403
    assert (
        resp.json["detail"]
        == 'This account may not execute "cmd.run" (allowed commands: docker.*).'
    )


def test_device_without_accepted_minion_key_is_409(client, fleet, api_factory):
    ghost = api_factory.device(fleet["account"], unit_id=f"ghost-{uuid.uuid4().hex[:6]}")
    resp = client.post(
        f"/dongle/devices/{ghost.id}/execute/",
        json={"command": "test.ping"},
        headers=fleet["headers"],
    )
    assert resp.status_code == 409 and ghost.unit_id in resp.json["detail"]


# -- webhooks through the real worker ----------------------------------------------------


def test_webhook_is_signed_and_retried(app, client, fleet, receiver, worker):
    secret = webhook_secret(app, fleet["account"])
    hook = receiver(statuses=[500])  # first delivery fails, the retry succeeds
    device = fleet["devices"][1]
    resp = client.post(
        f"/dongle/devices/{device.id}/execute/",
        json={
            "command": "test.echo",
            "arg": ["webhook!"],
            "callback_url": hook.url,
            "callback_timeout": 60,
        },
        headers=fleet["headers"],
    )
    assert resp.status_code == 202, resp.json
    jid = resp.json["jid"]
    wait_until(lambda: len(hook.calls) >= 2, 60, f"two webhook deliveries (log: {worker.log_path})")
    for headers, body in hook.calls:
        assert verify(secret, body, headers[SIGNATURE_HEADER]), headers
        assert not verify("whsec_wrong", body, headers[SIGNATURE_HEADER])
    payload = json.loads(hook.calls[-1][1])
    assert payload == {
        "jid": jid,
        "device_id": device.id,
        "state": "COMMAND_EXECUTED",
        "response": {
            "fun": "test.echo",
            "fun_args": ["webhook!"],
            "return": "webhook!",
            "retcode": 0,
            "success": True,
        },
    }
    time.sleep(2)
    assert len(hook.calls) == 2  # delivered once it was accepted, not again


def test_webhook_on_timeout(app, client, fleet, receiver, worker):
    secret = webhook_secret(app, fleet["account"])
    hook = receiver()
    device = fleet["devices"][0]
    resp = client.post(
        f"/dongle/devices/{device.id}/execute/",
        json={
            "command": "test.sleep",
            "arg": [30],
            "callback_url": hook.url,
            "callback_timeout": 2,
        },
        headers=fleet["headers"],
    )
    wait_until(lambda: hook.calls, 30, "the TIMEOUT webhook")
    headers, body = hook.calls[0]
    assert verify(secret, body, headers[SIGNATURE_HEADER])
    assert json.loads(body)["state"] == "TIMEOUT" and json.loads(body)["jid"] == resp.json["jid"]


# -- the outbox reaching real minions ------------------------------------------------------


def test_outbox_survives_salt_api_outage_then_reaches_the_minions(app, fleet, salt_api):
    unit_ids = [d.unit_id for d in fleet["devices"]]
    salt_env = salt_api.env()
    app.config.update(
        BERTH_SALT_API_URL="http://127.0.0.1:9", BERTH_SALT_API_TIMEOUT="1"
    )  # salt-api "down"
    with app.app_context():
        enqueue_release_notification(4242, unit_ids + ["never-accepted-minion"])
        db.session.commit()
        run_once()
        msg = db.session.scalars(select(OutboxMessage)).one()
        assert msg.delivered_at is None and msg.attempts == 1 and "unreachable" in msg.last_error

    app.config.update(
        salt_env, BERTH_SALT_API_TIMEOUT="60", BERTH_OUTBOX_STEP_WAIT="60"
    )  # salt-api back
    with app.app_context():
        db.session.execute(
            update(OutboxMessage).values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()

        def delivered():
            run_once()
            row = db.session.scalars(select(OutboxMessage)).one()
            db.session.refresh(row)
            return row if row.delivered_at else None

        msg = wait_until(delivered, 90, "the outbox message to be delivered")
        refresh_jid, pull_jid = msg.payload["jids"]

    client = SaltApiClient(salt_api.url, salt_api.username, salt_api.password, salt_api.eauth)
    refresh = client.job(refresh_jid)
    assert refresh.fun == "saltutil.refresh_pillar"
    assert sorted(refresh.minions) == sorted(unit_ids)
    assert all(refresh.returns[u].ret is True for u in unit_ids)  # step 2 only after both refreshed
    pull = wait_until(
        lambda: (j := client.job(pull_jid)) and set(j.returns) == set(unit_ids) and j,
        120,
        "release_pull",
    )
    assert pull.fun == "docker.release_pull"
