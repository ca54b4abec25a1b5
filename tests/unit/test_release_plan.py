"""The pure planner and the release model (no engine)."""

import json

import pytest

from berth.release import steps as st
from berth.release.images import ReleaseError
from berth.release.model import EngineState, target_from_pillar
from berth.release.plan import plan

REGS = {1: {"url": "https://reg.example:5000/", "username": "u", "password": "p"}}


def release(rid=7, vh="96a7191f", **overrides):
    rel = {
        "id": rid,
        "version": "1.0.0",
        "version_hash": vh,
        "project": 3,
        "containers": [
            {
                "name": "curveball",
                "image": "curveball",
                "tag": "delta-base-r0.0.0.1",
                "required_tags": ["base"],
                "startup_parameters": {
                    "environment": "A='x y'",
                    "binds": ["/data:/opt/data"],
                    "network_mode": "host",
                    "restart_policy": "always",
                },
                "purge_data": True,
                "registry": 1,
                "fully_qualified_name": f"deployment-curveball-{rid}",
            },
            {
                "name": "ravendb",
                "image": "ravendb",
                "tag": "base",
                "required_tags": [],
                "startup_parameters": {},
                "purge_data": False,
                "registry": None,
            },
        ],
        "remove_containers": ["curveball", "ravendb"],
    }
    rel.update(overrides)
    return rel


def container(name, state="running", image="x:1", **labels):
    return {
        "name": name,
        "id": name,
        "state": state,
        "status": "",
        "image": image,
        "image_id": "",
        "labels": labels,
        "created": 0,
    }


def actions(steps):
    return [s.action for s in steps]


def test_image_references_use_registry_url_without_scheme():
    t = target_from_pillar(release(), {"1": REGS[1]})  # JSON pillar: string keys
    assert t.refs == [
        "reg.example:5000/curveball:delta-base-r0.0.0.1",
        "reg.example:5000/curveball:base",
        "ravendb:base",
    ]
    cb = t.containers[0]
    assert cb.create_kwargs["labels"] == {
        "io.berth.release": "7",
        "io.berth.version_hash": "96a7191f",
        "io.berth.project": "3",
        "io.berth.name": "curveball",
    }
    assert cb.create_kwargs["environment"] == {"A": "x y"}
    assert cb.purge_paths == ("/data",)
    assert t.containers[1].fq_name == "deployment-ravendb-7"


def test_fresh_device_plan_order():
    t = target_from_pillar(release(), REGS)
    current = EngineState(
        containers=[
            container("curveball"),
            container("ravendb", state="exited"),
            container("unrelated"),
        ],
        images=set(),
    )
    steps = plan(current, t, {"1": "k"})
    assert actions(steps) == [
        "login",
        "pull",
        "pull",
        "pull",
        "stop",
        "stop",
        "purge",
        "create",
        "create",
        "start",
        "verify",
        "remove",
        "drop_purged",
        "record",
    ]
    stops = [s for s in steps if isinstance(s, st.Stop)]
    assert [(s.name, s.was_running) for s in stops] == [
        ("curveball", True),
        ("ravendb", False),
    ]
    assert steps[-3].names == ("curveball", "ravendb")  # "unrelated" is never touched


def test_applied_and_running_is_empty_plan():
    t = target_from_pillar(release(), REGS)
    labels = {"io.berth.release": "7", "io.berth.version_hash": "96a7191f"}
    current = EngineState(
        containers=[
            container("deployment-curveball-7", **labels),
            container("deployment-ravendb-7", **labels),
        ],
        images=set(t.refs),
        applied={"release_id": 7, "version_hash": "96a7191f"},
        logged_in={"k"},
    )
    assert plan(current, t, {"1": "k"}) == []
    current.containers[1]["state"] = "exited"
    steps = plan(current, t, {"1": "k"})
    assert actions(steps)[:2] == ["stop", "stop"]
    assert {s.rename_to for s in steps if isinstance(s, st.Stop)} == {
        "deployment-curveball-7.berth-previous",
        "deployment-ravendb-7.berth-previous",
    }


def test_cached_images_and_known_login_are_skipped():
    t = target_from_pillar(release(), REGS)
    missing_one = set(t.refs) - {"reg.example:5000/curveball:base"}
    steps = plan(EngineState(containers=[], images=missing_one, logged_in={"k"}), t, {"1": "k"})
    assert actions(steps)[0] == "pull"  # credentials already verified
    # nothing to pull: no login either, so an offline device with cached images still applies
    steps = plan(EngineState(containers=[], images=set(t.refs)), t, {"1": "k"})
    assert "login" not in actions(steps) and "pull" not in actions(steps)


def test_upgrade_prunes_only_images_nothing_keeps():
    old_labels = {"io.berth.release": "6", "io.berth.version_hash": "aaaaaaaa"}
    t = target_from_pillar(release(), REGS)
    old_cb = "reg.example:5000/curveball:delta-base-r0.0.0.0"
    current = EngineState(
        containers=[
            container("deployment-curveball-6", image=old_cb, **old_labels),
            container("deployment-ravendb-6", image="ravendb:base", **old_labels),
            container("other", image="other:1"),
        ],
        images=set(t.refs) | {old_cb, "other:1", "leftover:9", "prev-required:1", "older:1"},
        applied={
            "release_id": 6,
            "version_hash": "aaaaaaaa",
            "images": [old_cb, "prev-required:1"],
            "previous_images": ["older:1", old_cb],
        },
    )
    steps = plan(current, t, {"1": "k"})
    (prune,) = [s for s in steps if isinstance(s, st.Prune)]
    # the replaced release's images stay (an offline revert or rollback needs them); the release
    # before it goes; ravendb:base and base are kept (the target needs them); other:1 is in use;
    # leftover:9 was never ours
    assert prune.refs == ("older:1",)
    (record,) = [s for s in steps if isinstance(s, st.Record)]
    assert record.previous_images == (old_cb, "prev-required:1")
    # applying the same release again keeps what it kept
    again = EngineState(
        containers=[],
        images=set(t.refs) | {old_cb},
        applied={"release_id": t.release_id, "images": list(t.refs), "previous_images": [old_cb]},
    )
    steps = plan(again, t, {"1": "k"})
    assert not [s for s in steps if isinstance(s, st.Prune)]
    assert [s for s in steps if isinstance(s, st.Record)][0].previous_images == (old_cb,)


def test_a_journal_written_before_previous_images_still_reads():
    t = target_from_pillar(release(), REGS)
    (record,) = [
        s for s in plan(EngineState(containers=[], images=set()), t, {}) if isinstance(s, st.Record)
    ]
    data = record.to_dict()
    data.pop("previous_images")
    assert st.from_dict(data).previous_images == ()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r.pop("version_hash"), "'version_hash' is missing"),
        (lambda r: r["containers"][0].pop("tag"), "container 'curveball': 'tag' is missing"),
        (
            lambda r: r["containers"][0].update(registry=5),
            "registry 5 is not in pillar docker:registries",
        ),
        (
            lambda r: r["containers"][1].update(startup_parameters={"bogus": 1}),
            "'ravendb': startup_parameters: bogus",
        ),
        (lambda r: r["containers"].append(dict(r["containers"][0])), "appears twice"),
        (lambda r: r.update(remove_containers="curveball"), "'remove_containers' must be a list"),
    ],
)
def test_bad_release_names_the_problem(mutate, message):
    rel = release()
    mutate(rel)
    with pytest.raises(ReleaseError, match=message):
        target_from_pillar(rel, REGS)


def test_steps_round_trip_through_their_dicts_and_describe_themselves():
    t = target_from_pillar(release(), REGS)
    steps = plan(EngineState(containers=[container("curveball")], images=set()), t, {"1": "k"})
    dicts = [s.to_dict() for s in steps]
    assert json.loads(json.dumps(dicts)) == dicts  # the journal and release_plan carry these
    assert [st.from_dict(json.loads(json.dumps(d))) for d in dicts] == steps
    assert st.describe(steps)[:2] == [
        "log in to https://reg.example:5000/",
        ("pull reg.example:5000/curveball:delta-base-r0.0.0.1"),
    ]
    assert "stop curveball" in st.describe(steps)
    assert st.planned_changes(steps)["stopped"] == ["curveball"]
    assert st.planned_changes(steps)["started"] == [
        "deployment-curveball-7",
        "deployment-ravendb-7",
    ]
    assert [s.action for s in steps if s.commit] == ["remove", "drop_purged", "record"]


@pytest.mark.parametrize(
    "data",
    [
        {"action": "reboot", "name": "x"},
        {"action": "stop", "name": "x"},  # fields missing
        {"action": "pull", "ref": "a:1", "registry": None, "extra": 1},
        {"name": "x"},
        ["stop"],
    ],
)
def test_unknown_step_is_an_error(data):
    with pytest.raises(st.UnknownStep):
        st.from_dict(data)
