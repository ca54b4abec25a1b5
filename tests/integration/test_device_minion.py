"""A real salt-minion running the berth_localapi engine, and salt-call minionutil
reading the log file that minion really wrote."""

import os
import pathlib
import shutil
import socket
import subprocess
import time
import uuid

import pytest
import requests

from berth import localapi
from tests.fixtures.salt import LOGS_LINE, local_api_headers, printed_container

pytestmark = [pytest.mark.salt_daemons]

REPO = pathlib.Path(__file__).resolve().parents[2]
TESTBED = REPO / "scripts" / "testbed"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url, timeout=60):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            return requests.get(url, timeout=5)
        except requests.ConnectionError as exc:
            last = exc
            time.sleep(0.3)
    raise AssertionError(f"the local API at {url} did not answer within {timeout}s: {last}")


@pytest.fixture(scope="module")
def device_master(salt_factories):
    factory = salt_factories.salt_master_daemon(
        f"berth-device-master-{uuid.uuid4().hex[:8]}", overrides={"log_level_logfile": "info"}
    )
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="module")
def localapi_port():
    return free_port()


@pytest.fixture(scope="module")
def device_minion(device_master, localapi_port):
    overrides = {
        "module_dirs": [str(REPO)],
        "log_level_logfile": "info",
        # the engine's machinery with test.* / custom states: every command (the safe default
        # is tested in tests/functional/test_security_localapi.py)
        "engines": [
            {"berth_localapi": {"host": "127.0.0.1", "commands": ["*"], "port": localapi_port}}
        ],
    }
    factory = device_master.salt_minion_daemon(str(uuid.uuid4()), overrides=overrides)
    with factory.started(start_timeout=120):
        factory.localapi_url = f"http://127.0.0.1:{localapi_port}"
        wait_for_http(factory.localapi_url + "/")
        yield factory


@pytest.fixture(scope="module")
def salt_call(device_minion):
    return device_minion.salt_call_cli(timeout=120)


def eventually(check, timeout=20):
    """Log lines of the engine process reach the log file through the minion's
    logging queue, a moment after they were emitted: retry ``check`` briefly."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def execute(device_minion, body, unit=None):
    unit = unit or device_minion.id
    return requests.post(
        f"{device_minion.localapi_url}/dongle/{unit}/execute/",
        json=body,
        headers=local_api_headers(device_minion),
        timeout=120,
    )


def test_root_answers_the_unit_id(device_minion):
    resp = requests.get(device_minion.localapi_url + "/", timeout=10)
    assert resp.status_code == 200
    assert resp.json() == {"unit_id": device_minion.id}


def test_unit_id_is_also_in_the_minion_id_file(device_minion):
    path = localapi.minion_id_path(device_minion.config)
    assert localapi.read_minion_id(path) == device_minion.id


def test_execute_test_echo(device_minion):
    resp = execute(device_minion, {"command": "test.echo", "arg": ["hello device"], "kwarg": {}})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["state"] == "COMMAND_EXECUTED" and body["jid"]
    assert body["response"] == {
        "fun": "test.echo",
        "fun_args": ["hello device"],
        "return": "hello device",
        "retcode": 0,
        "success": True,
    }


def test_execute_raw_command_line(device_minion):
    resp = requests.post(
        f"{device_minion.localapi_url}/dongle/{device_minion.id}/execute_raw/",
        json={"command": "minionutil.last_logs match='Setting up the Salt Minion' count=1"},
        timeout=120,
    )
    assert resp.status_code == 200, resp.text
    response = resp.json()["response"]
    assert response["fun_args"] == [
        {"match": "Setting up the Salt Minion", "count": 1, "__kwarg__": True}
    ]
    assert len(response["return"]) == 1 and device_minion.id in response["return"][0]


def test_execute_minionutil_unit_id(device_minion):
    resp = execute(device_minion, {"command": "minionutil.unit_id", "arg": [], "kwarg": {}})
    assert resp.json()["response"]["return"] == device_minion.id


def test_execute_minionutil_last_logs_reads_the_minions_own_log(device_minion):
    # The engine logged this line itself when it started listening.
    body = {
        "command": "minionutil.last_logs",
        "arg": [],
        "kwarg": {"match": "berth_localapi on .*listening", "count": 1},
    }

    def found():
        response = execute(device_minion, body).json()["response"]
        return response if response["return"] else None

    response = eventually(found) or execute(device_minion, body).json()["response"]
    assert response["success"] is True, response
    assert len(response["return"]) == 1
    assert (
        f"berth_localapi on {device_minion.id}: listening on {device_minion.localapi_url}/"
        in response["return"][0]
    )


def test_wrong_unit_id_is_refused_and_logged(device_minion, salt_call):
    resp = execute(device_minion, {"command": "test.echo", "arg": ["x"]}, unit="not-this-device")
    assert resp.status_code == 403
    assert "not-this-device" in resp.json()["detail"]

    def logged():
        ret = salt_call.run(
            "minionutil.last_logs",
            "match=refused a command meant for unit 'not-this-device'",
            "count=1",
        )
        assert ret.returncode == 0, ret
        return ret.data

    assert len(eventually(logged)) == 1


def test_malformed_body_is_400_naming_the_field(device_minion):
    resp = execute(device_minion, {"command": "test.echo", "arg": "not a list"})
    assert resp.status_code == 400
    assert list(resp.json()) == ["arg"]


def test_salt_call_last_logs_and_last_startup_on_the_real_log(device_minion, salt_call):
    log_file = device_minion.config["log_file"]
    assert os.path.getsize(log_file) > 0
    ret = salt_call.run("minionutil.last_logs", "limit=5")
    assert ret.returncode == 0, ret
    assert isinstance(ret.data, list) and 0 < len(ret.data) <= 5
    ret = salt_call.run("minionutil.last_startup", "limit=500")
    assert ret.returncode == 0, ret
    # The newest start of this minion: its "Setting up" line is the oldest returned line.
    assert f'Setting up the Salt Minion "{device_minion.id}"' in ret.data[-1]
    ret = salt_call.run("minionutil.last_logs", "file=../../etc/passwd")
    assert ret.returncode != 0
    assert "outside the log directory" in ret.stdout + ret.stderr


def test_salt_call_last_errors(device_minion, salt_call):
    ret = salt_call.run("minionutil.last_errors", "level=info", "count=1")
    assert ret.returncode == 0, ret
    assert len(ret.data) == 1 and "[INFO" in ret.data[0]


# --- docker.logs through the local API (needs the release engineer's docker module + a real engine)


@pytest.fixture(scope="module")
def docker_device(device_master):
    """A second minion with its own dockerd and the local API, plus a container that printed
    :data:`LOGS_LINE`."""
    engine = f"device-{os.getpid()}"
    proc = subprocess.run(
        [str(TESTBED), "engine", engine], capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    docker_host = next(
        line.split("DOCKER_HOST=", 1)[1].strip()
        for line in proc.stdout.splitlines()
        if "DOCKER_HOST=" in line
    )
    try:
        with printed_container(docker_host, "berth-device-test:1") as name:
            port = free_port()
            overrides = {
                "module_dirs": [str(REPO)],
                "docker.url": docker_host,
                "log_level_logfile": "info",
                # host left at its default (127.0.0.1); only these commands allowed
                "engines": [
                    {"berth_localapi": {"port": port, "commands": ["docker.*", "minionutil.*"]}}
                ],
            }
            factory = device_master.salt_minion_daemon(str(uuid.uuid4()), overrides=overrides)
            with factory.started(start_timeout=120):
                factory.localapi_url = f"http://127.0.0.1:{port}"
                factory.container_name = name
                wait_for_http(factory.localapi_url + "/")
                yield factory
    finally:
        subprocess.run([str(TESTBED), "engine-down", engine], capture_output=True, timeout=120)
        state = pathlib.Path(os.environ.get("BERTH_TESTBED_DIR", "/var/lib/berth-testbed"))
        shutil.rmtree(state / "engines" / engine, ignore_errors=True)


@pytest.mark.docker
def test_execute_docker_logs_through_the_local_api(docker_device):
    resp = execute(
        docker_device,
        {"command": "docker.logs", "arg": [docker_device.container_name], "kwarg": {}},
    )
    assert resp.status_code == 200, resp.text
    response = resp.json()["response"]
    assert response["success"] is True, response
    assert LOGS_LINE in str(response["return"])


@pytest.mark.docker
def test_commands_outside_the_engines_allow_list_are_refused(docker_device):
    resp = execute(docker_device, {"command": "cmd.run", "arg": ["id"]})
    assert resp.status_code == 403
    assert "does not allow 'cmd.run'" in resp.json()["detail"]
    resp = execute(docker_device, {"command": "minionutil.unit_id"})
    assert resp.json()["response"]["return"] == docker_device.id
