"""Release creation at fleet scale: set-based queueing (statement count independent of the
number of devices) and one outbox row per 1,000 minions."""

import time
import uuid

import pytest
from sqlalchemy import event, func, select

from api.extensions import db
from api.models import Device
from api.outbox import OutboxMessage
from api.services.deployments import deployments_of

pytestmark = pytest.mark.db


def _devices(app, account, n):
    with app.app_context():
        rows = [{"id": str(uuid.uuid4()), "account_id": account.id, "unit_id": str(uuid.uuid4()), "display": ""} for _ in range(n)]
        db.session.execute(Device.__table__.insert(), rows)
        db.session.commit()
        return [r["id"] for r in rows]


def _create(client, headers, project, version, device_ids):
    body = {"version": version, "devices": device_ids, "containers": [{"name": "app", "image": "app", "tag": "1"}]}
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
    project = client.post("/docker/projects/", json={"name": "p"}, headers=user_token.headers).json["id"]
    small, large = _devices(app, account, 20), _devices(app, account, 600)
    n_small, resp_small = _count_statements(app, lambda: _create(client, user_token.headers, project, "s", small))
    n_large, resp_large = _count_statements(app, lambda: _create(client, user_token.headers, project, "l", large))
    assert resp_small.status_code == resp_large.status_code == 201
    # (1 of slack: the token's last_used is written at most once a minute)
    assert abs(n_large - n_small) <= 1, (n_small, n_large)


def test_large_release_is_batched_in_the_outbox_and_supersedes_in_bulk(app, client, user_token, account):
    project = client.post("/docker/projects/", json={"name": "p"}, headers=user_token.headers).json["id"]
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
        counts = {}
        for release in (first.json["id"], second["id"]):
            rows = deployments_of(release)
            counts[release] = dict(
                db.session.execute(select(rows.c.status, func.count()).group_by(rows.c.status)).all()
            )
        # the list endpoint derives the same, page by page
        listed = client.get(
            f"/docker/projects/{project}/releases/{first.json['id']}/deployments/?status=superseded&page_size=1000",
            headers=user_token.headers,
        ).json
    assert counts == {first.json["id"]: {"superseded": 2500}, second["id"]: {"queued": 2500}}
    assert listed["count"] == 2500 and len(listed["results"]) == 1000
    assert {row["status"] for row in listed["results"]} == {"superseded"}
    print(f"release creation for 2,500 devices: {elapsed * 1000:.0f} ms")
