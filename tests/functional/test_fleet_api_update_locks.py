"""Update locks through the real API and database (docs/release.md "Update locks"): a device's
``deferred`` report names the holder, is no failure for ``halt_at`` and keeps the wave pending;
the operator's per-device override reaches the device in pillar, is audited and is used up by
the device's report of the apply that used it."""

import pytest

from api.devices.models import Device
from api.extensions import db
from api.rollouts import counters
from tests.functional.test_fleet_api_rollouts import Fleet

pytestmark = pytest.mark.db

HOLDER = (
    "deferred: the update lock (/tmp/berth/updates.lock) is held by deployment-app-1; "
    "nothing was stopped, the device tries again at its next apply"
)


@pytest.fixture
def fleet(app, client, api_factory, account, user_token, master_token):
    return Fleet(app, client, api_factory, account, user_token, master_token)


def rows(fleet, release):
    return {r["device"]: r for r in fleet.deployments(release)["results"]}


def test_deferred_is_shown_with_its_holder_pending_and_never_halts(fleet, app):
    devices = fleet.devices(4)
    # halt_at 0: any failure of wave 1 would halt it
    new = fleet.release(devices, rollout={"waves": [50, 100], "advance_at": 100, "halt_at": 0})
    held, free = fleet.waves(new)[1]

    fleet.report(held, new, "deferred", HOLDER)
    row = rows(fleet, new)[held]
    assert row["status"] == "deferred" and "deployment-app-1" in row["error"]
    body = fleet.rollout(new)
    assert body["state"] == "running" and body["wave"] == 1
    assert body["waves"][0]["failed"] == 0 and body["waves"][0]["pending"] == 2
    fleet.report(free, new, "succeeded")
    body = fleet.rollout(new)
    assert body["state"] == "running" and body["wave"] == 1  # the deferred device is awaited
    assert body["waves"][0]["pending"] == 1
    assert fleet.pillar(held) == new["id"]  # it keeps the release to try again
    with app.app_context():
        assert counters.recount(new["id"]) == {}  # the triggers counted "deferred" too
        db.session.rollback()

    fleet.report(held, new, "succeeded")  # the lock was released: the next sleep applied
    body = fleet.rollout(new)
    assert body["wave"] == 2 and body["waves"][0]["succeeded"] == 2
    assert rows(fleet, new)[held]["status"] == "succeeded"


def raw_pillar(fleet, device_id):
    r = fleet.client.get(f"/master/minions/{fleet.units[device_id]}/pillar/", headers=fleet.master)
    assert r.status_code == 200, r.json
    return r.json


def test_override_reaches_the_device_once_and_is_audited(fleet, api_factory):
    (device,) = fleet.devices(1)
    release = fleet.release([device])
    assert raw_pillar(fleet, device)["update_lock_override"] is False
    fleet.report(device, release, "deferred", HOLDER)

    r = fleet.client.post(f"/devices/{device}/override-lock/", headers=fleet.headers)
    assert r.status_code == 200, r.json
    assert r.json["device_id"] == device and r.json["update_lock_override"] is True
    assert r.json["requested_at"].endswith("Z")
    assert raw_pillar(fleet, device)["update_lock_override"] is True
    reason, minions, steps = fleet.outbox()[-1]
    assert minions == [fleet.units[device]] and steps == ["saltutil.refresh_pillar"]
    audited = fleet.client.get("/audit/?action=device.lock_override", headers=fleet.headers).json
    assert [(e["action"], e["device"], e["token"] is not None) for e in audited["results"]] == [
        ("device.lock_override", device, True)
    ]

    # a deferral does not use it up (the override was not applied yet) ...
    fleet.report(device, release, "deferred", HOLDER)
    assert raw_pillar(fleet, device)["update_lock_override"] is True
    # ... the device's report of the apply that used it does: the next apply obeys locks again
    fleet.report(device, release, "succeeded")
    assert raw_pillar(fleet, device)["update_lock_override"] is False


def test_override_of_another_accounts_or_unknown_device_is_404(fleet, api_factory):
    (own,) = fleet.devices(1)
    other = api_factory.device(api_factory.account())
    for device_id in (other.id, "00000000-0000-0000-0000-000000000000"):
        r = fleet.client.post(f"/devices/{device_id}/override-lock/", headers=fleet.headers)
        assert r.status_code == 404, r.json
    r = fleet.client.post(f"/devices/{own}/override-lock/", headers=fleet.headers)
    assert r.status_code == 200, r.json
    audited = fleet.client.get("/audit/?action=device.lock_override", headers=fleet.headers).json
    assert [e["device"] for e in audited["results"]] == [own]  # the refused ones left no row
    with fleet.app.app_context():
        assert db.session.get(Device, other.id).update_lock_override_at is None
