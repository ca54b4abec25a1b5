#!/usr/bin/env python
"""Rollout benchmark: 10,000 registered devices, a release with waves [1, 10, 50, 100], and
simulated device reports sent through the master report endpoint (what ``berth.report`` does)
as fast as 8 connections allow. Above 10,000 devices (a release lists at most 10,000) the
releases target the devices by tag.

The API runs under gunicorn (2 workers x 4 threads) on SQLite, or on ``DATABASE_URL``
(PostgreSQL). No Salt and no Docker: the devices are simulated by their reports.

    .venv/bin/python bench/rollout_bench.py [--devices 10000] [--samples 50]
    DATABASE_URL=postgresql+psycopg://berth:berth@127.0.0.1:5432/berth_bench .venv/bin/python bench/rollout_bench.py

Prints:
* release creation time for the 10,000 devices, with and without a rollout;
* reports: every device of waves 1-3 reports success (each wave starts by the report that
  reaches ``advance_at`` 95 %), then 400 of wave 4 succeed. Wave 1 and the first 2,000 of wave 3
  report one per request (reports/s, and the cost per report at 1 % and at 40 % of the targets:
  flat, the wave decision reads counters); wave 2, the rest of wave 3 and wave 4's 400 are sent
  100 per request (``POST`` of a list: results/s);
* halt: failures follow in wave 4 until ``halt_at`` 5 % is crossed; the time from sending the
  report that crosses it until ``GET /master/minions/{unit_id}/pillar/`` serves the previous
  release to a device of that wave that has not applied (target < 1 s);
* the API's CPU (its processes' user + system time) per single report of wave 3 and per
  batched result: what a report costs the server, meaningful on a loaded machine too;
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
TAG = "bench"
BATCH = 100  # reports per request in the batched runs
SINGLE = 2000  # single reports timed in wave 3 (the rest of it goes batched)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the processes of group ``pgid`` (the API's
    gunicorn master and workers): the server's cost, whatever else loads the machine."""
    total = 0
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


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
        from api.accounts.models import Account, User
        from api.devices.models import Device
        from api.extensions import db
        from api.rollouts.models import device_tags
        from api.security import tenancy
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
            master_row, master_token = create_token(user, scope="master", name="bench master")
            db.session.flush()
            # enrolled through this master, as after their first pillar request
            master = tenancy.credential(master_row)
            self.units = {str(uuid.uuid4()): str(uuid.uuid4()) for _ in range(self.args.devices)}
            db.session.execute(
                insert(Device),
                [
                    {"id": d, "account_id": account.id, "unit_id": u, "display": ""}
                    for d, u in self.units.items()
                ],
            )
            db.session.execute(
                insert(device_tags), [{"device_id": d, "tag": TAG} for d in self.units]
            )
            db.session.execute(
                insert(MinionEnrollment),
                [
                    {
                        "unit_id": u,
                        "account_id": account.id,
                        "method": "migration",
                        "master": master,
                    }
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

    def body(self, release, device_id, outcome):
        from api.security import report_keys
        from berth import results

        body = {
            "unit_id": self.units[device_id],
            "release_id": release["id"],
            "version_hash": release["version_hash"],
            "outcome": outcome,
            "error": "bench failure" if outcome == "failed" else None,
        }
        # signed as the device signs it (the key its pillar serves)
        key = report_keys.derive(self.secret_key, device_id, self.units[device_id])
        return results.signed(key, self.units[device_id], body)

    def report(self, release, device_id, outcome):
        body = self.body(release, device_id, outcome)
        self.call("POST", "/master/deployments/report/", headers=self.master, json=body)

    def reports(self, release, device_ids, outcome) -> float:
        """One report per request, CONNECTIONS at a time; returns the seconds taken."""
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(CONNECTIONS) as pool:
            list(pool.map(lambda d: self.report(release, d, outcome), device_ids))
        return time.perf_counter() - started

    def batched(self, release, device_ids, outcome) -> float:
        """BATCH reports per request (a list), CONNECTIONS requests at a time."""
        chunks = [device_ids[i : i + BATCH] for i in range(0, len(device_ids), BATCH)]
        bodies = [[self.body(release, d, outcome) for d in chunk] for chunk in chunks]

        def send(items):
            answers = self.call(
                "POST", "/master/deployments/report/", headers=self.master, json=items
            )
            bad = [a for a in answers if a["status"] != 200]
            if bad:
                raise SystemExit(f"rollout_bench: batch item refused: {bad[:3]}")

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(CONNECTIONS) as pool:
            list(pool.map(send, bodies))
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
        from api.limits import MAX_RELEASE_DEVICES

        devices = list(self.units)
        project = self.call("POST", "/docker/projects/", 201, json={"name": "bench"})["id"]
        releases = f"/docker/projects/{project}/releases/"
        body = {
            "containers": [{"name": "app", "image": "app", "tag": "1"}],
            "devices": devices,
            "pin_digests": False,  # an image never pushed: run by tag (bench/pinning_bench.py measures pinning)
        }
        if len(devices) > MAX_RELEASE_DEVICES:  # a list holds 10,000: the rest by tag
            body = {**body, "devices": [], "device_tags": [TAG]}
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

        def advanced_to(w):
            state = self.call("GET", f"{releases}{rel['id']}/rollout/")
            assert state["wave"] == w, state

        cpu = lambda: group_cpu(self.proc.pid)  # noqa: E731
        single_n = len(waves[1])
        single_s = self.reports(rel, waves[1], "succeeded")  # wave 1: one report per request
        advanced_to(2)
        batch_n = len(waves[2])
        cpu0 = cpu()
        batch_s = self.batched(rel, waves[2], "succeeded")  # wave 2: BATCH per request
        batch_cpu = cpu() - cpu0
        advanced_to(3)
        timed3, rest3 = waves[3][:SINGLE], waves[3][SINGLE:]
        cpu0 = cpu()
        wave3_s = self.reports(rel, timed3, "succeeded")  # wave 3: single again, 40 % of targets
        single_cpu = cpu() - cpu0
        cpu0 = cpu()
        batch_s += self.batched(rel, rest3, "succeeded")
        batch_cpu += cpu() - cpu0
        batch_n += len(rest3)
        advanced_to(4)
        ok, bad, untouched = waves[4][:400], waves[4][400:430], waves[4][430:]
        cpu0 = cpu()
        batch_s += self.batched(rel, ok, "succeeded")
        batch_n += len(ok)
        batch_cpu += cpu() - cpu0
        print(
            f"single reports ({CONNECTIONS} connections): wave 1 ({len(waves[1])} targets) "
            f"{single_n / single_s:.0f}/s; wave 3 ({len(waves[3])} targets) {len(timed3)} in "
            f"{wave3_s:.1f} s = {len(timed3) / wave3_s:.0f}/s ({wave3_s / len(timed3) * 1000 * CONNECTIONS:.1f} ms "
            f"per report per connection); server CPU {single_cpu / len(timed3) * 1000:.2f} ms "
            "per report"
        )
        print(
            f"batched reports ({BATCH} per request, {CONNECTIONS} connections): {batch_n} in "
            f"{batch_s:.1f} s = {batch_n / batch_s:.0f} results/s; server CPU "
            f"{batch_cpu / batch_n * 1000:.2f} ms per result"
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
