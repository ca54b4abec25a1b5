"""Rollouts through the real API and database: device tags, waves, halt, timeouts, operator
actions, revert, and what the master pillar hands each device at every step."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from api.extensions import db
from api.outbox import OutboxMessage
from api.rollouts import service
from api.rollouts import waves as wave_membership
from api.rollouts.models import Rollout
from api.types import utcnow
from tests.fixtures.api import deployment_statuses, signed_report

pytestmark = pytest.mark.db

CONTAINERS = [{"name": "app", "image": "app", "tag": "1"}]


class Fleet:
    def __init__(self, app, client, factory, account, user_token, master_token):
        self.app, self.client, self.factory = app, client, factory
        self.account, self.headers, self.master = account, user_token.headers, master_token.headers
        self.project = client.post(
            "/docker/projects/", json={"name": "p"}, headers=self.headers
        ).json["id"]
        self.units = {}
        self.n = 0

    def devices(self, n, tags=()):
        made = []
        for _ in range(n):
            d = self.factory.device(self.account)
            self.units[d.id] = d.unit_id
            if tags:
                self.tag(d.id, list(tags))
            made.append(d.id)
        return made

    def tag(self, device_id, tags, expect=200):
        r = self.client.patch(f"/devices/{device_id}/", json={"tags": tags}, headers=self.headers)
        assert r.status_code == expect, r.json
        return r.json

    def release(self, devices=(), rollout=None, device_tags=None, expect=201, version=None):
        self.n += 1
        body = {
            "version": version or f"v{self.n}",
            "devices": list(devices),
            "containers": CONTAINERS,
            "pin_digests": False,  # images never pushed: run by tag (pinning: test_api_release_pinning.py)
        }
        if rollout is not None:
            body["rollout"] = rollout
        if device_tags is not None:
            body["device_tags"] = device_tags
        r = self.client.post(
            f"/docker/projects/{self.project}/releases/", json=body, headers=self.headers
        )
        assert r.status_code == expect, r.json
        return r.json

    def url(self, release, tail=""):
        return f"/docker/projects/{self.project}/releases/{release['id']}/{tail}"

    def rollout(self, release):
        r = self.client.get(self.url(release, "rollout/"), headers=self.headers)
        assert r.status_code == 200, r.json
        return r.json

    def act(self, release, action, expect=200):
        r = self.client.post(self.url(release, f"rollout/{action}/"), headers=self.headers)
        assert r.status_code == expect, r.json
        return r.json

    def deployments(self, release, query=""):
        r = self.client.get(
            self.url(release, f"deployments/?page_size=1000{query}"), headers=self.headers
        )
        assert r.status_code == 200, r.json
        return r.json

    def waves(self, release):
        """{wave: [device ids]}"""
        result = {}
        for row in self.deployments(release)["results"]:
            result.setdefault(row["wave"], []).append(row["device"])
        return result

    def report(self, device_id, release, outcome, error=None):
        body = {
            "unit_id": self.units[device_id],
            "release_id": release["id"],
            "version_hash": release["version_hash"],
            "outcome": outcome,
            "error": error,
        }
        body = signed_report(self.app, body, device_id)
        r = self.client.post("/master/deployments/report/", json=body, headers=self.master)
        assert r.status_code == 200, r.json
        return r.json

    def pillar(self, device_id):
        r = self.client.get(f"/master/minions/{self.units[device_id]}/pillar/", headers=self.master)
        assert r.status_code == 200, r.json
        return r.json["release"]["id"] if r.json["release"] else None

    def outbox(self):
        with self.app.app_context():
            return [
                (m.reason, sorted(m.payload["minions"]), [s[0] for s in m.payload["steps"]])
                for m in db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
            ]

    def statuses(self, release):
        with self.app.app_context():
            return deployment_statuses(release["id"])


@pytest.fixture
def fleet(app, client, api_factory, account, user_token, master_token):
    return Fleet(app, client, api_factory, account, user_token, master_token)


# -- validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    "tags, field_error",
    [
        ("prod", "Expected a list"),
        (["ok", ""], "not a valid tag"),
        (["a" * 65], "not a valid tag"),
        (["sp ace"], "not a valid tag"),
        ([1], "Not a valid string"),
        ([f"t{i}" for i in range(51)], "no more than 50"),
    ],
)
def test_bad_tags_are_400_naming_the_field(fleet, tags, field_error):
    (device,) = fleet.devices(1)
    body = fleet.tag(device, tags, expect=400)
    assert field_error in str(body["tags"]), body
    body = fleet.release([device], device_tags=tags, expect=400)
    assert field_error in str(body["device_tags"]), body


@pytest.mark.parametrize(
    "rollout, where",
    [
        ([1, 100], "non_field_errors"),
        ({}, "waves"),
        ({"waves": []}, "waves"),
        ({"waves": [50, 10, 100]}, "waves"),
        ({"waves": [10, 50]}, "waves"),
        ({"waves": [0, 100]}, "waves"),
        ({"waves": ["10", 100]}, "waves"),
        ({"waves": [100], "advance_at": 0}, "advance_at"),
        ({"waves": [100], "halt_at": 101}, "halt_at"),
        ({"waves": [100], "halt_min_finished": 0}, "halt_min_finished"),
        ({"waves": [100], "wave_timeout": True}, "wave_timeout"),
        ({"waves": [100], "speed": 3}, "speed"),
    ],
)
def test_bad_rollout_is_400_naming_the_field(fleet, rollout, where):
    (device,) = fleet.devices(1)
    body = fleet.release([device], rollout=rollout, expect=400)
    assert where in body["rollout"], body


def test_tags_and_rollout_are_in_the_openapi_document(client):
    doc = client.get("/openapi.json").json
    schemas = doc["components"]["schemas"]
    assert "tags" in schemas["DeviceInput"]["properties"]
    assert {"device_tags", "rollout"} <= set(schemas["ReleaseInput"]["properties"])
    assert "/docker/projects/{project_id}/releases/{release_id}/rollout/" in doc["paths"]


# -- waves -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, sizes",
    [(1, [1, 0, 0, 0]), (3, [1, 1, 1, 0]), (7, [1, 1, 2, 3]), (10_000, [100, 900, 4000, 5000])],
)
def test_wave_sizes(n, sizes):
    assert wave_membership.wave_sizes(n, [1, 10, 50, 100]) == sizes
    ids = [f"device-{i}" for i in range(n)]
    waves = wave_membership.assign_waves(7, ids, [1, 10, 50, 100])
    assert [list(waves.values()).count(w) for w in (1, 2, 3, 4)] == sizes
    # reproducible
    assert wave_membership.assign_waves(7, list(reversed(ids)), [1, 10, 50, 100]) == waves


@pytest.mark.parametrize("n, sizes", [(1, [1, 0, 0, 0]), (3, [1, 1, 1, 0]), (7, [1, 1, 2, 3])])
def test_wave_of_each_deployment_row_and_wave_filter(fleet, n, sizes):
    devices = fleet.devices(n)
    release = fleet.release(devices, rollout={"waves": [1, 10, 50, 100]})
    waves = fleet.waves(release)
    assert [len(waves.get(w, [])) for w in (1, 2, 3, 4)] == sizes
    for w in (1, 2, 3, 4):
        rows = fleet.deployments(release, f"&wave={w}")["results"]
        assert sorted(r["device"] for r in rows) == sorted(waves.get(w, []))
    body = fleet.rollout(release)
    assert [w["targets"] for w in body["waves"]] == sizes
    assert [w["percent"] for w in body["waves"]] == [1, 10, 50, 100]
    assert fleet.client.get(
        fleet.url(release, "deployments/?wave=x"), headers=fleet.headers
    ).json == {"wave": ["A valid integer is required."]}


def test_wave_sizes_at_10000_targets_through_the_api(fleet, app, account):
    import uuid

    from api.devices.models import Device
    from api.security.tenancy import MinionEnrollment

    with app.app_context():
        rows = [
            {
                "id": str(uuid.uuid4()),
                "account_id": account.id,
                "unit_id": str(uuid.uuid4()),
                "display": "",
            }
            for _ in range(10_000)
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
    release = fleet.release([r["id"] for r in rows], rollout={"waves": [1, 10, 50, 100]})
    body = fleet.rollout(release)
    assert [w["targets"] for w in body["waves"]] == [100, 900, 4000, 5000]
    assert [w["state"] for w in body["waves"]] == ["running", "waiting", "waiting", "waiting"]
    # only wave 1 is told (one outbox row for 100 minions)
    assert [len(m[1]) for m in fleet.outbox()] == [100]


def test_no_rollout_is_todays_behaviour(fleet):
    devices = fleet.devices(3)
    release = fleet.release(devices)
    assert release["rollout"] is None and release["device_tags"] == []
    assert {r["wave"] for r in fleet.deployments(release)["results"]} == {None}
    assert all(fleet.pillar(d) == release["id"] for d in devices)
    r = fleet.client.get(fleet.url(release, "rollout/"), headers=fleet.headers)
    assert r.status_code == 404
    for action in ("pause", "resume", "abort", "revert"):
        # a link from the release to an action can be followed: the release is there, the
        # action cannot apply (409), as the document says
        r = fleet.client.post(fleet.url(release, f"rollout/{action}/"), headers=fleet.headers)
        assert r.status_code == 409 and "no rollout" in r.json["detail"], (action, r.json)


def test_advance_pillar_before_in_and_after_the_wave(fleet):
    devices = fleet.devices(4)
    old = fleet.release(devices)
    for d in devices:
        fleet.report(d, old, "succeeded")
    new = fleet.release(devices, rollout={"waves": [25, 100], "advance_at": 100, "halt_at": 50})
    assert new["rollout"]["waves"] == [25, 100]
    waves = fleet.waves(new)
    (first,), later = waves[1], waves[2]
    # before its wave a device keeps its previous target; in it, it gets the new release
    assert fleet.pillar(first) == new["id"]
    assert {fleet.pillar(d) for d in later} == {old["id"]}
    statuses = fleet.statuses(new)
    assert statuses[first] == "queued" and {statuses[d] for d in later} == {"waiting"}
    assert fleet.outbox()[-1] == (
        f"release {new['id']} queued",
        [fleet.units[first]],
        ["saltutil.refresh_pillar", "docker.release_pull"],
    )

    # the report that reaches advance_at starts wave 2 in that request
    fleet.report(first, new, "applying")
    assert fleet.rollout(new)["wave"] == 1
    fleet.report(first, new, "succeeded")
    body = fleet.rollout(new)
    assert body["wave"] == 2 and body["state"] == "running"
    assert body["waves"][0] | {} == {**body["waves"][0], "succeeded": 1, "state": "done"}
    assert {fleet.pillar(d) for d in later} == {new["id"]}
    assert fleet.outbox()[-1][:2] == (
        f"release {new['id']} queued",
        sorted(fleet.units[d] for d in later),
    )
    for d in later:
        fleet.report(d, new, "succeeded")
    body = fleet.rollout(new)
    assert body["state"] == "completed"
    assert [w["state"] for w in body["waves"]] == ["done", "done"]
    assert [w["succeeded"] for w in body["waves"]] == [1, 3]


def test_halt_sends_the_current_wave_back_and_keeps_later_waves(fleet):
    devices = fleet.devices(10)
    old = fleet.release(devices)
    for d in devices:
        fleet.report(d, old, "succeeded")
    new = fleet.release(
        devices,
        rollout={"waves": [50, 100], "advance_at": 100, "halt_at": 20, "halt_min_finished": 1},
    )
    waves = fleet.waves(new)
    assert len(waves[1]) == 5
    ok, bad, *unapplied = waves[1]
    fleet.report(ok, new, "succeeded")
    assert fleet.rollout(new)["state"] == "running"
    fleet.report(bad, new, "failed", "container exited with 3")
    body = fleet.rollout(new)
    assert body["state"] == "halted"
    assert "wave 1" in body["halt_reason"] and "1 failed" in body["halt_reason"]
    assert body["waves"][0]["failed"] == 1 and body["waves"][0]["state"] == "halted"
    # no further device gets the halted release; the one that applied keeps it, the failed one
    # keeps the release it rolled back to
    assert fleet.pillar(ok) == new["id"]
    assert fleet.pillar(bad) == old["id"]
    assert {fleet.pillar(d) for d in unapplied} == {old["id"]}
    assert {fleet.pillar(d) for d in waves[2]} == {old["id"]}
    statuses = fleet.statuses(new)
    assert {statuses[d] for d in unapplied} == {"cancelled"}
    assert {statuses[d] for d in waves[2]} == {"waiting"}
    reason, minions, steps = fleet.outbox()[-1]
    assert reason == f"rollout of release {new['id']} halted"
    assert minions == sorted(fleet.units[d] for d in unapplied)
    assert steps == ["saltutil.refresh_pillar", "docker.release_pull"]
    # a later success report in the halted wave decides nothing
    fleet.report(unapplied[0], new, "succeeded")
    assert fleet.rollout(new)["state"] == "halted"


def test_halt_waits_for_halt_min_finished(fleet):
    devices = fleet.devices(8)
    new = fleet.release(
        devices, rollout={"waves": [50, 100], "halt_at": 30, "halt_min_finished": 3}
    )
    a, b, c, d = fleet.waves(new)[1]
    fleet.report(a, new, "failed", "boom")
    fleet.report(b, new, "succeeded")
    assert fleet.rollout(new)["state"] == "running"  # 1 of 2 finished failed, but min is 3
    fleet.report(c, new, "succeeded")
    assert fleet.rollout(new)["state"] == "halted"  # 1 of 3 = 33% > 30%
    assert "1 of 3" in fleet.rollout(new)["halt_reason"]


def test_failures_below_halt_at_do_not_halt_and_advance_at_allows_some(fleet):
    devices = fleet.devices(20)
    new = fleet.release(devices, rollout={"waves": [50, 100], "advance_at": 90, "halt_at": 10})
    first = fleet.waves(new)[1]
    assert len(first) == 10
    fleet.report(first[0], new, "failed", "boom")  # 1 of 1 = 100% > 10%, min finished 1: halts
    assert fleet.rollout(new)["state"] == "halted"
    body = fleet.act(new, "resume")  # the operator overrides the halt of wave 1
    assert body["state"] == "running" and body["wave"] == 1
    for d in first[1:]:
        fleet.report(d, new, "succeeded")
    body = fleet.rollout(new)
    assert body["wave"] == 2 and body["state"] == "running"  # 9 of 10 = 90% >= advance_at


def test_wave_timeout_counts_silent_devices_and_halts(fleet, app):
    devices = fleet.devices(4)
    new = fleet.release(devices, rollout={"waves": [50, 100], "halt_at": 40, "wave_timeout": 60})
    a, b = fleet.waves(new)[1]
    fleet.report(a, new, "succeeded")
    with app.app_context():
        assert service.tick() == 0  # not yet
        rollout = db.session.get(Rollout, new["id"])
        rollout.wave_started_at = utcnow() - timedelta(seconds=61)  # a minute passes
        db.session.commit()
        assert service.tick() == 1
    body = fleet.rollout(new)
    assert body["state"] == "halted"
    assert body["waves"][0]["timed_out"] == 1 and body["waves"][0]["succeeded"] == 1
    assert "1 timed out" in body["halt_reason"]
    assert fleet.statuses(new)[b] == "cancelled"
    assert fleet.pillar(b) is None  # no earlier release: nothing to run


# -- operator actions ------------------------------------------------------------


def test_pause_resume_abort_idempotent_with_history_and_409s(fleet, user):
    devices = fleet.devices(4)
    new = fleet.release(devices, rollout={"waves": [25, 100]})
    (first,) = fleet.waves(new)[1]
    body = fleet.act(new, "pause")
    assert body["state"] == "paused" and body["waves"][0]["state"] == "paused"
    assert fleet.act(new, "pause")["state"] == "paused"  # idempotent
    # paused: the report that would advance decides nothing; the started wave keeps the release
    fleet.report(first, new, "succeeded")
    assert fleet.rollout(new)["wave"] == 1
    assert fleet.pillar(first) == new["id"]
    body = fleet.act(new, "resume")  # the advance rule is already met: wave 2 starts at once
    assert body["state"] == "running" and body["wave"] == 2
    assert fleet.act(new, "resume")["state"] == "running"
    body = fleet.act(new, "abort")
    assert body["state"] == "aborted"
    assert fleet.act(new, "abort")["state"] == "aborted"
    for action in ("pause", "resume"):
        r = fleet.client.post(fleet.url(new, f"rollout/{action}/"), headers=fleet.headers)
        assert r.status_code == 409 and "aborted" in r.json["detail"]
    later = fleet.waves(new)[2]
    assert {fleet.pillar(d) for d in later} == {None}
    assert fleet.pillar(first) == new["id"]  # applied: keeps it until a revert
    history = fleet.rollout(new)["history"]
    assert [(h["action"], h["state_before"], h["state_after"]) for h in history] == [
        ("pause", "running", "paused"),
        ("resume", "paused", "running"),
        ("abort", "running", "aborted"),
    ]
    assert {h["user_email"] for h in history} == {user.email}
    assert all(h["at"].endswith("Z") for h in history)
    # and in the account's audit log
    audited = fleet.client.get("/audit/?action=rollout.action", headers=fleet.headers).json
    assert sorted(e["details"]["action"] for e in audited["results"]) == [
        "abort",
        "pause",
        "resume",
    ]
    assert {e["target"] for e in audited["results"]} == {f"release:{new['id']}"}


def test_completed_rollout_409s(fleet):
    devices = fleet.devices(1)
    new = fleet.release(devices, rollout={"waves": [100]})
    fleet.report(devices[0], new, "succeeded")
    assert fleet.rollout(new)["state"] == "completed"
    for action in ("pause", "resume", "abort"):
        r = fleet.client.post(fleet.url(new, f"rollout/{action}/"), headers=fleet.headers)
        assert r.status_code == 409, (action, r.json)
    assert fleet.client.post(
        fleet.url(new, "rollout/halt/"), headers=fleet.headers
    ).status_code in (404, 405)


def test_revert_goes_back_to_the_last_successful_release(fleet):
    devices = fleet.devices(4)
    old = fleet.release(devices)
    skipped = fleet.release(devices)  # queued, never applied: not what a revert goes back to
    for d in devices:
        fleet.report(d, old, "succeeded")
    new = fleet.release(devices, rollout={"waves": [50, 100]})
    first, second = fleet.waves(new)[1], fleet.waves(new)[2]
    for d in first + second:
        fleet.report(d, new, "succeeded")
    assert fleet.rollout(new)["state"] == "completed"
    before = len(fleet.outbox())
    body = fleet.act(new, "revert")
    assert body["state"] == "reverting"
    assert body["revert"] == {"devices": 4, "reverted": 0, "failed": 0, "pending": 4}
    assert fleet.act(new, "revert")["state"] == "reverting"  # idempotent
    assert {fleet.pillar(d) for d in devices} == {old["id"]}
    assert skipped["id"] != old["id"]
    # nothing to pull: the previous release's images are still on the device
    assert fleet.outbox()[before:] == [
        (f"release {new['id']} reverted", sorted(fleet.units.values()), ["saltutil.refresh_pillar"])
    ]
    fleet.report(devices[0], old, "failed", "engine gone")
    for d in devices[1:]:
        fleet.report(d, old, "succeeded")
    body = fleet.rollout(new)
    assert body["state"] == "reverted"
    assert body["revert"] == {"devices": 4, "reverted": 3, "failed": 1, "pending": 0}
    assert fleet.statuses(new)[devices[0]] == "revert_failed"
    # the failed one keeps the revert as target (it retries at its next idle moment)
    assert fleet.pillar(devices[0]) == old["id"]
    fleet.report(devices[0], old, "succeeded")
    assert fleet.rollout(new)["revert"]["reverted"] == 4
    for action in ("pause", "resume", "abort"):
        r = fleet.client.post(fleet.url(new, f"rollout/{action}/"), headers=fleet.headers)
        assert r.status_code == 409, action
    assert fleet.act(new, "revert")["state"] == "reverted"
    assert [h["action"] for h in fleet.rollout(new)["history"]] == ["revert"]


def test_revert_of_a_halted_rollout_and_device_without_earlier_release(fleet):
    devices = fleet.devices(4)
    new = fleet.release(devices, rollout={"waves": [50, 100], "halt_at": 10})
    a, b = fleet.waves(new)[1]
    fleet.report(a, new, "succeeded")
    fleet.report(b, new, "failed", "x")
    assert fleet.rollout(new)["state"] == "halted"
    body = fleet.act(new, "revert")
    # `a` has nothing earlier to go back to: its revert fails at once, and nothing is pending
    assert body["state"] == "reverted"
    assert body["revert"] == {"devices": 1, "reverted": 0, "failed": 1, "pending": 0}
    assert {fleet.pillar(d) for d in devices} == {None}


# -- tags --------------------------------------------------------------------------


def test_device_tags_filter_and_dynamic_membership(fleet):
    tagged = fleet.devices(2, tags=["berlin", "beta"])
    other = fleet.devices(1, tags=["paris"])[0]
    untagged = fleet.devices(1)[0]
    listed = fleet.client.get("/devices/?tag=berlin", headers=fleet.headers).json
    assert sorted(d["id"] for d in listed["results"]) == sorted(tagged)
    assert listed["results"][0]["tags"] == ["berlin", "beta"]
    got = fleet.client.get(f"/devices/{tagged[0]}/", headers=fleet.headers).json
    assert got["tags"] == ["berlin", "beta"]

    release = fleet.release([untagged], device_tags=["berlin"])
    assert release["devices"] == [untagged] and release["device_tags"] == ["berlin"]
    assert sorted(fleet.statuses(release)) == sorted([untagged, *tagged])
    assert fleet.pillar(other) is None
    assert fleet.pillar(tagged[0]) == release["id"]

    # tagged later: it becomes a target, and Salt is told
    fleet.tag(other, ["paris", "berlin"])
    assert fleet.pillar(other) == release["id"]
    assert fleet.outbox()[-1][:2] == (f"release {release['id']} queued", [fleet.units[other]])
    # untagged: it is a target no more
    fleet.tag(tagged[1], ["beta"])
    assert fleet.pillar(tagged[1]) is None
    assert tagged[1] not in fleet.statuses(release)
    # the listed device stays even if it carries no tag; the response's devices are the listed ones
    assert fleet.client.get(fleet.url(release), headers=fleet.headers).json["devices"] == [untagged]


def test_overlapping_releases_by_tag_and_by_list(fleet):
    a, b, c = fleet.devices(3, tags=["fleet"])
    by_tag = fleet.release(device_tags=["fleet"])
    by_list = fleet.release([a, b])
    assert (fleet.pillar(a), fleet.pillar(b), fleet.pillar(c)) == (
        by_list["id"],
        by_list["id"],
        by_tag["id"],
    )
    assert fleet.statuses(by_tag) == {a: "superseded", b: "superseded", c: "queued"}
    newest_by_tag = fleet.release(device_tags=["fleet"])
    assert {fleet.pillar(d) for d in (a, b, c)} == {newest_by_tag["id"]}
    # taking a device off the list of a release that also targets it by tag keeps it a target
    both = fleet.release([a], device_tags=["fleet"])
    r = fleet.client.patch(fleet.url(both), json={"devices": []}, headers=fleet.headers)
    assert r.status_code == 200 and r.json["devices"] == []
    assert fleet.pillar(a) == both["id"]
    # device_tags and rollout cannot change
    r = fleet.client.patch(fleet.url(both), json={"device_tags": ["x"]}, headers=fleet.headers)
    assert r.status_code == 409
    r = fleet.client.patch(
        fleet.url(both), json={"rollout": {"waves": [100]}}, headers=fleet.headers
    )
    assert r.status_code == 409


def test_rollout_of_a_tag_nobody_carries_yet_completes_and_hands_out_later(fleet):
    new = fleet.release(device_tags=["future"], rollout={"waves": [10, 100]})
    assert fleet.rollout(new)["state"] == "completed"
    (late,) = fleet.devices(1, tags=["future"])
    assert fleet.pillar(late) == new["id"]


def test_device_tagged_later_joins_a_rollout_in_its_hash_wave(fleet):
    devices = fleet.devices(4, tags=["canary"])
    new = fleet.release(device_tags=["canary"], rollout={"waves": [25, 100]})
    (late,) = fleet.devices(1)
    fleet.tag(late, ["canary"])
    row = fleet.deployments(new, f"&device={late}")["results"][0]
    assert row["wave"] == wave_membership.wave_of_newcomer(new["id"], late, [25, 100])
    expected = new["id"] if row["wave"] == 1 else None
    assert fleet.pillar(late) == expected
    assert len(devices) == 4


def test_rollout_webhooks_signed_and_delivered(fleet, app, account):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from api.execute import webhooks
    from api.execute.models import settings_for_update
    from api.worker import drain_outbox

    received = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers[webhooks.SIGNATURE_HEADER]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        r = fleet.client.post("/docker/rollout-webhooks/", json={"url": url}, headers=fleet.headers)
        assert r.status_code == 400 and "webhook secret" in r.json["url"][0]
        with app.app_context():
            secret = settings_for_update(account.id).new_webhook_secret()
            db.session.commit()
        r = fleet.client.post("/docker/rollout-webhooks/", json={"url": url}, headers=fleet.headers)
        assert r.status_code == 201, r.json
        hook = r.json
        r = fleet.client.post("/docker/rollout-webhooks/", json={"url": url}, headers=fleet.headers)
        assert r.status_code == 400
        r = fleet.client.post(
            "/docker/rollout-webhooks/", json={"url": "ftp://x"}, headers=fleet.headers
        )
        assert r.status_code == 400 and "url" in r.json
        listed = fleet.client.get("/docker/rollout-webhooks/", headers=fleet.headers).json
        assert [h["url"] for h in listed["results"]] == [url]

        devices = fleet.devices(2)
        new = fleet.release(devices, rollout={"waves": [50, 100]})
        first, second = fleet.waves(new)[1][0], fleet.waves(new)[2][0]
        fleet.report(first, new, "succeeded")
        fleet.report(second, new, "failed", "boom")  # wave 2 halts
        fleet.act(new, "abort")
        fleet.act(new, "revert")
        with app.app_context():
            drain_outbox(None, limit=50)
        events = []
        for body, signature in received:
            assert webhooks.verify(secret, body, signature)
            events.append(json.loads(body))
        assert [e["event"] for e in events] == [
            "rollout.wave_started",
            "rollout.halted",
            "rollout.aborted",
            "rollout.reverted",
        ]
        assert events[0]["wave"] == 2 and events[0]["release"] == new["id"]
        assert "wave 2" in events[1]["halt_reason"]
        assert (
            fleet.client.delete(
                f"/docker/rollout-webhooks/{hook['id']}/", headers=fleet.headers
            ).status_code
            == 204
        )
    finally:
        server.shutdown()
