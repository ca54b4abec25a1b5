"""The API served the production way: gunicorn with several workers sharing one database."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.fixtures.api import TEST_SECRET_KEY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gunicorn_api(app, api_database_url, tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": api_database_url,
        "BERTH_SECRET_KEY": TEST_SECRET_KEY,
        "BERTH_INSTANCE_PATH": str(tmp_path / "gunicorn-instance"),
    }
    log = open(tmp_path / "gunicorn.log", "w")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "-w",
            "3",
            "-b",
            f"127.0.0.1:{port}",
            "api:create_app()",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{base}/openapi.json", timeout=5)
                break
            except requests.RequestException:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "gunicorn.log").read_text()) from None
                time.sleep(0.2)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def test_release_flow_over_http(gunicorn_api, user_token, device):
    s = requests.Session()
    s.headers.update(user_token.headers)
    project = s.post(f"{gunicorn_api}/docker/projects/", json={"name": "p"}).json()
    body = {
        "version": "1",
        "devices": [device.id],
        "containers": [{"name": "app", "image": "app", "tag": "1"}],
        "pin_digests": False,  # images never pushed: run by tag (pinning: test_api_release_pinning.py)
    }
    # many requests so that several workers serve them
    for i in range(20):
        r = s.post(
            f"{gunicorn_api}/docker/projects/{project['id']}/releases/",
            json={**body, "version": str(i)},
        )
        assert r.status_code == 201, r.text
    for _ in range(30):
        r = s.get(f"{gunicorn_api}/devices/{device.id}/")
        assert r.status_code == 200 and r.json()["id"] == device.id
    r = s.post(
        f"{gunicorn_api}/docker/projects/{project['id']}/releases/",
        data="{bad",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.headers["Content-Type"] == "application/json"
    r = requests.get(f"{gunicorn_api}/devices/{device.id}/")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "APIToken"
