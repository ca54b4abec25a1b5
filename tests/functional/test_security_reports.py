"""A device's result reaches the API only as that device (docs/security.md "Trust beyond the
REST API", 2.): ``POST /master/deployments/report/`` takes a report only with the signature of
the device it names, made with the report key served in that device's pillar alone."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from api.audit import AuditEntry
from api.deployments.models import Deployment
from api.extensions import db
from berth import results
from tests.fixtures.api import signed_report

pytestmark = pytest.mark.db


@pytest.fixture
def setup(client, app, api_factory, account, user_token, master_token):
    other = api_factory.account("other")
    devices = [api_factory.device(account), api_factory.device(account)]
    theirs = api_factory.device(other)
    project = client.post("/docker/projects/", json={"name": "p"}, headers=user_token.headers).json[
        "id"
    ]
    release = client.post(
        f"/docker/projects/{project}/releases/",
        json={
            "version": "1",
            "devices": [d.id for d in devices],
            "containers": [{"name": "app", "image": "i", "tag": "1"}],
            "pin_digests": False,  # images never pushed: run by tag (pinning: test_api_release_pinning.py)
        },
        headers=user_token.headers,
    )
    assert release.status_code == 201, release.json
    release = release.json
    return {"devices": devices, "theirs": theirs, "release": release, "master": master_token}


def body_for(device, release, outcome="failed"):
    return {
        "unit_id": device.unit_id,
        "release_id": release["id"],
        "version_hash": release["version_hash"],
        "outcome": outcome,
        "error": "forged" if outcome == "failed" else None,
        "containers": [],
        "finished_at": "2026-11-27T10:00:00.000Z",
    }


def post(client, setup, body):
    return client.post("/master/deployments/report/", json=body, headers=setup["master"].headers)


def stored(app):
    with app.app_context():
        deployments = db.session.scalars(select(Deployment)).all()
        refused = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "report.refused").order_by(AuditEntry.id)
        ).all()
        return (
            [(d.device_id, d.status) for d in deployments],
            [(r.account_id, r.device_id, r.details) for r in refused],
        )


def test_the_pillar_serves_each_device_its_own_report_key(client, setup):
    keys = []
    for device in setup["devices"]:
        r = client.get(f"/master/minions/{device.unit_id}/pillar/", headers=setup["master"].headers)
        assert r.status_code == 200
        assert results.valid_key(r.json["report_key"])
        keys.append(r.json["report_key"])
    assert keys[0] != keys[1]
    again = client.get(
        f"/master/minions/{setup['devices'][0].unit_id}/pillar/", headers=setup["master"].headers
    )
    assert again.json["report_key"] == keys[0]


def test_a_report_signed_by_its_device_is_accepted(client, app, setup):
    device = setup["devices"][0]
    body = signed_report(app, body_for(device, setup["release"], "succeeded"), device.id)
    r = post(client, setup, body)
    assert r.status_code == 200, r.json
    assert stored(app) == ([(device.id, "succeeded")], [])


@pytest.mark.parametrize("forgery", ["unsigned", "other device's key", "tampered", "garbage"])
def test_a_report_its_device_did_not_sign_changes_nothing_and_is_audited(
    client, app, account, setup, forgery
):
    victim, forger = setup["devices"]
    body = body_for(victim, setup["release"])
    if forgery == "other device's key":  # a device signing a result for another one
        body = results.signed(
            client.get(
                f"/master/minions/{forger.unit_id}/pillar/", headers=setup["master"].headers
            ).json["report_key"],
            victim.unit_id,
            body,
        )
    elif forgery == "tampered":  # the device's own "succeeded", turned into "failed"
        genuine = signed_report(app, body_for(victim, setup["release"], "succeeded"), victim.id)
        body = {**genuine, "outcome": "failed", "error": "forged"}
    elif forgery == "garbage":
        body = {**body, "signature": "0" * 64}
    r = post(client, setup, body)
    assert r.status_code == 400, r.json
    assert list(r.json) == ["signature"]
    deployments, refused = stored(app)
    assert deployments == []  # no deployment row, no rollout change
    assert refused == [
        (
            account.id,
            victim.id,
            {
                "unit_id": victim.unit_id,
                "release_id": str(setup["release"]["id"]),
                "outcome": "failed",
                "reason": "unsigned" if forgery == "unsigned" else "bad signature",
            },
        )
    ]
