"""Master-scope API on a real database: pillar per minion, deployment reports, device sync; outbox rows."""

import pytest
from sqlalchemy import select

from api.extensions import db
from api.outbox import OutboxMessage
from tests.fixtures.api import signed_report

pytestmark = pytest.mark.db


@pytest.fixture
def fleet(client, user_token, master_token, api_factory, account):
    headers = user_token.headers
    registry = client.post(
        "/docker/registries/",
        json={"name": "r", "url": "127.0.0.1:5000", "username": "u", "password": "s3cret-pw"},
        headers=headers,
    ).json
    project = client.post("/docker/projects/", json={"name": "proj"}, headers=headers).json
    devices = [api_factory.device(account), api_factory.device(account)]
    return {
        "user": headers,
        "master": master_token.headers,
        "registry": registry["id"],
        "project": project["id"],
        "devices": devices,
    }


def make_release(client, fleet, version="1.0.0", devices=None, **container):
    body = {
        "version": version,
        "devices": [d.id for d in (devices if devices is not None else fleet["devices"])],
        "containers": [
            {
                "name": "curveball",
                "image": "curveball",
                "tag": "r1",
                "registry": fleet["registry"],
                **container,
            }
        ],
        "remove_containers": ["old"],
        "pin_digests": False,  # images never pushed: run by tag (pinning: test_api_release_pinning.py)
    }
    resp = client.post(
        f"/docker/projects/{fleet['project']}/releases/", json=body, headers=fleet["user"]
    )
    assert resp.status_code == 201, resp.json
    return resp.json


def report(client, fleet, device, release, outcome="succeeded", **extra):
    body = {
        "unit_id": device.unit_id,
        "release_id": release["id"],
        "version_hash": release["version_hash"],
        "outcome": outcome,
        "error": None,
        "containers": [
            {
                "name": "curveball",
                "fully_qualified_name": f"deployment-curveball-{release['id']}",
                "status": "running",
            }
        ],
        "finished_at": "2026-11-27T10:00:00.000Z",
        **extra,
    }
    body = signed_report(client.application, body, device.id)
    return client.post("/master/deployments/report/", json=body, headers=fleet["master"])


# -- pillar ---------------------------------------------------------------------


def test_pillar_has_target_release_and_decrypted_registry(client, fleet):
    release = make_release(client, fleet)
    resp = client.get(
        f"/master/minions/{fleet['devices'][0].unit_id}/pillar/", headers=fleet["master"]
    )
    assert resp.status_code == 200, resp.json
    pillar = resp.json
    assert pillar["release"]["id"] == release["id"]
    assert pillar["release"]["project"] == fleet["project"]
    assert pillar["release"]["version_hash"] == release["version_hash"]
    assert pillar["release"]["containers"] == release["containers"]
    assert pillar["release"]["remove_containers"] == ["old"]
    assert pillar["registries"] == {
        str(fleet["registry"]): {"url": "127.0.0.1:5000", "username": "u", "password": "s3cret-pw"}
    }


def test_pillar_follows_the_newest_release(client, fleet):
    make_release(client, fleet, "1")
    newer = make_release(client, fleet, "2", devices=fleet["devices"][:1])
    first = client.get(
        f"/master/minions/{fleet['devices'][0].unit_id}/pillar/", headers=fleet["master"]
    ).json
    second = client.get(
        f"/master/minions/{fleet['devices'][1].unit_id}/pillar/", headers=fleet["master"]
    ).json
    assert first["release"]["id"] == newer["id"]
    assert second["release"]["version"] == "1"


def test_pillar_without_release_and_unknown_minion(client, fleet):
    resp = client.get(
        f"/master/minions/{fleet['devices'][0].unit_id}/pillar/", headers=fleet["master"]
    )
    assert resp.status_code == 200 and resp.json["release"] is None
    resp = client.get("/master/minions/no-such-minion/pillar/", headers=fleet["master"])
    assert resp.status_code == 404 and "no-such-minion" in resp.json["detail"]


def test_pillar_needs_a_master_token(client, fleet):
    resp = client.get(
        f"/master/minions/{fleet['devices'][0].unit_id}/pillar/", headers=fleet["user"]
    )
    assert resp.status_code == 403 and "scope master" in resp.json["detail"]
    assert client.get(f"/master/minions/{fleet['devices'][0].unit_id}/pillar/").status_code == 401


def test_pillar_of_another_accounts_minion_is_404(client, fleet, api_factory):
    stranger = api_factory.device()
    resp = client.get(f"/master/minions/{stranger.unit_id}/pillar/", headers=fleet["master"])
    assert resp.status_code == 404


# -- reports --------------------------------------------------------------------


def test_success_report_updates_deployment_release_and_device(client, fleet):
    release = make_release(client, fleet)
    device = fleet["devices"][0]
    resp = report(client, fleet, device, release)
    assert resp.status_code == 200, resp.json
    assert resp.json["status"] == "succeeded" and resp.json["attempts"] == 1
    assert resp.json["finished_at"] == "2026-11-27T10:00:00.000Z"
    got = client.get(
        f"/docker/projects/{fleet['project']}/releases/{release['id']}/", headers=fleet["user"]
    ).json
    assert got["successful_deployments"] == [device.id]
    assert client.get(f"/devices/{device.id}/", headers=fleet["user"]).json["docker_releases"] == [
        release["id"]
    ]


def test_report_is_idempotent(client, fleet):
    release = make_release(client, fleet)
    device = fleet["devices"][0]
    first = report(client, fleet, device, release).json
    second = report(client, fleet, device, release).json
    assert first == second


def test_applying_then_failed_counts_one_attempt_and_keeps_the_reason(client, fleet):
    release = make_release(client, fleet)
    device = fleet["devices"][0]
    applying = report(
        client, fleet, device, release, "applying", finished_at="2026-11-27T09:59:00Z"
    ).json
    assert applying["status"] == "applying" and applying["started_at"] == "2026-11-27T09:59:00.000Z"
    assert (
        report(client, fleet, device, release, "applying", finished_at="2026-11-27T09:59:00Z").json[
            "attempts"
        ]
        == 1
    )
    failed = report(
        client, fleet, device, release, "failed", error="container curveball exited (code 1)"
    ).json
    assert failed["status"] == "failed" and failed["error"] == "container curveball exited (code 1)"
    assert failed["attempts"] == 1
    got = client.get(
        f"/docker/projects/{fleet['project']}/releases/{release['id']}/", headers=fleet["user"]
    ).json
    assert got["successful_deployments"] == []


def test_a_late_older_report_does_not_overwrite_a_newer_result(client, fleet):
    release = make_release(client, fleet)
    device = fleet["devices"][0]
    report(client, fleet, device, release, "succeeded", finished_at="2026-11-27T12:00:00Z")
    stale = report(
        client, fleet, device, release, "failed", error="old", finished_at="2026-11-27T11:00:00Z"
    ).json
    assert stale["status"] == "succeeded" and stale["error"] is None


def test_success_supersedes_older_pending_deployments(client, fleet, app):
    device = fleet["devices"][0]
    old = make_release(client, fleet, "1", devices=[device])
    new = make_release(client, fleet, "2", devices=[device])
    report(client, fleet, device, new)
    deployments = client.get(
        f"/docker/projects/{fleet['project']}/releases/{old['id']}/deployments/",
        headers=fleet["user"],
    ).json
    rows = deployments["results"] if isinstance(deployments, dict) else deployments
    assert [d["status"] for d in rows] == ["superseded"]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"outcome": "exploded"}, "outcome"),
        ({"release_id": "seven"}, "release_id"),
        ({"finished_at": "yesterday"}, "finished_at"),
        ({"containers": "curveball"}, "containers"),
        ({"version_hash": "ffffffff"}, "version_hash"),
    ],
)
def test_bad_reports_are_400_naming_the_field(client, fleet, change, field):
    release = make_release(client, fleet)
    resp = report(client, fleet, fleet["devices"][0], release, **change)
    assert resp.status_code == 400 and field in resp.json, resp.json


def test_report_for_unknown_device_or_release_is_404(client, fleet, api_factory):
    release = make_release(client, fleet)
    stranger = api_factory.device()
    assert report(client, fleet, stranger, release).status_code == 404
    missing = dict(release, id=release["id"] + 1000)
    resp = report(client, fleet, fleet["devices"][0], missing, version_hash=None)
    assert resp.status_code == 404 and "No release" in resp.json["detail"]


# -- device sync ----------------------------------------------------------------


def test_sync_registers_new_minions(client, fleet, api_factory):
    stranger = api_factory.device()
    known = fleet["devices"][0].unit_id
    resp = client.post(
        "/master/devices/sync/",
        json={"unit_ids": [known, "minion-new-1", "minion-new-1", stranger.unit_id]},
        headers=fleet["master"],
    )
    assert resp.status_code == 200, resp.json
    assert resp.json == {
        "created": ["minion-new-1"],
        "existing": [known],
        "pending": [stranger.unit_id],
    }
    devices = client.get("/devices/", headers=fleet["user"]).json
    rows = devices["results"] if isinstance(devices, dict) else devices
    assert "minion-new-1" in [d["unit_id"] for d in rows]
    again = client.post(
        "/master/devices/sync/", json={"unit_ids": ["minion-new-1"]}, headers=fleet["master"]
    ).json
    assert again == {"created": [], "existing": ["minion-new-1"], "pending": []}


def test_sync_rejects_bad_ids(client, fleet):
    resp = client.post(
        "/master/devices/sync/",
        json={"unit_ids": ["ok", "has space", "../x"]},
        headers=fleet["master"],
    )
    assert resp.status_code == 400 and set(resp.json["unit_ids"]) == {"1", "2"}
    resp = client.post("/master/devices/sync/", json={"unit_ids": "x"}, headers=fleet["master"])
    assert resp.status_code == 400 and "unit_ids" in resp.json


# -- outbox ---------------------------------------------------------------------


def _outbox(app):
    with app.app_context():
        return [
            (m.reason, m.payload["minions"], [s[0] for s in m.payload["steps"]])
            for m in db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        ]


def test_release_creation_writes_one_outbox_row_for_its_devices(client, fleet, app):
    _outbox(app)  # registry creation queued a login for the account's devices
    release = make_release(client, fleet)
    rows = _outbox(app)
    assert rows[-1] == (
        f"release {release['id']} queued",
        sorted(d.unit_id for d in fleet["devices"]),
        ["saltutil.refresh_pillar", "docker.release_pull"],
    )


def test_adding_a_device_to_a_release_queues_only_that_device(
    client, fleet, app, api_factory, account
):
    release = make_release(client, fleet, devices=fleet["devices"][:1])
    extra = api_factory.device(account)
    resp = client.patch(
        f"/docker/projects/{fleet['project']}/releases/{release['id']}/",
        json={"devices": [fleet["devices"][0].id, extra.id]},
        headers=fleet["user"],
    )
    assert resp.status_code == 200, resp.json
    assert _outbox(app)[-1][1] == [extra.unit_id]


def test_adding_a_registry_queues_a_login_on_the_accounts_devices(client, fleet, app):
    client.post(
        "/docker/registries/",
        json={"name": "r2", "url": "reg.example:443", "username": "a", "password": "b"},
        headers=fleet["user"],
    )
    reason, minions, steps = _outbox(app)[-1]
    assert minions == sorted(d.unit_id for d in fleet["devices"])
    assert steps == ["saltutil.refresh_pillar", "state.sls"]
