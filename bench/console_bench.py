#!/usr/bin/env python
"""Console benchmark (issue 21): the fleet page and a rollout release's page at 100,000 devices.

Fills a database (bulk inserts, as bench/rollout_bench.py does) with one account, ``--devices``
devices tagged ``bench`` (a tenth also ``bench-a``), and a release targeting the tag with a
rollout (waves [1, 10, 50, 100]) created through the REST API; the first wave's devices
then have stored deployments (30 failed, the rest succeeded; the rollout's counters recounted),
as after their reports. The planner's statistics are then refreshed as in a running
installation (SQLite: the worker's ``analyze_sqlite``; PostgreSQL: what autovacuum does,
``VACUUM ANALYZE``). Then it logs in through the account page like a browser and
requests, ``--samples`` times each, through the real app (Flask's test client, in-process):

* the fleet page (``console.fleet``), its first page, and filtered by tag;
* the rollout release's page (``console.release_page``), its live part and its failed devices.

Prints p50 / p95 ms of each (target p95 <= 200 ms); ``--queries`` also each page's SQL
statements (count, time in the database, the slowest three).

    .venv/bin/python bench/console_bench.py [--devices 100000] [--samples 20]
    .venv/bin/python bench/console_bench.py --database-url postgresql+psycopg://berth:berth@127.0.0.1:5432/berth_bench
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TAG = "bench"
PASSWORD = "console-bench-password"


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def _csrf(html: bytes) -> str:
    match = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', html)
    if not match:
        raise SystemExit("console_bench: no CSRF token on the login page")
    return match.group(1).decode()


def fill(app, devices: int) -> tuple[str, str]:
    """The account, its devices and user; returns (user token, user email)."""
    from flask_migrate import downgrade, upgrade
    from sqlalchemy import insert

    from api.accounts.models import Account, User
    from api.devices.models import Device
    from api.extensions import db
    from api.rollouts.models import device_tags
    from api.tokens import create_token

    with app.app_context():
        if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
            downgrade(revision="base")  # a database of its own: start from nothing
        upgrade()
        account = Account(name="console-bench")
        db.session.add(account)
        db.session.flush()
        user = User(account_id=account.id, email="bench@console.local")
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.flush()
        _, token = create_token(user, scope="user", name="bench")
        ids = [str(uuid.uuid4()) for _ in range(devices)]
        for start in range(0, devices, 10_000):
            chunk = ids[start : start + 10_000]
            db.session.execute(
                insert(Device),
                [
                    {
                        "id": d,
                        "account_id": account.id,
                        "unit_id": f"car-{start + i:06d}",
                        "display": f"Car {start + i}",
                    }
                    for i, d in enumerate(chunk)
                ],
            )
            tags = [{"device_id": d, "tag": TAG} for d in chunk]
            tags += [{"device_id": d, "tag": "bench-a"} for d in chunk[::10]]
            db.session.execute(insert(device_tags), tags)
        db.session.commit()
        return token, user.email


def analyze(app) -> None:
    """What the worker does at its start and hourly on SQLite (PostgreSQL: autovacuum)."""
    from api.extensions import db
    from api.worker import analyze_sqlite

    with app.app_context():
        if not analyze_sqlite():
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")


def release(app, token: str) -> tuple[int, int]:
    """A release with a rollout targeting the tag (REST API); some outcomes set."""
    from sqlalchemy import func, insert, select

    from api.deployments.models import Deployment
    from api.extensions import db
    from api.releases.models import release_devices
    from api.rollouts import counters
    from api.types import utcnow

    client = app.test_client()
    headers = {"Authorization": f"APIToken {token}"}
    resp = client.post("/docker/projects/", json={"name": "bench"}, headers=headers)
    project = resp.json["id"]
    body = {
        "version": "41",
        "containers": [{"name": "app", "image": "app", "tag": "1"}],
        "devices": [],
        "device_tags": [TAG],
        "pin_digests": False,
        "rollout": {"waves": [1, 10, 50, 100], "advance_at": 95, "halt_at": 5},
    }
    started = time.perf_counter()
    resp = client.post(f"/docker/projects/{project}/releases/", json=body, headers=headers)
    if resp.status_code != 201:
        raise SystemExit(f"console_bench: release creation: {resp.status_code} {resp.data[:300]}")
    print(f"release for the tag created in {(time.perf_counter() - started) * 1000:.0f} ms")
    release_id = resp.json["id"]
    with app.app_context():
        # wave 1 reported: stored deployments (what reports write), 30 of them failed
        wave1 = db.session.scalars(
            select(release_devices.c.device_id)
            .where(release_devices.c.release_id == release_id, release_devices.c.wave == 1)
            .order_by(release_devices.c.device_id)
        ).all()
        now = utcnow()
        db.session.execute(
            insert(Deployment),
            [
                {
                    "release_id": release_id,
                    "device_id": d,
                    "status": "failed" if n < 30 else "succeeded",
                    "error": "bench: container app exited 1" if n < 30 else None,
                    "attempts": 1,
                    "started_at": now,
                    "finished_at": now,
                }
                for n, d in enumerate(wave1)
            ],
        )
        db.session.commit()
        counters.recount(release_id)
        db.session.commit()
        statuses = db.session.execute(
            select(Deployment.status, func.count())
            .where(Deployment.release_id == release_id)
            .group_by(Deployment.status)
        ).all()
        print("stored deployments:", ", ".join(f"{n} {s}" for s, n in sorted(statuses)))
    return project, release_id


def login(app):
    browser = app.test_client()
    page = browser.get("/account/login/")
    resp = browser.post(
        "/account/login/",
        data={"email": "bench@console.local", "password": PASSWORD, "csrf_token": _csrf(page.data)},
    )
    if resp.status_code != 302:
        raise SystemExit(f"console_bench: login: {resp.status_code}")
    return browser


def statements(app, browser, path: str) -> tuple[int, float, list[tuple[float, str]]]:
    """One request of ``path``: how many SQL statements, their total ms, the 3 slowest."""
    from sqlalchemy import event

    from api.extensions import db

    with app.app_context():
        engine = db.engine
    seen: list[tuple[float, str]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        conn.info["bench_started"] = time.perf_counter()

    def after(conn, cursor, statement, parameters, context, executemany):
        took = (time.perf_counter() - conn.info.pop("bench_started")) * 1000
        seen.append((took, " ".join(statement.split())[:160]))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        browser.get(path)
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    return len(seen), sum(t for t, _ in seen), sorted(seen, reverse=True)[:3]


def timed(browser, path: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        resp = browser.get(path)
        times.append((time.perf_counter() - started) * 1000)
        if resp.status_code != 200:
            raise SystemExit(f"console_bench: GET {path} -> {resp.status_code}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument(
        "--queries", action="store_true", help="also: each page's SQL statements and the slowest"
    )
    args = parser.parse_args()
    state = pathlib.Path(tempfile.mkdtemp(prefix="berth-console-bench-", dir="/tmp"))
    try:
        from flask import url_for

        from api import create_app

        url = args.database_url or f"sqlite:///{state}/api.sqlite3"
        app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": str(state)})
        started = time.perf_counter()
        token, _ = fill(app, args.devices)
        print(f"{args.devices} devices inserted in {time.perf_counter() - started:.1f} s")
        project, release_id = release(app, token)
        analyze(app)
        browser = login(app)
        with app.test_request_context():
            fleet = url_for("console.fleet")
        pages = {
            "fleet page": fleet,
            "fleet page, tag filter": f"{fleet}?tag=bench-a",
            "fleet page, search": f"{fleet}?q=car-0999",
        }
        with app.test_request_context():
            release_url = url_for("console.release_page", project_id=project, release_id=release_id)
        pages["rollout release page"] = release_url
        with app.test_request_context():
            pages["rollout release page, live part"] = url_for(
                "console.release_live", project_id=project, release_id=release_id
            )
        pages["rollout release page, failed"] = f"{release_url}?status=failed"
        print(f"devices: {args.devices}   database: {url.split(':')[0]}   samples: {args.samples}")
        for name, path in pages.items():
            timed(browser, path, 2)  # warm: the first request compiles templates and statements
            times = timed(browser, path, args.samples)
            print(
                f"{name:32s} p50 {statistics.median(times):7.1f} ms   "
                f"p95 {percentile(times, 95):7.1f} ms   ({path})"
            )
            if args.queries:
                count, total, slowest = statements(app, browser, path)
                print(f"    {count} SQL statements, {total:.1f} ms in the database; slowest:")
                for took, text in slowest:
                    print(f"    {took:7.1f} ms  {text}")
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
