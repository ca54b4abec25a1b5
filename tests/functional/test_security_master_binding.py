"""A master credential serves only the minions enrolled through it (issue 17, finding 3).

Before: account A's own master token synced a unit_id account B had created (its minion enrolls
through a platform master with B's enrollment token): the sync answered ``created``, B's
enrollment got 409 for ever, and the platform master was served A's pillar -- A's release,
registry password and a logbook token -- for B's physical device. Each test is such an attack.
"""

import pytest
from sqlalchemy import select

from api.audit import AuditEntry
from api.extensions import db
from api.security.tenancy import MinionEnrollment
from tests.fixtures.api import signed_report

pytestmark = pytest.mark.db

UNIT = "field-unit-42"
UNREACHABLE = {
    "BERTH_SALT_API_URL": "http://127.0.0.1:9",
    "BERTH_SALT_API_USER": "berth",
    "BERTH_SALT_API_PASSWORD": "x",
    "BERTH_SALT_API_TIMEOUT": "1",
}


def cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]


def platform(app, name):
    return {"Authorization": f"APIToken {cli(app, 'platform-token', 'create', '--name', name)}"}


@pytest.fixture
def acct(app, client, api_factory):
    """Accounts "acme" (A, the attacker: its own single-tenant master) and "globex" (B, whose
    minion UNIT is behind the platform master), each with a registry and a release."""
    app.config.update(UNREACHABLE)
    out = {"p": platform(app, "salt-eu-1")}
    for key, name in (("a", "acme"), ("b", "globex")):
        account = api_factory.account(name)
        user = api_factory.token("user", account=account).headers
        client.post(
            "/docker/registries/",
            json={
                "name": "r",
                "url": f"{name}.example:5000",
                "username": name,
                "password": f"{name}-pw",
            },
            headers=user,
        )
        project = client.post("/docker/projects/", json={"name": "app"}, headers=user).json["id"]
        out[key] = {
            "id": account.id,
            "user": user,
            "master": api_factory.token("master", account=account).headers,
            "project": project,
        }
    return out


def enrollment_token(client, who):
    resp = client.post("/enrollment-tokens/", json={"max_uses": 1}, headers=who["user"])
    assert resp.status_code == 201
    return resp.json["token"]


def enroll(client, headers, token, unit=UNIT):
    return client.post(
        "/master/devices/enroll/",
        json={"unit_id": unit, "enrollment_token": token},
        headers=headers,
    )


def sync(client, who, *units):
    resp = client.post(
        "/master/devices/sync/", json={"unit_ids": list(units)}, headers=who["master"]
    )
    assert resp.status_code == 200, resp.json
    return resp.json


def pillar(client, headers, unit=UNIT):
    return client.get(f"/master/minions/{unit}/pillar/", headers=headers)


def release_for(client, who, device_id, version):
    resp = client.post(
        f"/docker/projects/{who['project']}/releases/",
        json={
            "version": version,
            "devices": [device_id],
            "containers": [{"name": "app", "image": "app", "tag": "1"}],
            "pin_digests": False,  # images never pushed: run by tag (pinning: test_api_release_pinning.py)
        },
        headers=who["user"],
    )
    assert resp.status_code == 201, resp.json
    return resp.json


def device_of(client, who, unit=UNIT):
    found = [
        d
        for d in client.get("/devices/", headers=who["user"]).json["results"]
        if d["unit_id"] == unit
    ]
    return found[0] if found else None


def audit(client, who, action):
    return [
        r
        for r in client.get("/audit/", headers=who["user"]).json["results"]
        if r["action"] == action
    ]


def assert_b_pillar(client, acct):
    """The platform master is served B's pillar for UNIT, never anything of A's."""
    resp = pillar(client, acct["p"])
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert [r["username"] for r in body["registries"].values()] == ["globex"]
    assert "acme" not in repr(body)
    return body


def test_sync_never_enrolls_a_unit_id_another_account_has_a_device_for(client, acct):
    # B created the device (pending) and handed its minion an enrollment token
    resp = client.post("/devices/", json={"unit_id": UNIT}, headers=acct["b"]["user"])
    assert resp.status_code == 201 and resp.json["enrolled"] is False
    b_device = resp.json["id"]
    token = enrollment_token(client, acct["b"])
    release_for(client, acct["b"], b_device, "globex-1")

    # A's own master syncs the unit_id first: not created, no device of A, audited as refused
    assert sync(client, acct["a"], UNIT, "acme-own-1") == {
        "created": ["acme-own-1"],
        "existing": [],
        "pending": [UNIT],
    }
    assert device_of(client, acct["a"]) is None
    refused = audit(client, acct["a"], "device.enrollment_conflict")
    assert refused and refused[0]["details"]["unit_ids"] == [UNIT]

    # B's minion enrolls through the platform master, and only B's pillar is served for it
    assert enroll(client, acct["p"], token).status_code == 200
    body = assert_b_pillar(client, acct)
    assert body["release"]["version"] == "globex-1"
    assert pillar(client, acct["a"]["master"]).status_code == 404


def test_an_account_masters_sync_is_taken_over_by_the_rightful_enrollment_token(app, client, acct):
    # A's master syncs the unit_id before B has any trace of it: A's word only
    assert sync(client, acct["a"], UNIT)["created"] == [UNIT]
    a_device = device_of(client, acct["a"])
    release_for(client, acct["a"], a_device["id"], "acme-1")
    assert pillar(client, acct["a"]["master"]).status_code == 200
    # the platform master is not served A's pillar for it (it was not enrolled through it) ...
    assert pillar(client, acct["p"]).status_code == 404

    # ... and B's minion, presenting B's enrollment token through the platform master, takes it
    resp = enroll(client, acct["p"], enrollment_token(client, acct["b"]))
    assert resp.status_code == 200, resp.json
    b_device = device_of(client, acct["b"])
    assert b_device["enrolled"] is True
    release_for(client, acct["b"], b_device["id"], "globex-1")
    assert assert_b_pillar(client, acct)["release"]["version"] == "globex-1"

    # A's device is pending now: no pillar for A's master, no execute
    assert device_of(client, acct["a"])["enrolled"] is False
    assert pillar(client, acct["a"]["master"]).status_code == 404
    resp = client.post(
        f"/dongle/devices/{a_device['id']}/execute/",
        json={"command": "test.ping"},
        headers=acct["a"]["user"],
    )
    assert resp.status_code == 409
    # and a second sync by A does not take it back
    assert sync(client, acct["a"], UNIT)["pending"] == [UNIT]

    # audited in both accounts; A's row says which device and why, not who
    lost = audit(client, acct["a"], "device.enrollment_conflict")
    assert [r["details"]["outcome"] for r in lost] == ["refused", "lost"]
    assert lost[1]["device"] == a_device["id"] and "globex" not in repr(lost)
    taken = audit(client, acct["b"], "device.enrollment_conflict")
    assert [r["details"]["outcome"] for r in taken] == ["taken_over"]
    with app.app_context():
        row = db.session.get(MinionEnrollment, UNIT)
        assert (row.account_id, row.method) == (acct["b"]["id"], "enrollment_token")
        assert row.master.startswith("platform_token:")


def test_an_enrollment_token_presented_by_an_account_master_is_that_masters_word_only(client, acct):
    # A presents its own enrollment token for B's unit_id through A's own master
    assert (
        enroll(client, acct["a"]["master"], enrollment_token(client, acct["a"])).status_code == 200
    )
    assert pillar(client, acct["p"]).status_code == 404
    # B cannot take it through its own master either (that is B's word against A's) ...
    resp = enroll(client, acct["b"]["master"], enrollment_token(client, acct["b"]))
    assert resp.status_code == 409
    assert [
        r["details"]["outcome"] for r in audit(client, acct["b"], "device.enrollment_conflict")
    ] == ["refused"]
    # ... but the minion itself does, through the platform master
    assert enroll(client, acct["p"], enrollment_token(client, acct["b"])).status_code == 200
    assert_b_pillar(client, acct)


def test_an_enrollment_through_a_platform_master_is_not_taken_over(client, acct):
    assert enroll(client, acct["p"], enrollment_token(client, acct["b"])).status_code == 200
    # another account's token through the same platform master: 409, audited, token not used
    token = enrollment_token(client, acct["a"])
    assert enroll(client, acct["p"], token).status_code == 409
    assert [
        r["details"]["outcome"] for r in audit(client, acct["a"], "device.enrollment_conflict")
    ] == ["refused"]
    tokens = client.get("/enrollment-tokens/", headers=acct["a"]["user"]).json["results"]
    assert [t["uses"] for t in tokens] == [0]
    assert_b_pillar(client, acct)


def test_a_master_is_served_only_the_minions_enrolled_through_it(app, client, acct):
    other = platform(app, "salt-us-1")
    assert enroll(client, acct["p"], enrollment_token(client, acct["b"])).status_code == 200
    b_device = device_of(client, acct["b"])
    release = release_for(client, acct["b"], b_device["id"], "globex-1")
    # another platform master and B's own master token: like an unknown minion
    for headers in (other, acct["b"]["master"]):
        assert pillar(client, headers).status_code == 404
        # even signed with the device's own key: the wrong master is not served it
        forged = {
            "unit_id": UNIT,
            "release_id": release["id"],
            "outcome": "failed",
            "error": "forged",
        }
        resp = client.post(
            "/master/deployments/report/",
            json=signed_report(app, forged, b_device["id"]),
            headers=headers,
        )
        assert resp.status_code == 404
    deployments = client.get(
        f"/docker/projects/{acct['b']['project']}/releases/{release['id']}/deployments/",
        headers=acct["b"]["user"],
    )
    assert [d["status"] for d in deployments.json["results"]] == ["queued"]
    # the master it enrolled through is served, and its report counts
    assert pillar(client, acct["p"]).status_code == 200
    resp = client.post(
        "/master/deployments/report/",
        json=signed_report(
            app,
            {"unit_id": UNIT, "release_id": release["id"], "outcome": "succeeded"},
            b_device["id"],
        ),
        headers=acct["p"],
    )
    assert resp.status_code == 200, resp.json


def test_a_rotated_platform_token_hands_its_minions_to_the_next_platform_master(app, client, acct):
    assert enroll(client, acct["p"], enrollment_token(client, acct["b"])).status_code == 200
    successor = platform(app, "salt-eu-1b")
    assert pillar(client, successor).status_code == 404  # while the first one is live
    with app.app_context():
        first = db.session.get(MinionEnrollment, UNIT).master.split(":")[1]
    cli(app, "platform-token", "revoke", first)
    assert pillar(client, successor).status_code == 200
    adopted = audit(client, acct["b"], "device.master_adopt")
    assert len(adopted) == 1 and adopted[0]["details"]["previous"] == f"platform_token:{first}"


def test_enrollments_from_before_the_upgrade_are_adopted_by_the_first_master_that_may(
    app, client, acct, api_factory
):
    """Rows of migration 0013 have no recorded master. A synced one (an account master's word)
    is never taken by a platform master -- that is how the attack's leftovers end -- but by the
    account's first master token that serves it; other rows by the first master that serves them."""
    a = type("A", (), {"id": acct["a"]["id"], "name": "acme"})
    synced = api_factory.device(a, unit_id="synced-before")
    older = api_factory.device(a, unit_id="created-before")
    with app.app_context():
        db.session.get(MinionEnrollment, synced.unit_id).method = "master_sync"
        db.session.commit()
    assert pillar(client, acct["p"], synced.unit_id).status_code == 404
    assert pillar(client, acct["a"]["master"], synced.unit_id).status_code == 200
    assert pillar(client, acct["p"], older.unit_id).status_code == 200  # method migration
    # adopted: now bound, a second master token of A is not served them
    second = api_factory.token("master", account=a).headers
    assert pillar(client, second, synced.unit_id).status_code == 404
    assert pillar(client, acct["a"]["master"], older.unit_id).status_code == 404
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "device.master_adopt")
            .order_by(AuditEntry.id)
        ).all()
        assert [(r.account_id, r.details["unit_id"], r.details["previous"]) for r in rows] == [
            (acct["a"]["id"], "synced-before", None),
            (acct["a"]["id"], "created-before", None),
        ]
