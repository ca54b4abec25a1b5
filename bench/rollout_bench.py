#!/usr/bin/env python
"""Rollout benchmark: 10,000 registered devices, a release with waves [1, 10, 50, 100], and
simulated device reports sent through the master report endpoint (what ``berth.report`` does)
as fast as 8 connections allow.

The API runs under gunicorn (2 workers x 4 threads) on SQLite, or on ``DATABASE_URL``
(PostgreSQL). No Salt and no Docker: the devices are simulated by their reports.

    .venv/bin/python bench/rollout_bench.py [--devices 10000] [--samples 50]
    DATABASE_URL=postgresql+psycopg://berth:berth@127.0.0.1:5432/berth_bench .venv/bin/python bench/rollout_bench.py

Prints:
* release creation time for the 10,000 devices, with and without a rollout;
* reports/s: every device of waves 1-3 reports success (each wave starts by the report that
  reaches ``advance_at`` 95 %), then 400 of wave 4 succeed;
* halt: failures follow in wave 4 until ``halt_at`` 5 % is crossed; the time from sending the
  report that crosses it until ``GET /master/minions/{unit_id}/pillar/`` serves the previous
  release to a device of that wave that has not applied (target < 1 s);
* p50 / p95 of ``GET .../rollout/`` and of the deployments list (first page, 100 rows) at
  10,000 devices (target p95 < 500 ms).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import requests

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
VENV_BIN = pathlib.Path(sys.executable).parent
CONNECTIONS = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


class Bench:
    def __init__(self, args):
        self.args = args
        self.state = pathlib.Path(tempfile.mkdtemp(prefix="berth-rollout-", dir="/tmp"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.local = threading.local()

    def start(self):
        db_url = os.environ.get("DATABASE_URL") or f"sqlite:///{self.state}/api.sqlite3"
        env = {**os.environ, "DATABASE_URL": db_url, "BERTH_INSTANCE_PATH": str(self.state)}
        os.environ.update(DATABASE_URL=db_url, BERTH_INSTANCE_PATH=str(self.state))
        from flask_migrate import downgrade, upgrade
        from sqlalchemy import insert

        from api import create_app
        from api.extensions import db
        from api.models import Account, Device, User
        from api.security.tenancy import MinionEnrollment
        from api.tokens import create_token

        app = create_app()
        self.secret_key = app.config["SECRET_KEY"]  # the server's too: reports are signed
        with app.app_context():
            if os.environ.get("DATABASE_URL", "").startswith("postgresql"):
                downgrade(revision="base")  # a database of its own: start from nothing
            upgrade()
            account = Account(name="rollout-bench")
            db.session.add(account)
            db.session.flush()
            user = User(account_id=account.id, email="bench@rollout.local")
            user.set_password(uuid.uuid4().hex)
            db.session.add(user)
            db.session.flush()
            _, user_token = create_token(user, scope="user", name="bench")
            _, master_token = create_token(user, scope="master", name="bench master")
            self.units = {str(uuid.uuid4()): str(uuid.uuid4()) for _ in range(self.args.devices)}
            db.session.execute(
                insert(Device),
                [
                    {"id": d, "account_id": account.id, "unit_id": u, "display": ""}
                    for d, u in self.units.items()
                ],
            )
            db.session.execute(
                insert(MinionEnrollment),
                [
                    {"unit_id": u, "account_id": account.id, "method": "migration"}
                    for u in self.units.values()
                ],
            )
            db.session.commit()
            db.engine.dispose()
        self.user = {"Authorization": f"APIToken {user_token}"}
        self.master = {"Authorization": f"APIToken {master_token}"}
        log = open(self.state / "api.log", "w")
        self.proc = subprocess.Popen(
            [
                str(VENV_BIN / "gunicorn"),
                "--workers",
                "2",
                "--threads",
                "4",
                "--bind",
                f"127.0.0.1:{self.port}",
                "api:create_app()",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/openapi.json", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.3)
        raise SystemExit("rollout_bench: the API did not start (see api.log)")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        shutil.rmtree(self.state, ignore_errors=True)

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def call(self, method, path, expect=200, headers=None, **kwargs):
        resp = self.session().request(
            method, self.url + path, headers=headers or self.user, timeout=120, **kwargs
        )
        if resp.status_code != expect:
            raise SystemExit(
                f"rollout_bench: {method} {path} -> {resp.status_code} {resp.text[:300]}"
            )
        return resp.json() if resp.content else None

    def report(self, release, device_id, outcome):
        body = {
            "unit_id": self.units[device_id],
            "release_id": release["id"],
            "version_hash": release["version_hash"],
            "outcome": outcome,
            "error": "bench failure" if outcome == "failed" else None,
        }
        from api.security import report_keys
        from berth import results

        # signed as the device signs it (the key its pillar serves)
        key = report_keys.derive(self.secret_key, device_id, self.units[device_id])
        body = results.signed(key, self.units[device_id], body)
        self.call("POST", "/master/deployments/report/", headers=self.master, json=body)

    def reports(self, release, device_ids, outcome) -> float:
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(CONNECTIONS) as pool:
            list(pool.map(lambda d: self.report(release, d, outcome), device_ids))
        return time.perf_counter() - started

    def pillar_release(self, device_id):
        data = self.call(
            "GET", f"/master/minions/{self.units[device_id]}/pillar/", headers=self.master
        )
        return data["release"]["id"] if data["release"] else None

    def timed(self, path, n):
        times = []
        for _ in range(n):
            started = time.perf_counter()
            self.call("GET", path)
            times.append((time.perf_counter() - started) * 1000)
        return times

    def run(self):
        devices = list(self.units)
        project = self.call("POST", "/docker/projects/", 201, json={"name": "bench"})["id"]
        releases = f"/docker/projects/{project}/releases/"
        body = {"containers": [{"name": "app", "image": "app", "tag": "1"}], "devices": devices}
        started = time.perf_counter()
        base = self.call("POST", releases, 201, json={**body, "version": "1.0"})
        plain_ms = (time.perf_counter() - started) * 1000
        policy = {"waves": [1, 10, 50, 100], "advance_at": 95, "halt_at": 5, "halt_min_finished": 1}
        started = time.perf_counter()
        rel = self.call("POST", releases, 201, json={**body, "version": "2.0", "rollout": policy})
        rollout_ms = (time.perf_counter() - started) * 1000
        print(f"devices: {len(devices)}   database: {os.environ['DATABASE_URL'].split(':')[0]}")
        print(
            f"release creation for {len(devices)} devices: {plain_ms:.0f} ms without a rollout, "
            f"{rollout_ms:.0f} ms with waves {policy['waves']}"
        )
        waves = {}
        page = 1
        while True:
            data = self.call(
                "GET", f"{releases}{rel['id']}/deployments/?page_size=1000&page={page}"
            )
            for row in data["results"]:
                waves.setdefault(row["wave"], []).append(row["device"])
            if not data["next"]:
                break
            page += 1
        print("wave sizes:", [len(waves[w]) for w in sorted(waves)])

        sent, elapsed = 0, 0.0
        for w in (1, 2, 3):
            elapsed += self.reports(rel, waves[w], "succeeded")
            sent += len(waves[w])
            state = self.call("GET", f"{releases}{rel['id']}/rollout/")
            assert state["wave"] == w + 1, state
        ok, bad, untouched = waves[4][:400], waves[4][400:430], waves[4][430:]
        elapsed += self.reports(rel, ok, "succeeded")
        sent += len(ok)
        print(
            f"reports: {sent} in {elapsed:.1f} s = {sent / elapsed:.0f} reports/s ({CONNECTIONS} connections)"
        )

        # failures until halt_at is crossed: 400 succeeded, the k-th failure crosses when
        # k * 100 > 5 * (400 + k)  ->  k = 22
        crossing = next(k for k in range(1, 31) if k * 100 > policy["halt_at"] * (len(ok) + k))
        self.reports(rel, bad[: crossing - 1], "failed")
        assert self.call("GET", f"{releases}{rel['id']}/rollout/")["state"] == "running"
        watched = untouched[0]
        assert self.pillar_release(watched) == rel["id"]
        started = time.perf_counter()
        self.report(rel, bad[crossing - 1], "failed")
        reported = time.perf_counter()
        while self.pillar_release(watched) != base["id"]:
            pass
        served = time.perf_counter()
        state = self.call("GET", f"{releases}{rel['id']}/rollout/")
        assert state["state"] == "halted", state
        print(
            f"halt: crossing report answered in {(reported - started) * 1000:.0f} ms; previous "
            f"release served in pillar {(served - started) * 1000:.0f} ms after it was sent "
            f"(target < 1000 ms); reason: {state['halt_reason']}"
        )
        n = self.args.samples
        rollout_times = self.timed(f"{releases}{rel['id']}/rollout/", n)
        list_times = self.timed(f"{releases}{rel['id']}/deployments/", n)
        for name, times in (
            ("GET .../rollout/", rollout_times),
            ("deployments list page", list_times),
        ):
            print(
                f"{name}: p50 {statistics.median(times):.0f} ms, p95 {percentile(times, 95):.0f} ms "
                f"({n} requests, {len(devices)} devices; target p95 < 500 ms)"
            )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=50)
    bench = Bench(parser.parse_args())
    try:
        bench.start()
        bench.run()
    finally:
        bench.stop()


if __name__ == "__main__":
    main()
