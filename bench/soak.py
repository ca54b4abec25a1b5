#!/usr/bin/env python3
"""Soak test: mixed load on the API served the production way, with a real salt-api.

Starts gunicorn (2 workers x 4 threads), a salt-master, salt-api and one minion (on the
testbed's Docker engine), seeds an account with devices, then for ``--duration`` seconds
(default 600) ``--connections`` client threads (default 8) each loop over a weighted mix:

* ``GET /devices/{id}/``                             device reads
* ``POST /docker/projects/{p}/releases/``            release creations (5 devices each)
* ``POST /master/deployments/report/``              master reports on those releases
* ``POST /logbook/storage/write/``                  telemetry writes (100 samples each)
* ``POST /dongle/devices/{id}/execute/`` + polls    ``test.ping`` on the live minion until
                                                     ``COMMAND_EXECUTED`` (one "execute+poll")

and prints per endpoint: requests, throughput, p50/p99 latency, errors (any unexpected status
or exception; target 0), then the server's RSS (gunicorn arbiter + workers) at the start of the
load and at the end (target: flat within 10%). Only 127.0.0.1 is contacted; it stops by itself.

    scripts/testbed up && .venv/bin/python bench/soak.py [--duration 600] [--connections 8]

``DATABASE_URL`` selects the database (default: a fresh SQLite file in a temp dir).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import pathlib
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import requests
import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
VENV_BIN = pathlib.Path(sys.executable).parent
TESTBED = REPO / "scripts" / "testbed"

from harness import free_port, wait_for  # noqa: E402

from berth import results  # noqa: E402  (after sys.path)
from berth.master.config import master_options, minion_options  # noqa: E402  (after sys.path)

# operation -> weight in the mix
MIX = {"device_get": 8, "release_create": 1, "master_report": 3, "logbook_write": 3, "execute": 1}
DEVICES = 200


def testbed_docker_host() -> str:
    out = subprocess.run(
        ["bash", str(TESTBED), "env"], check=True, capture_output=True, text=True
    ).stdout
    for line in out.splitlines():
        if line.startswith("export DOCKER_HOST="):
            return line.split("=", 1)[1].strip()
    raise SystemExit("soak: scripts/testbed env printed no DOCKER_HOST (run scripts/testbed up)")


def rss_kib(pids) -> int:
    total = 0
    for pid in pids:
        try:
            for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def children(pid) -> list[int]:
    try:
        return [
            int(p) for p in pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        ]
    except FileNotFoundError:
        return []


class Soak:
    def __init__(self, args):
        self.args = args
        self.state = pathlib.Path(tempfile.mkdtemp(prefix="berth-soak-", dir="/tmp"))
        self.procs: list[subprocess.Popen] = []
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.minion_id = str(uuid.uuid4())
        self.salt_secret = uuid.uuid4().hex
        self.salt_api_port = free_port()
        self.env = {**os.environ}
        self.lat = collections.defaultdict(list)
        self.errors = collections.Counter()
        self.error_samples = {}
        self.lock = threading.Lock()
        self.releases: list[tuple[int, str, list[str]]] = []  # (id, version_hash, device ids)
        self.ts = itertools.count()

    # -- set-up ---------------------------------------------------------------------------
    def seed(self):
        db_url = os.environ.get("DATABASE_URL") or f"sqlite:///{self.state}/api.sqlite3"
        self.env.update(
            DATABASE_URL=db_url,
            BERTH_INSTANCE_PATH=str(self.state / "instance"),
            BERTH_SALT_API_URL=f"http://127.0.0.1:{self.salt_api_port}",
            BERTH_SALT_API_USER="berth",
            BERTH_SALT_API_PASSWORD=self.salt_secret,
        )
        code = f"""
import json, uuid
from flask_migrate import upgrade
from api import create_app
from api.extensions import db
from api.accounts.models import Account, User
from api.devices.models import Device
from api.tokens import create_token
app = create_app()
with app.app_context():
    upgrade()
    account = Account(name="soak-" + uuid.uuid4().hex[:8]); db.session.add(account); db.session.flush()
    user = User(account_id=account.id, email=account.name + "@soak.example"); user.set_password(uuid.uuid4().hex)
    db.session.add(user); db.session.flush()
    _, user_token = create_token(user, scope="user", name="soak")
    _, master_token = create_token(user, scope="master", name="soak master")
    units = [{self.minion_id!r}] + [str(uuid.uuid4()) for _ in range({DEVICES - 1})]
    devices = [Device(account_id=account.id, unit_id=u, display="soak") for u in units]
    db.session.add_all(devices)
    from api.security.tenancy import MinionEnrollment  # enrolled, as berth.register_minions records it
    db.session.add_all([MinionEnrollment(unit_id=u, account_id=account.id, method="migration") for u in units])
    db.session.commit()
    from api.security.report_keys import report_key  # reports are signed as each device signs
    print(json.dumps({{"user": user_token, "master": master_token,
                      "devices": [[d.id, d.unit_id] for d in devices],
                      "report_keys": {{d.unit_id: report_key(d) for d in devices}}}}))
"""
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=self.env,
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        seeded = json.loads(out.strip().splitlines()[-1])
        self.user = {"Authorization": f"APIToken {seeded['user']}"}
        self.master = {"Authorization": f"APIToken {seeded['master']}"}
        self.devices = seeded["devices"]
        self.report_keys = seeded["report_keys"]
        self.live_device = self.devices[0][0]
        self.token_file = self.state / "master.token"
        self.token_file.write_text(seeded["master"] + "\n")
        os.chmod(self.token_file, 0o600)

    def start_api(self):
        log = open(self.state / "api.log", "w")
        self.gunicorn = subprocess.Popen(
            [
                str(VENV_BIN / "gunicorn"),
                "--workers",
                "2",
                "--threads",
                "4",
                "--bind",
                f"127.0.0.1:{self.api_port}",
                "api:create_app()",
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(self.gunicorn)

        def up():
            try:
                return requests.get(f"{self.api_url}/openapi.json", timeout=2).ok
            except requests.RequestException:
                return False

        wait_for(up, 60, "the API under gunicorn")
        s = requests.Session()
        registry = s.post(
            f"{self.api_url}/docker/registries/",
            json={"name": "r", "url": "127.0.0.1:5000", "username": "u", "password": "p"},
            headers=self.user,
            timeout=30,
        ).json()
        project = s.post(
            f"{self.api_url}/docker/projects/",
            json={"name": "soak"},
            headers=self.user,
            timeout=30,
        ).json()
        self.registry, self.project = registry["id"], project["id"]

    def salt(self, *args, timeout=120):
        return subprocess.run(
            [str(VENV_BIN / "salt"), "-c", str(self.state / "master"), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start_salt(self):
        pub, ret = free_port(), free_port()
        master_dir = self.state / "master"
        master_dir.mkdir()
        conf = {
            "id": "soak-master",
            "root_dir": str(master_dir),
            "user": "root",
            "interface": "127.0.0.1",
            "publish_port": pub,
            "ret_port": ret,
            "auto_accept": True,
            **master_options(
                api_url=self.api_url,
                token_file=self.token_file,
                spool_dir=self.state / "spool",
                salt_api_port=self.salt_api_port,
                sharedsecret=self.salt_secret,
            ),
        }
        (master_dir / "master").write_text(yaml.safe_dump(conf))
        for tool in ("salt-master", "salt-api"):
            self.procs.append(
                subprocess.Popen(
                    [str(VENV_BIN / tool), "-c", str(master_dir), "-l", "quiet"],
                    stdout=open(self.state / f"{tool}.out", "w"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        mdir = self.state / "minion"
        mdir.mkdir()
        conf = {
            "id": self.minion_id,
            "root_dir": str(mdir),
            "user": "root",
            "master": "127.0.0.1",
            "master_port": ret,
            "publish_port": pub,
            "acceptance_wait_time": 2,
            **minion_options(
                docker_host=testbed_docker_host(),
                hook_dir=mdir / "hook",
                localapi_port=free_port(),
            ),
        }
        (mdir / "minion").write_text(yaml.safe_dump(conf))
        self.procs.append(
            subprocess.Popen(
                [str(VENV_BIN / "salt-minion"), "-c", str(mdir), "-l", "quiet"],
                stdout=open(self.state / "salt-minion.out", "w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

        def answers():
            out = self.salt(self.minion_id, "test.ping", "--out=json", "--static", "-t", "10")
            try:
                return json.loads(out.stdout or "{}").get(self.minion_id) is True
            except ValueError:
                return False

        wait_for(answers, 300, "the minion to answer test.ping", interval=3)

        def salt_api_up():
            try:
                requests.get(f"http://127.0.0.1:{self.salt_api_port}/", timeout=2)
                return True
            except requests.RequestException:
                return False

        wait_for(salt_api_up, 60, "salt-api")

    # -- the load ---------------------------------------------------------------------------
    def record(self, op, started, ok, detail=""):
        ms = (time.perf_counter() - started) * 1000
        with self.lock:
            self.lat[op].append(ms)
            if not ok:
                self.errors[op] += 1
                self.error_samples.setdefault(op, detail[:300])

    def request(self, s, op, method, path, expect, **kwargs):
        started = time.perf_counter()
        try:
            r = s.request(method, self.api_url + path, timeout=60, **kwargs)
        except requests.RequestException as e:
            self.record(op, started, False, repr(e))
            return None
        ok = r.status_code == expect
        self.record(op, started, ok, f"{r.status_code} {r.text}")
        return r if ok else None

    def device_get(self, s, rnd):
        device = rnd.choice(self.devices)[0]
        self.request(s, "device_get", "GET", f"/devices/{device}/", 200, headers=self.user)

    def release_create(self, s, rnd):
        picked = rnd.sample(self.devices[1:], 5)
        body = {
            "version": f"soak-{uuid.uuid4().hex[:8]}",
            "devices": [d for d, _ in picked],
            "containers": [
                {"name": "app", "image": "app", "tag": "1.0", "registry": self.registry}
            ],
            "pin_digests": False,  # an image never pushed: run by tag (bench/pinning_bench.py measures pinning)
        }
        r = self.request(
            s,
            "release_create",
            "POST",
            f"/docker/projects/{self.project}/releases/",
            201,
            json=body,
            headers=self.user,
        )
        if r is not None:
            data = r.json()
            with self.lock:
                self.releases.append((data["id"], data["version_hash"], picked))
                del self.releases[:-50]

    def master_report(self, s, rnd):
        with self.lock:
            release = rnd.choice(self.releases) if self.releases else None
        if release is None:
            return self.device_get(s, rnd)
        release_id, version_hash, picked = release
        _, unit_id = rnd.choice(picked)
        body = {
            "unit_id": unit_id,
            "release_id": release_id,
            "version_hash": version_hash,
            "outcome": rnd.choice(["succeeded", "failed"]),
            "error": None,
            "containers": [],
            "finished_at": datetime.now(UTC).isoformat(),
        }
        body = results.signed(self.report_keys[unit_id], unit_id, body)
        self.request(
            s,
            "master_report",
            "POST",
            "/master/deployments/report/",
            200,
            json=body,
            headers=self.master,
        )

    def logbook_write(self, s, rnd):
        device = rnd.choice(self.devices)[0]
        base = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=next(self.ts) * 100)
        records = [
            {
                "ts": (base + timedelta(seconds=i)).isoformat(),
                "field": "obd.bat.voltage",
                "field_type": "float",
                "value": 12.0 + rnd.random(),
            }
            for i in range(100)
        ]
        self.request(
            s,
            "logbook_write",
            "POST",
            "/logbook/storage/write/",
            201,
            json={"device_id": device, "records": records},
            headers=self.user,
        )

    def execute(self, s, rnd):
        started = time.perf_counter()
        r = self.request(
            s,
            "execute_post",
            "POST",
            f"/dongle/devices/{self.live_device}/execute/",
            202,
            json={"command": "test.ping", "callback_timeout": 60},
            headers=self.user,
        )
        if r is None:
            self.record("execute+poll", started, False, "execute POST failed")
            return
        jid = r.json()["jid"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            p = self.request(
                s,
                "execute_poll",
                "GET",
                f"/dongle/devices/{self.live_device}/execute/{jid}/",
                200,
                headers=self.user,
            )
            state = p.json()["state"] if p is not None else None
            if state == "COMMAND_EXECUTED":
                ok = p.json()["response"]["return"] is True
                self.record("execute+poll", started, ok, json.dumps(p.json()))
                return
            if state not in (None, "PENDING"):
                self.record("execute+poll", started, False, json.dumps(p.json()))
                return
            time.sleep(0.25)
        self.record("execute+poll", started, False, f"job {jid} still PENDING after 60 s")

    def client(self, index, deadline):
        rnd = random.Random(self.args.seed + index)
        ops = [op for op, weight in MIX.items() for _ in range(weight)]
        with requests.Session() as s:
            while time.monotonic() < deadline:
                getattr(self, rnd.choice(ops))(s, rnd)

    def server_pids(self):
        return [self.gunicorn.pid, *children(self.gunicorn.pid)]

    def run(self):
        print("soak: seeding the database and starting gunicorn", flush=True)
        self.seed()
        self.start_api()
        print("soak: starting salt-master, salt-api and one minion", flush=True)
        t = time.monotonic()
        self.start_salt()
        print(f"soak: salt up in {time.monotonic() - t:.0f} s", flush=True)
        print(
            f"soak: warm-up 20 s, then {self.args.duration} s of mixed load with "
            f"{self.args.connections} connections",
            flush=True,
        )
        warm = time.monotonic() + 20
        threads = [
            threading.Thread(target=self.client, args=(i, warm))
            for i in range(self.args.connections)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.lat.clear()
        self.errors.clear()
        self.error_samples.clear()
        rss_start = rss_kib(self.server_pids())
        start = time.monotonic()
        deadline = start + self.args.duration
        threads = [
            threading.Thread(target=self.client, args=(i, deadline))
            for i in range(self.args.connections)
        ]
        for t in threads:
            t.start()
        samples = [(0, rss_start)]
        next_sample = start + 30
        while any(t.is_alive() for t in threads):
            time.sleep(0.5)
            if time.monotonic() < next_sample:
                continue
            next_sample += 30
            elapsed = time.monotonic() - start
            samples.append((round(elapsed), rss_kib(self.server_pids())))
            done = sum(len(v) for v in self.lat.values())
            print(
                f"soak: {elapsed:5.0f} s, {done} requests, {sum(self.errors.values())} errors",
                flush=True,
            )
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        rss_end = rss_kib(self.server_pids())
        self.report(elapsed, rss_start, rss_end, samples)
        return 0 if not self.errors else 1

    def report(self, elapsed, rss_start, rss_end, samples):
        db = "PostgreSQL" if "postgres" in self.env["DATABASE_URL"] else "SQLite"
        print(
            f"\n== soak on {db}: {elapsed:.0f} s, {self.args.connections} connections, "
            f"gunicorn 2 workers x 4 threads"
        )
        print(
            f"{'endpoint':16} {'requests':>9} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
        )
        total = 0
        for op in sorted(self.lat):
            v = sorted(self.lat[op])
            total += len(v)
            p99 = v[min(len(v) - 1, int(len(v) * 0.99))]
            print(
                f"{op:16} {len(v):9d} {len(v) / elapsed:8.1f} {statistics.median(v):8.1f} "
                f"{p99:8.1f} {self.errors[op]:7d}"
            )
        print(f"{'all':16} {total:9d} {total / elapsed:8.1f}")
        print(f"errors: {sum(self.errors.values())} (target 0)")
        for op, sample in self.error_samples.items():
            print(f"  first {op} error: {sample}")
        change = (rss_end - rss_start) / rss_start * 100 if rss_start else 0.0
        print(
            f"server RSS: start {rss_start / 1024:.1f} MiB, end {rss_end / 1024:.1f} MiB "
            f"({change:+.1f} %; target within 10 %)"
        )
        print("RSS over time (s: MiB): " + ", ".join(f"{t}: {k / 1024:.0f}" for t, k in samples))

    def close(self):
        for p in reversed(self.procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        if not self.args.keep:
            shutil.rmtree(self.state, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=600, help="seconds of load (default 600)")
    parser.add_argument("--connections", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the state dir (logs)")
    args = parser.parse_args()
    # SIGTERM (timeout, Ctrl-C from a wrapper) still stops the daemons this started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    soak = Soak(args)
    try:
        return soak.run()
    finally:
        soak.close()


if __name__ == "__main__":
    sys.exit(main())
