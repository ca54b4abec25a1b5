#!/usr/bin/env python3
"""Logbook vs InfluxDB 1.x, side by side on the same data.

30 days at 1 Hz for one device and one float field (2,592,000 samples) are
written to both, then the same aggregated reads are timed:

* InfluxDB (Debian ``influxd``, started here on 127.0.0.1 random ports, data
  in a temp dir, reporting disabled): HTTP line protocol, batches of 5,000.
* Berth: the API under gunicorn (``--workers``) on a fresh SQLite file in a
  temp dir (or ``DATABASE_URL``), ``POST /logbook/storage/write/`` with a
  device token, batches of ``--batch`` records.

Both get the same client: request bodies are built before the clock starts and
sent by ``--senders`` threads. Reads: one warm-up, then the median of 5, of
avg over 30 days at 1h and avg over 1 day at 10m (the 1-day window is day 15).

    .venv/bin/python bench/logbook_bench.py [--days 30] [--workers 3] [--senders 2] [--batch 50000]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
START = datetime(2020, 7, 1, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)
FIELD = "obd.bat.voltage"
MEASUREMENT = "obd_bat_voltage"
INFLUX_BATCH = 5000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def value(i: int) -> float:
    return round(12.6 + 0.8 * math.sin(i / 3600.0) + 0.05 * math.sin(i / 7.0), 4)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def wait_for(url: str, ok=(200, 204, 401, 404), timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code in ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def send_all(session_factory, bodies, senders: int) -> float:
    """POST every (url, body, headers) with ``senders`` threads; returns elapsed seconds."""
    local = threading.local()

    def post(item):
        url, body, headers = item
        if not hasattr(local, "session"):
            local.session = session_factory()
        response = local.session.post(url, data=body, headers=headers, timeout=300)
        if response.status_code not in (201, 204):
            raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")

    began = time.perf_counter()
    with ThreadPoolExecutor(senders) as pool:
        list(pool.map(post, bodies))
    return time.perf_counter() - began


def median_ms(fn, runs: int = 5):
    fn()  # warm-up, same for both
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), result


# ---------------------------------------------------------------- InfluxDB
class Influx:
    def __init__(self, root: Path):
        self.root = root
        self.port, rpc = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = root / "influxdb.conf"
        config.write_text(
            textwrap.dedent(f"""\
            reporting-disabled = true
            bind-address = "127.0.0.1:{rpc}"
            [meta]
              dir = "{root}/meta"
            [data]
              dir = "{root}/data"
              wal-dir = "{root}/wal"
              query-log-enabled = false
              # write the in-memory cache out to TSM files soon after the load, as a
              # long-running server would have; queries over the cache are much slower
              cache-snapshot-write-cold-duration = "2s"
              compact-full-write-cold-duration = "10s"
            [http]
              bind-address = "127.0.0.1:{self.port}"
              auth-enabled = false
              log-enabled = false
            [monitor]
              store-enabled = false
            [continuous_queries]
              enabled = false
            [logging]
              level = "warn"
            """)
        )
        self.log = open(root / "influxd.log", "wb")
        self.process = subprocess.Popen(
            ["influxd", "-config", str(config)], stdout=self.log, stderr=subprocess.STDOUT
        )
        try:
            wait_for(self.url + "/ping")
            requests.post(
                self.url + "/query", data={"q": "CREATE DATABASE bench"}
            ).raise_for_status()
        except Exception:
            self.close()
            raise

    def bodies(self, count: int):
        url = self.url + "/write?db=bench&precision=ms"
        out = []
        for first in range(0, count, INFLUX_BATCH):
            lines = [
                f"{MEASUREMENT},device=bench value={value(i)} {START_MS + i * 1000}"
                for i in range(first, min(count, first + INFLUX_BATCH))
            ]
            out.append((url, "\n".join(lines).encode(), {"Content-Type": "text/plain"}))
        return out

    def settle(self, timeout: float = 180, quiet: float = 15) -> float:
        """Wait until the WAL is written out and the TSM files stop changing (full
        compaction done) for ``quiet`` seconds; returns the seconds waited."""
        began = time.monotonic()
        last, since = None, time.monotonic()
        while time.monotonic() - began < timeout:
            wal = sum(p.stat().st_size for p in (self.root / "wal").rglob("*.wal"))
            tsm = sorted(str(p) for p in (self.root / "data").rglob("*.tsm"))
            if tsm != last or wal:
                last, since = tsm, time.monotonic()
            elif tsm and time.monotonic() - since >= quiet:
                break
            time.sleep(1)
        return time.monotonic() - began

    def avg(self, begin: datetime, end: datetime, interval: str):
        q = (
            f"SELECT mean(value) FROM {MEASUREMENT} WHERE device='bench' AND time >= '{iso(begin)}' "
            f"AND time < '{iso(end)}' GROUP BY time({interval}) fill(none)"
        )
        response = requests.get(
            self.url + "/query", params={"db": "bench", "q": q, "epoch": "ms"}, timeout=60
        )
        response.raise_for_status()
        series = response.json()["results"][0].get("series") or [{"values": []}]
        return [(ts, v) for ts, v in series[0]["values"]]

    def close(self):
        stop(self.process)
        self.log.close()


# ---------------------------------------------------------------- Berth
SEED = """
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
    account = Account(name="bench-" + uuid.uuid4().hex[:8]); db.session.add(account); db.session.flush()
    user = User(account_id=account.id, email=account.name + "@bench.example"); user.set_password("x")
    device = Device(account_id=account.id, unit_id=str(uuid.uuid4()), display="bench")
    db.session.add_all([user, device]); db.session.flush()
    _, user_token = create_token(user, name="bench")
    _, device_token = create_token(user, scope="device", device=device, name="bench")
    db.session.commit()
    print(json.dumps({"user": user_token, "device_token": device_token, "device": device.id}))
"""


class Berth:
    def __init__(self, root: Path, workers: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(
            os.environ, BERTH_INSTANCE_PATH=str(root / "instance"), BERTH_SECRET_KEY="logbook-bench"
        )
        self.env.setdefault("DATABASE_URL", f"sqlite:///{root}/berth.sqlite3")
        seeded = subprocess.run(
            [sys.executable, "-c", SEED],
            env=self.env,
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        self.ids = json.loads(seeded.strip().splitlines()[-1])
        gunicorn = Path(sys.executable).with_name("gunicorn")
        self.log = open(root / "gunicorn.log", "wb")
        self.process = subprocess.Popen(
            [
                str(gunicorn),
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--timeout",
                "300",
                "--log-level",
                "warning",
                "api:create_app()",
            ],
            env=self.env,
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(self.url + "/logbook/storage/fields/")
        except Exception:
            self.close()
            raise

    def bodies(self, count: int, batch: int):
        url = self.url + "/logbook/storage/write/"
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"APIToken {self.ids['device_token']}",
        }
        out = []
        for first in range(0, count, batch):
            records = [
                {
                    "ts": START_MS + i * 1000,
                    "field": FIELD,
                    "field_type": "float",
                    "value": value(i),
                }
                for i in range(first, min(count, first + batch))
            ]
            out.append(
                (
                    url,
                    json.dumps({"device_id": self.ids["device"], "records": records}).encode(),
                    headers,
                )
            )
        return out

    def avg(self, begin: datetime, end: datetime, interval: str):
        params = {
            "device_id": self.ids["device"],
            "field": FIELD,
            "field_type": "float",
            "aggregation": "avg",
            "interval": interval,
            "from_utc": iso(begin),
            "to_utc": iso(end),
        }
        response = requests.get(
            self.url + "/logbook/storage/read/",
            params=params,
            timeout=60,
            headers={"Authorization": f"APIToken {self.ids['user']}"},
        )
        response.raise_for_status()
        return [(row["ts"], row["value"]) for row in response.json()]

    def close(self):
        stop(self.process)
        self.log.close()


def same_values(a, b) -> bool:
    return len(a) == len(b) and all(
        math.isclose(x[1], y[1], rel_tol=1e-9) for x, y in zip(a, b, strict=False)
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers for the Berth API")
    parser.add_argument(
        "--senders", type=int, default=2, help="concurrent client threads, both systems"
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=50_000,
        help="records per Berth write request (the API maximum)",
    )
    args = parser.parse_args()
    count = args.days * 86_400
    root = Path(tempfile.mkdtemp(prefix="logbook-bench-"))
    influx = berth = None
    try:
        (root / "influx").mkdir()
        influx = Influx(root / "influx")
        (root / "berth").mkdir()
        berth = Berth(root / "berth", args.workers)
        print(
            f"samples: {count:,} ({args.days} days at 1 Hz, one device, one field); "
            f"Berth: {args.workers} gunicorn workers, {args.batch:,} records per request; {args.senders} senders; "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        results = {}
        for name, _system, bodies in [
            ("InfluxDB", influx, influx.bodies(count)),
            ("Berth", berth, berth.bodies(count, args.batch)),
        ]:
            elapsed = send_all(requests.Session, bodies, args.senders)
            results[name] = {"ingest": count / elapsed}
            print(
                f"{name:9s} ingest: {count / elapsed:12,.0f} samples/s ({elapsed:.1f} s, {len(bodies)} requests)"
            )
        print(
            f"InfluxDB  cache written out and compacted after {influx.settle():.0f} s (not counted)"
        )
        day = START + timedelta(days=min(14, args.days - 1))
        queries = [
            ("avg 30d @1h", START, START + timedelta(days=args.days), "1h"),
            ("avg 1d @10m", day, day + timedelta(days=1), "10m"),
        ]
        for label, begin, end, interval in queries:
            influx_ms, influx_rows = median_ms(
                lambda b=begin, e=end, i=interval: influx.avg(b, e, i)
            )
            berth_ms, berth_rows = median_ms(lambda b=begin, e=end, i=interval: berth.avg(b, e, i))
            results["InfluxDB"][label], results["Berth"][label] = influx_ms, berth_ms
            agree = "same values" if same_values(influx_rows, berth_rows) else "VALUES DIFFER"
            print(
                f"{label}: InfluxDB {influx_ms:8.1f} ms  Berth {berth_ms:8.1f} ms  "
                f"({len(berth_rows)} buckets, {agree})"
            )
        print(f"load average {os.getloadavg()[0]:.2f} at the end")
        print()
        print(f"{'':22s}{'InfluxDB':>14s}{'Berth':>14s}{'Berth/InfluxDB':>16s}")
        ingest_ratio = results["Berth"]["ingest"] / results["InfluxDB"]["ingest"]
        print(
            f"{'ingest samples/s':22s}{results['InfluxDB']['ingest']:14,.0f}{results['Berth']['ingest']:14,.0f}"
            f"{ingest_ratio:16.2f}   (target >= 0.5)"
        )
        for label, *_ in queries:
            ratio = results["Berth"][label] / results["InfluxDB"][label]
            print(
                f"{label + ' median ms':22s}{results['InfluxDB'][label]:14.1f}{results['Berth'][label]:14.1f}"
                f"{ratio:16.2f}   (target <= 1.0)"
            )
        return 0
    finally:
        for system in (berth, influx):
            if system is not None:
                system.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
