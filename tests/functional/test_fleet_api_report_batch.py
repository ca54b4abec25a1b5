"""``POST /master/deployments/report/`` with a list of reports (issue 20): one transaction, answered
item by item in the order sent, idempotent like single reports; a malformed list is a 400 naming
the item's index and field and records nothing; a list longer than ``MAX_REPORT_BATCH`` is a 400;
a rollout decides inside the list exactly as with single reports."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from api.audit import AuditEntry
from api.deployments.models import Deployment
from api.extensions import db
from api.limits import MAX_REPORT_BATCH
from api.master.schemas import DeploymentReportResult
from api.outbox import OutboxMessage
from tests.fixtures.api import counter_drift, report_body, signed_report
from tests.functional.test_fleet_api_rollouts import Fleet

pytestmark = pytest.mark.db

URL = "/master/deployments/report/"


@pytest.fixture
def fleet(app, client, api_factory, account, user_token, master_token):
    return Fleet(app, client, api_factory, account, user_token, master_token)


def body(fleet, device, release, outcome, **extra):
    """The report as ``device`` signs it (berth/results.py)."""
    return signed_report(
        fleet.app, report_body(fleet.units[device], release, outcome, **extra), device
    )


def send(fleet, items, expect=200):
    r = fleet.client.post(URL, json=items, headers=fleet.master)
    assert r.status_code == expect, r.json
    return r.json


def stored(fleet, release):
    with fleet.app.app_context():
        return {
            d: (s, a)
            for d, s, a in db.session.execute(
                select(Deployment.device_id, Deployment.status, Deployment.attempts).where(
                    Deployment.release_id == release["id"]
                )
            )
        }


def test_a_list_is_recorded_and_answered_item_by_item(fleet):
    devices = fleet.devices(3)
    release = fleet.release(devices)
    items = [
        # in order: applying, then its result (timestamped, as the device sends them)
        body(fleet, devices[0], release, "applying", finished_at="2026-11-30T09:59:00Z"),
        body(fleet, devices[0], release, "succeeded", finished_at="2026-11-30T09:59:30Z"),
        body(fleet, devices[1], release, "failed"),
        body(fleet, devices[2], release, "succeeded", finished_at="2026-11-30T10:00:00Z"),
    ]
    results = send(fleet, items)
    for result in results:
        DeploymentReportResult.model_validate(result)
    assert [(r["index"], r["status"], r["errors"]) for r in results] == [
        (i, 200, None) for i in range(4)
    ]
    assert [r["deployment"]["status"] for r in results] == [
        "applying",
        "succeeded",
        "failed",
        "succeeded",
    ]
    assert results[3]["deployment"]["finished_at"] == "2026-11-30T10:00:00.000Z"
    assert results[2]["deployment"]["error"] == "exited 3"
    expected = {
        devices[0]: ("succeeded", 1),
        devices[1]: ("failed", 1),
        devices[2]: ("succeeded", 1),
    }
    assert stored(fleet, release) == expected
    # idempotent: the same list again changes nothing and answers the same
    again = send(fleet, items)
    assert [r["deployment"]["status"] for r in again[1:]] == ["succeeded", "failed", "succeeded"]
    assert stored(fleet, release) == expected
    assert send(fleet, []) == []


def test_an_item_the_master_may_not_report_is_answered_alone(fleet, api_factory):
    devices = fleet.devices(2)
    release = fleet.release(devices)
    stranger = api_factory.device(api_factory.account())  # another account's minion
    items = [
        body(fleet, devices[0], release, "succeeded"),
        {**body(fleet, devices[1], release, "succeeded"), "unit_id": stranger.unit_id},
        body(fleet, devices[1], release, "succeeded", release_id=999_999),
        body(fleet, devices[1], release, "succeeded", version_hash="00000000"),
        # not signed by devices[1]: that item alone is refused (and audited)
        {**body(fleet, devices[1], release, "succeeded"), "outcome": "failed"},
        body(fleet, devices[1], release, "failed"),
    ]
    results = send(fleet, items)
    assert [r["status"] for r in results] == [200, 404, 404, 400, 400, 200]
    assert "detail" in results[1]["errors"] and results[1]["deployment"] is None
    assert "No release 999999" in results[2]["errors"]["detail"]
    assert list(results[3]["errors"]) == ["version_hash"]
    assert list(results[4]["errors"]) == ["signature"]
    with fleet.app.app_context():
        refused = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "report.refused")
        ).all()
        assert [e.device_id for e in refused] == [devices[1]]
    assert stored(fleet, release) == {devices[0]: ("succeeded", 1), devices[1]: ("failed", 1)}


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"outcome": "exploded"}, "outcome"),
        ({"release_id": 0}, "release_id"),
        ({"unit_id": None}, "unit_id"),
        ({"containers": "nope"}, "containers"),
        ({"finished_at": "yesterday"}, "finished_at"),
    ],
)
def test_a_malformed_item_is_a_400_naming_index_and_field_and_records_nothing(fleet, bad, field):
    devices = fleet.devices(2)
    release = fleet.release(devices)
    items = [
        body(fleet, devices[0], release, "succeeded"),
        body(fleet, devices[1], release, "failed"),
    ]
    items[1] = {**items[1], **bad}
    errors = send(fleet, items, expect=400)
    assert list(errors) == ["1"] and list(errors["1"]) == [field], errors
    assert stored(fleet, release) == {}


def test_a_list_that_is_not_of_objects_or_too_long_is_a_400(fleet):
    errors = send(fleet, [{"outcome": "succeeded"}, 7], expect=400)
    assert set(errors) == {"0", "1"}
    assert "unit_id" in errors["0"] and "release_id" in errors["0"]
    assert errors["1"] == {
        "non_field_errors": ["Invalid data. Expected a dictionary, but got int."]
    }
    errors = send(fleet, [{}] * (MAX_REPORT_BATCH + 1), expect=400)
    assert errors == {
        "non_field_errors": [f"Ensure this list has no more than {MAX_REPORT_BATCH} elements."]
    }
    # the single-report shape is unchanged
    r = fleet.client.post(URL, json="nope", headers=fleet.master)
    assert r.status_code == 400 and "non_field_errors" in r.json


def test_a_list_starts_the_next_wave_and_halts_exactly_once(fleet, app):
    devices = fleet.devices(8)
    release = fleet.release(devices, rollout={"waves": [50, 100], "advance_at": 100, "halt_at": 20})
    waves = fleet.waves(release)
    # all of wave 1, each twice, in one list: wave 2 starts once
    items = [body(fleet, d, release, "succeeded") for d in waves[1] for _ in range(2)]
    assert {r["status"] for r in send(fleet, items)} == {200}
    body_ = fleet.rollout(release)
    assert body_["wave"] == 2 and body_["state"] == "running"
    assert [m[0] for m in fleet.outbox()].count(f"release {release['id']} queued") == 2
    # wave 2: one success, then failures: the first failure crosses halt_at 20 % (1 of 2)
    items = [body(fleet, waves[2][0], release, "succeeded")] + [
        body(fleet, d, release, "failed") for d in waves[2][1:]
    ]
    assert {r["status"] for r in send(fleet, items)} == {200}
    body_ = fleet.rollout(release)
    assert body_["state"] == "halted" and body_["waves"][1]["failed"] == 3
    with app.app_context():
        halts = db.session.scalars(
            select(OutboxMessage.reason).where(
                OutboxMessage.reason == f"rollout of release {release['id']} halted"
            )
        ).all()
        assert len(halts) == 1
        assert counter_drift() == {}


def test_a_refused_item_is_recorded_with_the_list_and_rolls_nothing_back(fleet):
    """Review of issue 20: a forged item of a list is refused alone -- its 400 in the results and
    its ``report.refused`` row in the list's one transaction, with the other items' work (an
    earlier item's adoption by this master, their deployments); nothing is rolled back mid-list
    (before: the refusal rolled the session back and committed its row on its own)."""
    import re

    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session

    from api.security.tenancy import MinionEnrollment

    devices = fleet.devices(2)
    release = fleet.release(devices)
    with fleet.app.app_context():  # made before its master was recorded: adopted on its report
        assert db.session.get(MinionEnrollment, fleet.units[devices[0]]).master is None
    items = [
        body(fleet, devices[0], release, "succeeded"),
        {**body(fleet, devices[1], release, "succeeded"), "outcome": "failed"},  # forged
        body(fleet, devices[1], release, "failed"),
    ]
    events, written = [], set()  # each transaction's end, with the tables it wrote

    def after_cursor_execute(conn, cursor, statement, *args):
        found = re.match(r"\s*(?:INSERT INTO|UPDATE)\s+(\w+)", statement, re.I)
        if found:
            written.add(found.group(1))

    def ended(kind):
        def listener(session):
            events.append((kind, sorted(written)))
            written.clear()

        return listener

    listeners = [
        (Engine, "after_cursor_execute", after_cursor_execute),
        (Session, "after_commit", ended("commit")),
        (Session, "after_rollback", ended("rollback")),
    ]
    for target, name, fn in listeners:
        event.listen(target, name, fn)
    try:
        results = send(fleet, items)
    finally:
        for target, name, fn in listeners:
            event.remove(target, name, fn)
    assert [r["status"] for r in results] == [200, 400, 200]
    assert list(results[1]["errors"]) == ["signature"]
    # the refusal is committed with the list's deployments, not on its own
    assert [kind for kind, _ in events if kind == "rollback"] == [], events
    # one commit writes the deployments, and it holds the refusal's audit row (the adoptions,
    # committed by themselves as on a single report, are the other audit rows)
    with_deployments = [set(tables) for _, tables in events if "deployments" in tables]
    assert len(with_deployments) == 1 and "audit_log" in with_deployments[0], events
    with fleet.app.app_context():
        actions = db.session.execute(
            select(AuditEntry.action, AuditEntry.device_id).where(
                AuditEntry.action.in_(["report.refused", "device.master_adopt"]),
                AuditEntry.device_id.in_(devices),
            )
        ).all()
    assert sorted(actions) == sorted(
        [("device.master_adopt", devices[0]), ("device.master_adopt", devices[1])]
        + [("report.refused", devices[1])]
    )
    assert stored(fleet, release) == {devices[0]: ("succeeded", 1), devices[1]: ("failed", 1)}
