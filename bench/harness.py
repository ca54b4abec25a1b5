"""Small helpers the fleet benchmarks share (run as ``python bench/NAME.py``, so ``bench/`` is
on ``sys.path``)."""

from __future__ import annotations

import signal
import socket
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_in_process(name: str):
    """(app, factory, user, user token headers): the API in-process on a temp SQLite database,
    migrated, with account ``bench`` and one user (needs the repository on ``sys.path``)."""
    import tempfile

    from flask_migrate import upgrade

    from api import create_app
    from tests.fixtures.api import ApiFactory

    tmp = tempfile.mkdtemp(prefix=f"berth-{name}-bench-")
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{tmp}/api.sqlite3",
            "SECRET_KEY": "bench",
            "INSTANCE_PATH": tmp,
        }
    )
    with app.app_context():
        upgrade()
    factory = ApiFactory(app)
    user = factory.user(factory.account("bench"))
    return app, factory, user, factory.token("user", user=user).headers


def releases_url(client, headers, testbed) -> tuple[int, str]:
    """(registry id, releases URL): the testbed registry with its credentials and one project,
    made through the API's test ``client`` with a user's ``headers``."""
    registry = client.post(
        "/docker/registries/",
        json={
            "name": "r",
            "url": testbed.registry,
            "username": testbed.user,
            "password": testbed.password,
        },
        headers=headers,
    ).json["id"]
    project = client.post("/docker/projects/", json={"name": "p"}, headers=headers).json["id"]
    return registry, f"/docker/projects/{project}/releases/"


def wait_for(predicate, timeout, what, interval=0.5):
    """Poll ``predicate`` until it returns something true (returned), or exit after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"{Path(sys.argv[0]).stem}: timed out after {timeout}s waiting for {what}")


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def stop_on_signals() -> None:
    """SIGINT, SIGTERM and SIGHUP end the benchmark like a failure (SystemExit in the main
    thread), so its ``finally`` stops what it started; Python's default for SIGTERM/SIGHUP would
    end the process at once and leave its daemons running."""

    def stop(signum, frame):
        raise SystemExit(f"{Path(sys.argv[0]).stem}: stopped by {signal.Signals(signum).name}")

    for sig in STOP_SIGNALS:
        signal.signal(sig, stop)


def ignore_stop_signals() -> None:
    """While cleaning up: a second Ctrl-C or SIGTERM must not cut the cleanup short."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
