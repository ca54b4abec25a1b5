"""Release creation at fleet scale: set-based queueing (statement count independent of the
number of devices) and one outbox row per 1,000 minions."""

import time
import uuid
from collections import Counter

import pytest
from sqlalchemy import event, select

from api.devices.models import Device
from api.extensions import db
from api.outbox import OutboxMessage
from api.security.tenancy import MinionEnrollment
from tests.fixtures.api import deployment_statuses, signed_report

pytestmark = pytest.mark.db


def _devices(app, account, n):
    with app.app_context():
        rows = [
            {
                "id": str(uuid.uuid4()),
                "account_id": account.id,
                "unit_id": str(uuid.uuid4()),
                "display": "",
            }
            for _ in range(n)
        ]
        db.session.execute(Device.__table__.insert(), rows)
        db.session.execute(
            MinionEnrollment.__table__.insert(),
            [
                {"unit_id": r["unit_id"], "account_id": account.id, "method": "migration"}
                for r in rows
            ],
        )
        db.session.commit()
        return [r["id"] for r in rows]


def _create(client, headers, project, version, device_ids):
    body = {
        "version": version,
        "devices": device_ids,
        "containers": [{"name": "app", "image": "app", "tag": "1"}],
        "pin_digests": False,  # images never pushed: run by tag (pinning: test_api_release_pinning.py)
    }
    return client.post(f"/docker/projects/{project}/releases/", json=body, headers=headers)


def _count_statements(app, action):
    statements = []
    with app.app_context():
        engine = db.engine

    def count(*_args):
        statements.append(1)

    event.listen(engine, "before_cursor_execute", count)
    try:
        result = action()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(statements), result


def test_statement_count_does_not_grow_with_devices(app, client, user_token, account):
    project = client.post("/docker/projects/", json={"name": "p"}, headers=user_token.headers).json[
        "id"
    ]
    small, large = _devices(app, account, 20), _devices(app, account, 600)
    n_small, resp_small = _count_statements(
        app, lambda: _create(client, user_token.headers, project, "s", small)
    )
    n_large, resp_large = _count_statements(
        app, lambda: _create(client, user_token.headers, project, "l", large)
    )
    assert resp_small.status_code == resp_large.status_code == 201
    # (1 of slack: the token's last_used is written at most once a minute)
    assert abs(n_large - n_small) <= 1, (n_small, n_large)


def test_large_release_is_batched_in_the_outbox_and_supersedes_in_bulk(
    app, client, user_token, account
):
    project = client.post("/docker/projects/", json={"name": "p"}, headers=user_token.headers).json[
        "id"
    ]
    ids = _devices(app, account, 2500)
    started = time.monotonic()
    first = _create(client, user_token.headers, project, "1", ids)
    elapsed = time.monotonic() - started
    assert first.status_code == 201, first.json
    assert sorted(first.json["devices"]) == sorted(ids)
    second = _create(client, user_token.headers, project, "2", ids).json
    with app.app_context():
        rows = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        assert [len(m.payload["minions"]) for m in rows] == [1000, 1000, 500, 1000, 1000, 500]
        counts = {
            release: Counter(deployment_statuses(release).values())
            for release in (first.json["id"], second["id"])
        }
        # the list endpoint derives the same, page by page
        listed = client.get(
            f"/docker/projects/{project}/releases/{first.json['id']}/deployments/?status=superseded&page_size=1000",
            headers=user_token.headers,
        ).json
    assert counts == {first.json["id"]: {"superseded": 2500}, second["id"]: {"queued": 2500}}
    assert listed["count"] == 2500 and len(listed["results"]) == 1000
    assert {row["status"] for row in listed["results"]} == {"superseded"}
    print(f"release creation for 2,500 devices: {elapsed * 1000:.0f} ms")


def _statuses(app, release_id):
    with app.app_context():
        return deployment_statuses(release_id)


def _outbox(app):
    with app.app_context():
        return [
            (m.reason, sorted(m.payload["minions"]))
            for m in db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        ]


def _unit_ids(app, device_ids):
    with app.app_context():
        return sorted(db.session.scalars(select(Device.unit_id).where(Device.id.in_(device_ids))))


def test_deleting_a_large_release_falls_back_in_bulk(app, client, user_token, account):
    headers = user_token.headers
    project = client.post("/docker/projects/", json={"name": "p"}, headers=headers).json["id"]
    small, large = _devices(app, account, 20), _devices(app, account, 600)
    url = f"/docker/projects/{project}/releases/"
    # each group: an older release, then a newer one deleted afterwards
    old_small, old_large = (
        _create(client, headers, project, f"old-{len(g)}", g).json for g in (small, large)
    )
    new_small, new_large = (
        _create(client, headers, project, f"new-{len(g)}", g).json for g in (small, large)
    )
    assert set(_statuses(app, old_large["id"]).values()) == {"superseded"}
    n_small, resp_small = _count_statements(
        app, lambda: client.delete(f"{url}{new_small['id']}/", headers=headers)
    )
    n_large, resp_large = _count_statements(
        app, lambda: client.delete(f"{url}{new_large['id']}/", headers=headers)
    )
    assert resp_small.status_code == resp_large.status_code == 204
    assert abs(n_large - n_small) <= 1, (n_small, n_large)
    assert _statuses(app, old_large["id"]) == {d: "queued" for d in large}
    assert _statuses(app, old_small["id"]) == {d: "queued" for d in small}
    # the devices are told (in batches of 1,000 minions) that their target changed back
    assert _outbox(app)[-1] == (f"release {old_large['id']} queued", _unit_ids(app, large))
    assert client.get(f"{url}{new_large['id']}/deployments/", headers=headers).status_code == 404


def test_patch_removing_devices_falls_back_and_ends_their_deployments(
    app, client, user_token, account, master_token
):
    headers = user_token.headers
    project = client.post("/docker/projects/", json={"name": "p"}, headers=headers).json["id"]
    ran_old, applying, queued, stays = _devices(app, account, 4)
    url = f"/docker/projects/{project}/releases/"
    old = _create(client, headers, project, "1", [ran_old, applying, queued, stays]).json
    with app.app_context():
        units = {d.id: d.unit_id for d in db.session.scalars(select(Device))}

    def report(device, release, outcome):
        body = {
            "unit_id": units[device],
            "release_id": release["id"],
            "version_hash": release["version_hash"],
            "outcome": outcome,
        }
        body = signed_report(app, body, device)
        assert (
            client.post(
                "/master/deployments/report/", json=body, headers=master_token.headers
            ).status_code
            == 200
        )

    for device in (ran_old, applying, queued):
        report(device, old, "succeeded")
    new = _create(client, headers, project, "2", [ran_old, applying, queued, stays]).json
    report(applying, new, "applying")
    before = len(_outbox(app))
    r = client.patch(f"{url}{new['id']}/", json={"devices": [stays]}, headers=headers)
    assert r.status_code == 200, r.json
    assert r.json["devices"] == [stays]
    assert _statuses(app, new["id"]) == {applying: "superseded", stays: "queued"}
    # `applying` may have half-run the new release: the old one is queued again; `ran_old` and
    # `queued` still run the old release, nothing to do for them
    assert _statuses(app, old["id"]) == {
        ran_old: "succeeded",
        applying: "queued",
        queued: "succeeded",
        stays: "superseded",
    }
    assert _outbox(app)[before:] == [(f"release {old['id']} queued", [units[applying]])]
    # adding one back queues the new release on it again
    r = client.patch(f"{url}{new['id']}/", json={"devices": [stays, queued]}, headers=headers)
    assert r.status_code == 200 and sorted(r.json["devices"]) == sorted([stays, queued])
    assert _statuses(app, new["id"])[queued] == "queued"
    assert _outbox(app)[-1] == (f"release {new['id']} queued", [units[queued]])
