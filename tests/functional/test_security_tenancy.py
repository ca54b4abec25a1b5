"""Tenancy (docs/security.md): one Salt tier, many accounts. Each test is an attack that
succeeded before (knowing a unit_id was enough to claim a device) and is now refused."""

import pytest
from sqlalchemy import select

from api.execute.models import ExecuteJob
from api.extensions import db
from api.outbox import OutboxMessage

pytestmark = pytest.mark.db

UNREACHABLE = {
    "BERTH_SALT_API_URL": "http://127.0.0.1:9",
    "BERTH_SALT_API_USER": "berth",
    "BERTH_SALT_API_PASSWORD": "x",
    "BERTH_SALT_API_TIMEOUT": "1",
}
CONTAINER = {"name": "curveball", "image": "curveball", "tag": "v1"}


def cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


@pytest.fixture
def two(api_factory):
    """Account A owns the enrolled minion "acme-gateway-07"; account B is the attacker."""
    a, b = api_factory.account("acme"), api_factory.account("mallory")
    return {
        "a": a,
        "b": b,
        "a_user": api_factory.token("user", account=a),
        "b_user": api_factory.token("user", account=b),
        "a_master": api_factory.token("master", account=a),
        "b_master": api_factory.token("master", account=b),
        "a_device": api_factory.device(a, unit_id="acme-gateway-07"),
    }


def _outbox_minions(app):
    with app.app_context():
        return [
            m
            for row in db.session.scalars(select(OutboxMessage))
            for m in row.payload.get("minions", [])
        ]


def _claim_and_use(app, client, two):
    """B registers A's unit_id, lists it in a release and executes on it."""
    app.config.update(UNREACHABLE)
    resp = client.post(
        "/devices/", json={"unit_id": "acme-gateway-07"}, headers=two["b_user"].headers
    )
    assert resp.status_code == 201, resp.json  # uniqueness is per account; nothing revealed
    assert resp.json["enrolled"] is False
    claimed = resp.json["id"]
    project = client.post(
        "/docker/projects/", json={"name": "p"}, headers=two["b_user"].headers
    ).json["id"]
    resp = client.post(
        f"/docker/projects/{project}/releases/",
        json={
            "version": "1",
            "devices": [claimed],
            "containers": [CONTAINER],
            "pin_digests": False,  # images never pushed: run by tag (pinning: test_api_release_pinning.py)
        },
        headers=two["b_user"].headers,
    )
    assert resp.status_code == 201  # a pending device may be listed in a release ...
    resp = client.post(
        f"/dongle/devices/{claimed}/execute/",
        json={"command": "test.ping"},
        headers=two["b_user"].headers,
    )
    assert (
        resp.status_code == 409 and "pending" in resp.json["detail"]
    )  # ... but nothing runs on it
    with app.app_context():
        assert db.session.scalars(select(ExecuteJob)).all() == []
    assert "acme-gateway-07" not in _outbox_minions(app)  # no Salt message reaches the minion
    # B's master is never served the minion's pillar, and its reports are not taken
    assert (
        client.get(
            "/master/minions/acme-gateway-07/pillar/", headers=two["b_master"].headers
        ).status_code
        == 404
    )
    return claimed


def test_claim_of_an_enrolled_device_through_post_devices(app, client, two):
    _claim_and_use(app, client, two)
    # the owner is untouched: still enrolled, still served
    assert (
        client.get(f"/devices/{two['a_device'].id}/", headers=two["a_user"].headers).json[
            "enrolled"
        ]
        is True
    )
    assert (
        client.get(
            "/master/minions/acme-gateway-07/pillar/", headers=two["a_master"].headers
        ).status_code
        == 200
    )


def test_claim_after_the_owner_deleted_its_device(app, client, two):
    assert (
        client.delete(f"/devices/{two['a_device'].id}/", headers=two["a_user"].headers).status_code
        == 204
    )
    _claim_and_use(app, client, two)
    # not even B's own single-tenant master sync moves it: it stays A's until it enrolls again
    resp = client.post(
        "/master/devices/sync/",
        json={"unit_ids": ["acme-gateway-07"]},
        headers=two["b_master"].headers,
    )
    assert resp.status_code == 200
    assert resp.json == {"created": [], "existing": [], "pending": ["acme-gateway-07"]}
    assert (
        client.get(
            "/master/minions/acme-gateway-07/pillar/", headers=two["b_master"].headers
        ).status_code
        == 404
    )


def test_sync_never_moves_a_minion_enrolled_elsewhere_and_reveals_nothing(client, two, api_factory):
    resp = client.post(
        "/master/devices/sync/",
        json={"unit_ids": ["acme-gateway-07", "fresh-minion"]},
        headers=two["b_master"].headers,
    )
    assert resp.status_code == 200
    assert resp.json == {
        "created": ["fresh-minion"],
        "existing": [],
        "pending": ["acme-gateway-07"],
    }
    devices = client.get("/devices/", headers=two["b_user"].headers).json["results"]
    assert [d["unit_id"] for d in devices] == ["fresh-minion"] and devices[0]["enrolled"] is True
    assert (
        client.get(
            "/master/minions/acme-gateway-07/pillar/", headers=two["a_master"].headers
        ).status_code
        == 200
    )


def test_a_pending_device_looks_the_same_whether_or_not_another_account_has_it(client, two):
    taken = client.post(
        "/devices/", json={"unit_id": "acme-gateway-07"}, headers=two["b_user"].headers
    ).json
    free = client.post(
        "/devices/", json={"unit_id": "nobody-has-this"}, headers=two["b_user"].headers
    ).json

    def strip(d):
        return {k: v for k, v in d.items() if k not in ("id", "unit_id", "display", "created")}

    assert strip(taken) == strip(free) == {"enrolled": False, "docker_releases": [], "tags": []}
    # and another account's device is "Not found." like an unknown one
    resp = client.get(f"/devices/{two['a_device'].id}/", headers=two["b_user"].headers)
    assert resp.status_code == 404 and resp.json == {"detail": "Not found."}


def test_enrollment_token_through_a_platform_master(app, client, two):
    platform = cli(app, "platform-token", "create", "--name", "salt-eu-1")
    assert platform.startswith("berth_platform_")
    ph = {"Authorization": f"APIToken {platform}"}
    resp = client.post(
        "/enrollment-tokens/",
        json={"name": "batch 7", "max_uses": 1},
        headers=two["b_user"].headers,
    )
    assert resp.status_code == 201 and resp.headers["Cache-Control"] == "no-store"
    token = resp.json["token"]
    assert (
        client.get("/enrollment-tokens/", headers=two["b_user"].headers)
        .json["results"][0]
        .get("token")
        is None
    )

    # the platform master serves only enrolled minions: B's new minion is unknown until it enrolls
    assert client.get("/master/minions/b-minion-1/pillar/", headers=ph).status_code == 404
    resp = client.post(
        "/master/devices/enroll/",
        json={"unit_id": "b-minion-1", "enrollment_token": token},
        headers=ph,
    )
    assert resp.status_code == 200, resp.json
    assert client.get("/master/minions/b-minion-1/pillar/", headers=ph).status_code == 200
    assert (
        client.get("/master/minions/acme-gateway-07/pillar/", headers=ph).status_code == 200
    )  # A's too
    # used up (max_uses 1), and an unknown token: same answer
    for bad in (token, "berth_enroll_nope"):
        resp = client.post(
            "/master/devices/enroll/",
            json={"unit_id": "b-minion-2", "enrollment_token": bad},
            headers=ph,
        )
        assert resp.status_code == 400 and "enrollment_token" in resp.json
    # B's token cannot take A's enrolled minion while A has it
    token2 = client.post("/enrollment-tokens/", json={}, headers=two["b_user"].headers).json[
        "token"
    ]
    resp = client.post(
        "/master/devices/enroll/",
        json={"unit_id": "acme-gateway-07", "enrollment_token": token2},
        headers=ph,
    )
    assert resp.status_code == 409
    # a platform token is no user token and does not sync
    assert client.get("/devices/", headers=ph).status_code == 403
    assert (
        client.post("/master/devices/sync/", json={"unit_ids": ["x"]}, headers=ph).status_code
        == 403
    )
    # an account's master token cannot use another account's enrollment token
    token3 = client.post("/enrollment-tokens/", json={}, headers=two["b_user"].headers).json[
        "token"
    ]
    resp = client.post(
        "/master/devices/enroll/",
        json={"unit_id": "b-minion-3", "enrollment_token": token3},
        headers=two["a_master"].headers,
    )
    assert resp.status_code == 400
    # revoked
    tid = client.get("/enrollment-tokens/", headers=two["b_user"].headers).json["results"][-1]["id"]
    assert (
        client.delete(f"/enrollment-tokens/{tid}/", headers=two["b_user"].headers).status_code
        == 204
    )
    resp = client.post(
        "/master/devices/enroll/",
        json={"unit_id": "b-minion-3", "enrollment_token": token3},
        headers=ph,
    )
    assert resp.status_code == 400
    actions = [
        r["action"] for r in client.get("/audit/", headers=two["b_user"].headers).json["results"]
    ]
    assert actions.count("enrollment_token.create") == 3 and "device.enroll" in actions
    assert "enrollment_token.revoke" in actions


def test_a_deleted_devices_minion_moves_only_by_enrolling_again(app, client, two):
    platform = cli(app, "platform-token", "create", "--name", "salt-eu-1")
    ph = {"Authorization": f"APIToken {platform}"}
    token = cli(app, "enrollment", "create", "mallory", "--uses", "5")
    assert (
        client.delete(f"/devices/{two['a_device'].id}/", headers=two["a_user"].headers).status_code
        == 204
    )
    resp = client.post(
        "/master/devices/enroll/",
        json={"unit_id": "acme-gateway-07", "enrollment_token": token},
        headers=ph,
    )
    assert resp.status_code == 200  # the device itself presented B's token: it is B's now
    devices = client.get("/devices/", headers=two["b_user"].headers).json["results"]
    assert [(d["unit_id"], d["enrolled"]) for d in devices] == [("acme-gateway-07", True)]


def test_enrollment_token_bad_input(client, user_token):
    resp = client.post(
        "/enrollment-tokens/",
        json={"max_uses": 0, "expires": "2000-01-01T00:00:00Z"},
        headers=user_token.headers,
    )
    assert resp.status_code == 400 and set(resp.json) == {"max_uses", "expires"}
