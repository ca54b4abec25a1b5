"""The hot paths of a large rollout read through indexes (issue 20, "Targets at 100,000"):
PostgreSQL's own ``EXPLAIN`` of every statement the API sends for a device report, the pillar
of one minion, ``GET .../rollout/`` and the first page of a release's deployments, at 20,000
devices targeted by tag, must not scan a whole table of devices, targets, deployments or tags.

PostgreSQL only: SQLite's planner is not the one a fleet of that size runs on (docs/scale.md).
"""

from __future__ import annotations

import json
import os
import uuid

import pytest
from sqlalchemy import event, insert, text

from api.devices.models import Device
from api.extensions import db
from api.rollouts.models import device_tags
from api.security.tenancy import MinionEnrollment
from tests.fixtures.api import report_body, signed_report
from tests.functional.test_fleet_api_rollouts import Fleet

pytestmark = pytest.mark.skipif(
    not os.environ.get("BERTH_TEST_DATABASE_URL"),
    reason="query plans are PostgreSQL's (CI's PostgreSQL pass); SQLite plans differ by design",
)

DEVICES = 20_000
TAG = "plan"
# Tables that grow with the fleet: a sequential scan of any of them is a cost per request that
# grows with the fleet.
FLEET_TABLES = {
    "devices",
    "release_devices",
    "deployments",
    "device_tags",
    "minion_enrollments",
}  # rollout_wave_counts holds a few rows per rollout: PostgreSQL rightly scans it whole


def _scanned(plan: dict) -> set[str]:
    found = set()
    if plan.get("Node Type") == "Seq Scan":
        found.add(plan["Relation Name"])
    for child in plan.get("Plans", ()):
        found |= _scanned(child)
    return found


class Statements:
    """Every statement the API sends while recording, with its parameters."""

    def __init__(self, engine):
        self.engine, self.seen, self.on = engine, [], False
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany):
        if self.on and statement.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE")):
            self.seen.append((statement, parameters))

    def seq_scans(self) -> list[tuple[str, set[str]]]:
        found = []
        with self.engine.connect() as conn:
            raw = conn.connection.driver_connection
            for statement, parameters in self.seen:
                with raw.cursor() as cur:
                    cur.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
                    plan = cur.fetchone()[0]
                plan = json.loads(plan) if isinstance(plan, str) else plan
                tables = _scanned(plan[0]["Plan"]) & FLEET_TABLES
                sql = " ".join(statement.split())[:400]
                if tables and (sql, tables) not in found:
                    found.append((sql, tables))
            raw.rollback()
        return found


@pytest.fixture
def big_fleet(app, client, api_factory, account, user_token, master_token):
    fleet = Fleet(app, client, api_factory, account, user_token, master_token)
    with app.app_context():
        units = {str(uuid.uuid4()): str(uuid.uuid4()) for _ in range(DEVICES)}
        db.session.execute(
            insert(Device),
            [
                {"id": d, "account_id": account.id, "unit_id": u, "display": ""}
                for d, u in units.items()
            ],
        )
        db.session.execute(insert(device_tags), [{"device_id": d, "tag": TAG} for d in units])
        db.session.execute(
            insert(MinionEnrollment),
            [
                {"unit_id": u, "account_id": account.id, "method": "migration"}
                for u in units.values()
            ],
        )
        db.session.commit()
        fleet.units.update(units)
    # a fleet with a history: every device ran an older release (stored deployments)
    fleet.older = fleet.release(device_tags=[TAG])
    with app.app_context():
        db.session.execute(
            text(
                "INSERT INTO deployments (release_id, device_id, status, attempts, created, updated)"
                " SELECT release_id, device_id, 'succeeded', 1, now(), now() FROM release_devices"
                " WHERE release_id = :r"
            ),
            {"r": fleet.older["id"]},
        )
        db.session.commit()
    release = fleet.release(
        device_tags=[TAG],
        rollout={"waves": [1, 2, 50, 100], "advance_at": 95, "halt_at": 90},
    )
    waves = {}
    with app.app_context():
        rows = db.session.execute(
            text("SELECT device_id, wave FROM release_devices WHERE release_id = :r"),
            {"r": release["id"]},
        ).all()
        for device_id, wave in rows:
            waves.setdefault(wave, []).append(device_id)
        db.session.execute(text("ANALYZE"))
        db.session.commit()
    return fleet, release, waves


def test_per_device_hot_paths_at_20000_devices_read_through_indexes(app, big_fleet):
    """What every device costs the API (its report, its pillar) and the rollout's state read
    (counters), once a wave has started: no statement scans a table that grows with the fleet.
    (A wave's start reads its devices once per wave; the deployments list pages through a
    release's rows: both are measured by bench/rollout_bench.py, not here.)"""
    fleet, release, waves = big_fleet
    # wave 1 (1 %: 200 devices) all succeed in one batch: wave 2 starts
    batch = [
        signed_report(app, report_body(fleet.units[d], release, "succeeded"), d) for d in waves[1]
    ]
    r = fleet.client.post("/master/deployments/report/", json=batch, headers=fleet.master)
    assert r.status_code == 200, r.json
    with app.app_context():
        db.session.execute(text("ANALYZE"))
        db.session.commit()
        statements = Statements(db.engine)
    statements.on = True
    fleet.report(waves[2][0], release, "succeeded")
    fleet.report(waves[2][1], release, "failed", error="boom")
    r = fleet.client.post(
        "/master/deployments/report/",
        json=[
            signed_report(app, report_body(fleet.units[d], release, "applying"), d)
            for d in waves[2][2:4]
        ],
        headers=fleet.master,
    )
    assert r.status_code == 200, r.json
    assert fleet.pillar(waves[4][0]) == fleet.older["id"]  # wave 4 not started: its previous
    assert fleet.pillar(waves[2][5]) == release["id"]
    rollout = fleet.rollout(release)
    assert rollout["wave"] == 2 and rollout["state"] == "running", rollout
    statements.on = False
    assert len(statements.seen) > 10, statements.seen
    with app.app_context():
        scans = statements.seq_scans()
    assert not scans, "\n".join(f"{tables}: {sql}" for sql, tables in scans)
