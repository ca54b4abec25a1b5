"""Rollout wave counters (api/rollouts/counters.py, migration 0015's triggers) through the real API
and database: after every step of every rollout transition they equal a recount of the rows; a
report's decision reads them (a report's statements do not grow with the wave, none counts it);
``flask rollouts recount`` and the worker's check repair drift, log it, and the CLI audits it."""

from __future__ import annotations

import logging
import uuid

import pytest
from sqlalchemy import delete, event, select, text, update

from api.audit import AuditEntry
from api.devices.models import Device
from api.extensions import db
from api.rollouts import counters
from api.rollouts.models import rollout_wave_counts
from api.security.tenancy import MinionEnrollment
from tests.fixtures.api import counter_drift
from tests.functional.test_fleet_api_rollouts import Fleet

pytestmark = pytest.mark.db


@pytest.fixture
def fleet(app, client, api_factory, account, user_token, master_token):
    return Fleet(app, client, api_factory, account, user_token, master_token)


def exact(fleet):
    """The counters equal a recount of the rows, for every rollout release."""
    with fleet.app.app_context():
        assert counter_drift() == {}


def wave_row(fleet, release, wave):
    body = fleet.rollout(release)["waves"][wave - 1]
    return {k: body[k] for k in ("targets", "succeeded", "failed", "timed_out", "pending")}


def test_counters_follow_reports_advance_halt_resume_abort(fleet):
    devices = fleet.devices(8)
    old = fleet.release(devices)
    for d in devices:
        fleet.report(d, old, "succeeded")
    new = fleet.release(
        devices,
        rollout={"waves": [50, 100], "advance_at": 100, "halt_at": 30, "halt_min_finished": 2},
    )
    exact(fleet)
    waves = fleet.waves(new)
    first, second = waves[1], waves[2]
    assert wave_row(fleet, new, 1) == dict(targets=4, succeeded=0, failed=0, timed_out=0, pending=4)
    fleet.report(first[0], new, "applying")
    exact(fleet)
    fleet.report(first[0], new, "succeeded")
    fleet.report(first[0], new, "succeeded")  # the same result again changes nothing
    exact(fleet)
    # a re-report that changes the result moves the count: succeeded -> failed -> succeeded
    fleet.report(first[1], new, "succeeded")
    fleet.report(first[1], new, "failed", "exited 3")
    assert wave_row(fleet, new, 1)["failed"] == 1 and wave_row(fleet, new, 1)["succeeded"] == 1
    exact(fleet)
    # 1 of 2 finished failed: 50 % > 30 % and 2 finished: halted
    assert fleet.rollout(new)["state"] == "halted"
    fleet.act(new, "resume")
    exact(fleet)
    fleet.report(first[1], new, "succeeded")
    assert wave_row(fleet, new, 1) == dict(targets=4, succeeded=2, failed=0, timed_out=0, pending=2)
    for d in first[2:]:
        fleet.report(d, new, "succeeded")
    body = fleet.rollout(new)
    assert body["wave"] == 2 and body["state"] == "running"
    exact(fleet)
    fleet.report(second[0], new, "applying")
    fleet.act(new, "pause")
    fleet.act(new, "abort")
    exact(fleet)
    assert wave_row(fleet, new, 2) == dict(targets=4, succeeded=0, failed=0, timed_out=0, pending=4)


def test_counters_follow_revert_and_revert_failed(fleet):
    devices = fleet.devices(4)
    old = fleet.release(devices[:3])
    for d in devices[:3]:
        fleet.report(d, old, "succeeded")
    new = fleet.release(devices, rollout={"waves": [100]})
    for d in devices:
        fleet.report(d, new, "succeeded")
    assert fleet.rollout(new)["state"] == "completed"
    body = fleet.act(new, "revert")  # devices[3] has no earlier release: revert_failed at once
    assert body["revert"] == {"devices": 4, "reverted": 0, "failed": 1, "pending": 3}
    exact(fleet)
    fleet.report(devices[0], old, "succeeded")  # back on the old release: reverted
    fleet.report(devices[1], old, "failed", "could not start")  # its revert failed
    exact(fleet)
    body = fleet.rollout(new)
    assert body["revert"] == {"devices": 4, "reverted": 1, "failed": 2, "pending": 1}
    # reverted devices still count as having applied the release in their wave
    assert body["waves"][0]["succeeded"] == 4
    fleet.report(devices[2], old, "succeeded")
    assert fleet.rollout(new)["state"] == "reverted"
    exact(fleet)


def test_counters_follow_superseding_tags_listing_and_deletion(fleet, app):
    devices = fleet.devices(6, tags=["fleet"])
    new = fleet.release(device_tags=["fleet"], rollout={"waves": [100]})
    exact(fleet)
    fleet.report(devices[0], new, "applying")
    fleet.report(devices[1], new, "failed", "no")
    fleet.report(devices[2], new, "succeeded")
    exact(fleet)
    # a newer release lists devices[0]: its applying deployment is superseded
    fleet.release([devices[0]])
    assert fleet.statuses(new)[devices[0]] == "superseded"
    exact(fleet)
    # untagged: no longer a target (its failed row stays, uncounted); tagged again: counted again
    fleet.tag(devices[1], [])
    assert wave_row(fleet, new, 1)["targets"] == 5 and wave_row(fleet, new, 1)["failed"] == 0
    exact(fleet)
    fleet.tag(devices[1], ["fleet"])
    assert wave_row(fleet, new, 1)["targets"] == 6 and wave_row(fleet, new, 1)["failed"] == 1
    exact(fleet)
    # listed and unlisted through PATCH devices (tag-only targets stay targets)
    (extra,) = fleet.devices(1)
    r = fleet.client.patch(fleet.url(new), json={"devices": [extra]}, headers=fleet.headers)
    assert r.status_code == 200, r.json
    assert wave_row(fleet, new, 1)["targets"] == 7
    fleet.report(extra, new, "succeeded")
    exact(fleet)
    r = fleet.client.patch(fleet.url(new), json={"devices": []}, headers=fleet.headers)
    assert r.status_code == 200, r.json
    assert wave_row(fleet, new, 1)["targets"] == 6
    exact(fleet)
    # a deleted device leaves its wave (cascades on both tables)
    r = fleet.client.delete(f"/devices/{devices[2]}/", headers=fleet.headers)
    assert r.status_code == 204
    assert wave_row(fleet, new, 1) == dict(targets=5, succeeded=0, failed=1, timed_out=0, pending=4)
    exact(fleet)
    # a deleted release takes its counters with it
    r = fleet.client.delete(fleet.url(new), headers=fleet.headers)
    assert r.status_code == 204, r.json
    with app.app_context():
        assert db.session.execute(select(rollout_wave_counts)).all() == []


def test_a_report_reads_counters_not_the_wave(fleet, app, account):
    """The statements of one report are the same at 10 and at 2,000 targets, and none of them
    counts the wave (the report path before the counters grouped the wave's rows)."""

    def statements_of_a_report(n):
        with app.app_context():
            rows = [
                {"id": str(uuid.uuid4()), "account_id": account.id, "unit_id": str(uuid.uuid4())}
                for _ in range(n)
            ]
            db.session.execute(Device.__table__.insert(), [{**r, "display": ""} for r in rows])
            db.session.execute(
                MinionEnrollment.__table__.insert(),
                [
                    {"unit_id": r["unit_id"], "account_id": account.id, "method": "migration"}
                    for r in rows
                ],
            )
            db.session.commit()
        fleet.units.update({r["id"]: r["unit_id"] for r in rows})
        release = fleet.release([r["id"] for r in rows], rollout={"waves": [100], "halt_at": 100})
        device = rows[0]["id"]
        fleet.report(device, release, "applying")
        seen = []

        def record(conn, cursor, statement, parameters, context, executemany):
            seen.append(" ".join(statement.split()))

        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", record)
        try:
            fleet.report(device, release, "succeeded")
        finally:
            event.remove(engine, "before_cursor_execute", record)
        return seen

    small, large = statements_of_a_report(10), statements_of_a_report(2000)
    assert len(small) == len(large), (small, large)
    assert not [s for s in large if "count(" in s.lower() and "release_devices" in s], large
    exact(fleet)


def test_recount_cli_repairs_drift_logs_and_audits(fleet, app, caplog):
    devices = fleet.devices(3)
    release = fleet.release(devices, rollout={"waves": [100], "halt_at": 100})
    fleet.report(devices[0], release, "succeeded")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["rollouts", "recount", str(release["id"])])
    assert result.exit_code == 0, result.output
    assert "agree" in result.output
    with app.app_context():
        db.session.execute(
            update(rollout_wave_counts)
            .where(rollout_wave_counts.c.bucket == "succeeded")
            .values(n=3)
        )
        db.session.execute(
            delete(rollout_wave_counts).where(rollout_wave_counts.c.bucket == "targets")
        )
        db.session.commit()
        assert counter_drift() != {}
    with caplog.at_level(logging.WARNING, logger="api.rollouts.counters"):
        result = runner.invoke(args=["rollouts", "recount", str(release["id"])])
    assert result.exit_code == 0, result.output
    assert "wave 1 succeeded: 3 -> 1" in result.output
    assert "wave 1 targets: 0 -> 3" in result.output
    assert "drifted" in caplog.text
    exact(fleet)
    with app.app_context():
        entries = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "rollout.recount")
        ).all()
        assert [e.target for e in entries] == [f"release:{release['id']}"] * 2
        assert entries[-1].account_id == fleet.account.id
        assert {"wave": 1, "bucket": "succeeded", "counter": 3, "counted": 1} in entries[
            -1
        ].details["drift"]
    assert runner.invoke(args=["rollouts", "recount", "999999"]).exit_code != 0


def test_worker_check_repairs_every_rollout(fleet, app, caplog):
    devices = fleet.devices(2)
    a = fleet.release(devices, rollout={"waves": [100]})
    b = fleet.release(devices, rollout={"waves": [50, 100]})
    fleet.report(devices[0], b, "applying")
    with app.app_context():
        assert counters.check_all() == 0
        db.session.execute(text("UPDATE rollout_wave_counts SET n = n + 5"))
        db.session.commit()
        with caplog.at_level(logging.WARNING, logger="api.rollouts.counters"):
            assert counters.check_all() == 2
        assert f"release {a['id']}" in caplog.text and f"release {b['id']}" in caplog.text
        assert counter_drift() == {}
