"""``state.sls`` through the on-device local API of a real salt-minion: the engine
reaches the master for the state files and the pillar, and an event a state fires
from inside the engine process reaches the master (as ``docker.release`` fires
``berth/release/result``)."""

import pathlib
import socket
import time
import uuid

import pytest
import requests

from tests.fixtures.salt import local_api_headers

pytestmark = [pytest.mark.salt_daemons]

REPO = pathlib.Path(__file__).resolve().parents[2]
TAG = "berth/test/localapi-state"

STATE = f"""
localapi-state-file:
  file.managed:
    - name: {{{{ pillar['berth_test']['path'] }}}}
    - contents: {{{{ pillar['berth_test']['word'] }}}}

localapi-state-event:
  event.send:
    - name: {TAG}
    - data:
        word: {{{{ pillar['berth_test']['word'] }}}}
    - require:
      - file: localapi-state-file
"""

FAILING_STATE = """
localapi-state-fails:
  cmd.run:
    - name: exit 3
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("localapi-state")
    (base / "states").mkdir()
    (base / "states" / "berthtest.sls").write_text(STATE)
    (base / "states" / "berthfails.sls").write_text(FAILING_STATE)
    (base / "pillar").mkdir()
    (base / "out").mkdir()
    return base


@pytest.fixture(scope="module")
def master(salt_factories, roots):
    factory = salt_factories.salt_master_daemon(
        f"berth-localapi-state-{uuid.uuid4().hex[:8]}",
        overrides={
            "file_roots": {"base": [str(roots / "states")]},
            "pillar_roots": {"base": [str(roots / "pillar")]},
            "log_level_logfile": "info",
        },
    )
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="module")
def minion(master, roots):
    minion_id = str(uuid.uuid4())
    port = free_port()
    # The pillar is read from the master at each run; the word changes below.
    (roots / "pillar" / "top.sls").write_text("base:\n  '*':\n    - berth_test\n")
    factory = master.salt_minion_daemon(
        minion_id,
        overrides={
            "module_dirs": [str(REPO)],
            "log_level_logfile": "info",
            # the engine's machinery with test.* / custom states: every command (the safe default
            # is tested in tests/functional/test_security_localapi.py)
            "engines": [{"berth_localapi": {"host": "127.0.0.1", "commands": ["*"], "port": port}}],
        },
    )
    (roots / "pillar" / "berth_test.sls").write_text(
        f"berth_test:\n  path: {roots / 'out' / minion_id}\n  word: first\n"
    )
    with factory.started(start_timeout=120):
        factory.localapi_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(factory.localapi_url + "/", timeout=5)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the local API did not come up"
                time.sleep(0.3)
        yield factory


def state_sls(minion, name):
    resp = requests.post(
        f"{minion.localapi_url}/dongle/{minion.id}/execute/",
        json={"command": "state.sls", "arg": [name]},
        headers=local_api_headers(minion),
        timeout=300,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["response"]


def test_the_engine_signs_in_with_the_master_at_start(minion):
    """Before any state run (the sleep hook's apply), so a fleet told to sleep at once does
    not send its master one RSA sign-in per device (docs/scale.md)."""
    log = pathlib.Path(minion.config["log_file"])
    deadline = time.monotonic() + 120
    while f"berth_localapi on {minion.id}: signed in with the master" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)


def test_state_sls_runs_through_the_local_api_with_fresh_pillar(
    master, minion, roots, event_listener
):
    out = roots / "out" / minion.id
    started = time.time()
    response = state_sls(minion, "berthtest")
    assert response["success"] is True, response
    assert response["retcode"] == 0
    assert all(step["result"] for step in response["return"].values()), response["return"]
    assert out.read_text().strip() == "first"

    # The event fired by the state inside the engine process reaches the master.
    events = event_listener.wait_for_events([(master.id, TAG)], after_time=started, timeout=60)
    assert events.found_all_events, f"{TAG} did not reach the master"
    (event,) = events.matches
    assert event.data["data"]["word"] == "first"
    assert event.data["id"] == minion.id

    # A pillar change on the master is seen by the next run (no stale engine pillar).
    (roots / "pillar" / "berth_test.sls").write_text(
        f"berth_test:\n  path: {out}\n  word: second\n"
    )
    response = state_sls(minion, "berthtest")
    assert response["success"] is True, response
    assert out.read_text().strip() == "second"


def test_a_failing_state_answers_success_false(minion):
    response = state_sls(minion, "berthfails")
    assert response["success"] is False
    assert response["retcode"] != 0
    (step,) = response["return"].values()
    assert step["result"] is False


def test_a_missing_sls_is_reported(minion):
    response = state_sls(minion, "no_such_sls")
    assert response["success"] is False
    assert "No matching sls found for 'no_such_sls'" in str(response["return"])
