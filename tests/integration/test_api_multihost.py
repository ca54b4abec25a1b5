"""Several API hosts and workers on one PostgreSQL (docs/scale.md, "Several API hosts"):
2 gunicorn hosts behind nginx and 2 ``flask --app api worker`` processes, started by
``scripts/cluster``, with deliveries counted at a recording salt-api stand-in
(tests/fixtures/salt_api_standin.py) that also receives the webhooks, and in a real
salt-master's job cache (the stand-in as a recording proxy in front of the real salt-api).

SQLite is one host with one worker by design: these tests run in CI's PostgreSQL pass."""

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from api.extensions import db
from api.outbox import REFRESH_PILLAR, RELEASE_PULL, OutboxMessage
from tests.fixtures.api import TEST_SECRET_KEY
from tests.fixtures.salt_api_standin import start_standin

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.db,
    pytest.mark.skipif(
        not os.environ.get("BERTH_TEST_DATABASE_URL"),
        reason="several API hosts share one PostgreSQL database (BERTH_TEST_DATABASE_URL, "
        "CI's PostgreSQL pass); SQLite is one host with one worker by design",
    ),
]

MESSAGES = 200
EXECUTES = 20


def _free_ports(count: int) -> int:
    """A base port P with P .. P+count-1 free."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count > 65535:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise RuntimeError("no free ports")


@pytest.fixture
def standin():
    standin = start_standin()
    yield standin
    standin.release_hold()
    standin.server.shutdown()


@contextlib.contextmanager
def _cluster(database_url: str, directory: Path, salt_env: dict):
    """``scripts/cluster`` with 2 hosts and 2 workers: {"lb": nginx URL, "hosts": [host URLs],
    "workers": [pids]}"""
    port = _free_ports(3)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BERTH_SECRET_KEY": TEST_SECRET_KEY,
        **salt_env,
        "BERTH_OUTBOX_LEASE": "3",
        "BERTH_OUTBOX_STEP_WAIT": "1",
        "BERTH_WEBHOOK_ALLOW_PRIVATE_TARGETS": "1",
    }
    args = ["--hosts", "2", "--workers", "2", "--port", str(port), "--dir", str(directory)]
    up = subprocess.run(
        ["bash", str(ROOT / "scripts/cluster"), "up", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield {
            "lb": f"http://127.0.0.1:{port}",
            "hosts": [f"http://127.0.0.1:{port + i}" for i in (1, 2)],
            "workers": [int((directory / f"worker-{i}.pid").read_text()) for i in (1, 2)],
        }
    finally:
        subprocess.run(
            ["bash", str(ROOT / "scripts/cluster"), "down", "--dir", str(directory)],
            env=env,
            capture_output=True,
            timeout=60,
        )


@pytest.fixture
def cluster(app, api_database_url, tmp_path, standin):
    salt_env = {
        "BERTH_SALT_API_URL": standin.url,
        "BERTH_SALT_API_USER": "berth",
        "BERTH_SALT_API_PASSWORD": "x",
    }
    try:
        with _cluster(api_database_url, tmp_path / "cluster", salt_env) as running:
            yield running
    finally:
        standin.release_hold()


def _pid_of_client_port(port: int, pids: list[int]) -> int:
    """Which of ``pids`` has the TCP connection from 127.0.0.1:``port``."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].upper() == f"0100007F:{port:04X}":
            inode = fields[9]
    assert inode, f"no connection from port {port}"
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError(f"none of {pids} holds the connection from port {port}")


def _wait(what, condition, seconds=90):
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)
    return result


def _release_for(s: requests.Session, lb: str, project_id: int, device) -> None:
    """A release for one device through nginx: one outbox message of two steps."""
    body = {
        "version": device.unit_id,
        "devices": [device.id],
        "containers": [{"name": "app", "image": "app", "tag": "1"}],
        "pin_digests": False,  # images never pushed: run by tag (pinning: test_api_release_pinning.py)
    }
    r = s.post(f"{lb}/docker/projects/{project_id}/releases/", json=body)
    assert r.status_code == 201, r.text


def _undelivered(app) -> int:
    with app.app_context():
        n = db.session.scalar(
            select(func.count(OutboxMessage.id)).where(OutboxMessage.delivered_at.is_(None))
        )
        db.session.remove()
        return n


def _jids_recorded(app, jid: str) -> int:
    """In how many outbox messages ``jid`` is recorded as a published step."""
    with app.app_context():
        rows = db.session.scalars(select(OutboxMessage.payload)).all()
        db.session.remove()
    return sum(jid in (payload.get("jids") or []) for payload in rows)


def _finished(s: requests.Session, host: str, device_id: int, jid: str) -> dict:
    url = f"{host}/dongle/devices/{device_id}/execute/{jid}/"
    return _wait(
        f"job {jid} on {host}", lambda: (a := s.get(url).json())["state"] != "PENDING" and a
    )


def test_every_message_and_webhook_is_delivered_once_with_a_worker_killed(
    app, cluster, standin, api_factory, account, user_token
):
    devices = [api_factory.device(account) for _ in range(MESSAGES)]
    result = app.test_cli_runner().invoke(args=["accounts", "webhook-secret", account.name])
    assert result.exit_code == 0, result.output
    s = requests.Session()
    s.headers.update(user_token.headers)
    lb = cluster["lb"]
    project = s.post(f"{lb}/docker/projects/", json={"name": "p"}).json()

    # the 30th pillar refresh a worker publishes reaches "the master", but its worker is
    # SIGKILLed before it can record that
    standin.hold_publish(fun=REFRESH_PILLAR[0], after=30)

    def release(device):
        _release_for(s, lb, project["id"], device)

    def execute(device):
        r = s.post(
            f"{lb}/dongle/devices/{device.id}/execute/",
            json={"command": "test.ping", "callback_url": f"{standin.url}/hook"},
        )
        assert r.status_code == 202, r.text
        return device, r.json()["jid"]

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(release, devices))
        jobs = list(pool.map(execute, devices[:EXECUTES]))

    assert standin.held.wait(60), "no worker published 31 pillar refreshes"
    killed = _pid_of_client_port(standin.held_port, cluster["workers"])
    os.kill(killed, signal.SIGKILL)
    standin.release_hold()

    # polls give the same answer whichever host serves them
    for device, jid in jobs:
        answers = [_finished(s, host, device.id, jid) for host in [*cluster["hosts"], lb, lb]]
        assert all(a == answers[0] for a in answers) and answers[0]["jid"] == jid
        assert answers[0]["state"] == "COMMAND_EXECUTED", answers[0]

    _wait("every message delivered by the survivor", lambda: _undelivered(app) == 0)
    with app.app_context():
        kinds = Counter(db.session.scalars(select(OutboxMessage.kind)))
    assert kinds == {"salt": MESSAGES, "webhook": EXECUTES}

    # every step reached "the master" exactly once, the interrupted one included
    units = sorted(d.unit_id for d in devices)
    for fun in (REFRESH_PILLAR[0], RELEASE_PULL[0]):
        targets = Counter(u for p in standin.published(fun) for u in p.tgt)
        assert sorted(targets) == units and set(targets.values()) == {1}, fun
    assert _jids_recorded(app, standin.held_jid) == 1  # the dead worker's jid, not a new one
    pings = Counter(u for p in standin.published("test.ping") for u in p.tgt)
    assert pings == Counter(d.unit_id for d, _ in jobs)
    hooks = Counter(h["jid"] for h in standin.hooks)
    assert hooks == Counter(jid for _, jid in jobs)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def _login(session: requests.Session, host: str, email: str, password: str) -> requests.Response:
    page = session.get(f"{host}/account/login/")
    return session.post(
        f"{host}/account/login/",
        data={"email": email, "password": password, "csrf_token": _csrf(page.text)},
        allow_redirects=False,
    )


def test_sessions_login_lockout_and_rollouts_span_the_hosts(cluster, api_factory, account):
    host_a, host_b = cluster["hosts"]
    # a rollout acted on through one host reads the same on the other
    api = requests.Session()
    api.headers.update(api_factory.token("user", account=account).headers)
    project = api.post(f"{host_a}/docker/projects/", json={"name": "r"}).json()
    body = {
        "version": "1",
        "devices": [api_factory.device(account).id for _ in range(2)],
        "containers": [{"name": "app", "image": "app", "tag": "1"}],
        "pin_digests": False,  # never pushed: run by tag
        "rollout": {"waves": [50, 100]},
    }
    resp = api.post(f"{host_b}/docker/projects/{project['id']}/releases/", json=body)
    assert resp.status_code == 201, resp.text
    release = resp.json()
    rollout = f"/docker/projects/{project['id']}/releases/{release['id']}/rollout/"
    for act_on, read_on, action, state in (
        (host_a, host_b, "pause", "paused"),
        (host_b, host_a, "pause", "paused"),  # idempotent
        (host_b, host_a, "resume", "running"),
    ):
        r = api.post(f"{act_on}{rollout}{action}/")
        assert r.status_code == 200 and r.json()["state"] == state, r.text
        assert api.get(f"{read_on}{rollout}").json() == r.json()

    user = api_factory.user(account)
    browser = requests.Session()
    assert _login(browser, host_a, user.email, user.password).status_code == 302
    page = browser.get(f"{host_b}/account/", allow_redirects=False)
    assert page.status_code == 200 and user.email in page.text
    # a form served by host B, posted to host A (CSRF token and session both shared)
    r = browser.post(
        f"{host_a}/account/tokens/",
        data={"name": "multi", "scope": "user", "device": "", "csrf_token": _csrf(page.text)},
    )
    assert r.status_code == 201 and "multi" in r.text
    # logging out on A ends the session on B
    r = browser.post(
        f"{host_a}/account/logout/",
        data={"csrf_token": _csrf(browser.get(f"{host_a}/account/").text)},
        allow_redirects=False,
    )
    assert r.status_code == 302
    assert browser.get(f"{host_b}/account/", allow_redirects=False).status_code == 302

    victim = api_factory.user(account)
    for i in range(10):
        r = _login(requests.Session(), (host_a, host_b)[i % 2], victim.email, "wrong")
        assert r.status_code == 400, (i, r.status_code)
    for host in (host_a, host_b, cluster["lb"]):
        r = _login(requests.Session(), host, victim.email, victim.password)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


def _accept_minion_keys(salt_master, unit_ids: list[str]) -> None:
    """Accepted keys for minions that never run: the master publishes to them and records each
    job in its job cache, nobody returns (each step then waits BERTH_OUTBOX_STEP_WAIT). The
    test removes them again."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    accepted = Path(salt_master.config["pki_dir"]) / "minions"
    for unit_id in unit_ids:
        (accepted / unit_id).write_bytes(pem)


REAL_MESSAGES = 30


def test_every_step_is_in_the_real_job_cache_once_with_a_worker_killed(
    app, api_database_url, tmp_path, salt_master, salt_api, salt_run_cli, api_factory, account
):
    proxy = start_standin(upstream=salt_api.url)
    devices = [api_factory.device(account) for _ in range(REAL_MESSAGES)]
    units = sorted(d.unit_id for d in devices)
    _accept_minion_keys(salt_master, units)
    token = api_factory.token("user", account=account)
    try:
        with _cluster(
            api_database_url,
            tmp_path / "cluster",
            {**salt_api.env(), "BERTH_SALT_API_URL": proxy.url},
        ) as cluster:
            s = requests.Session()
            s.headers.update(token.headers)
            lb = cluster["lb"]
            project = s.post(f"{lb}/docker/projects/", json={"name": "p"}).json()
            proxy.hold_publish(fun=REFRESH_PILLAR[0], after=10)
            for device in devices:
                _release_for(s, lb, project["id"], device)
            assert proxy.held.wait(60), "no worker published 11 pillar refreshes"
            killed = _pid_of_client_port(proxy.held_port, cluster["workers"])
            os.kill(killed, signal.SIGKILL)
            proxy.release_hold()  # the master gets the publish; its worker is gone
            _wait("every message delivered by the survivor", lambda: _undelivered(app) == 0)
    finally:
        proxy.release_hold()
        proxy.server.shutdown()
        for unit_id in units:  # the session's master serves other tests ('*' targets)
            (Path(salt_master.config["pki_dir"]) / "minions" / unit_id).unlink(missing_ok=True)

    assert _jids_recorded(app, proxy.held_jid) == 1  # the dead worker's jid, not a new one
    for fun in (REFRESH_PILLAR[0], RELEASE_PULL[0]):
        ret = salt_run_cli.run("jobs.list_jobs", f"search_function={fun}")
        assert ret.returncode == 0, ret
        targets = Counter(
            unit
            for job in ret.data.values()
            for unit in (job.get("Target") if isinstance(job.get("Target"), list) else [])
            if unit in set(units)
        )
        assert sorted(targets) == units and set(targets.values()) == {1}, (fun, targets)
        recorded = Counter(u for p in proxy.published(fun) for u in p.tgt)
        assert recorded == Counter(units), fun
