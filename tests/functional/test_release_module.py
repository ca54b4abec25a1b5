"""The docker.* execution functions around the release engine, on a real dockerd and registry."""

import json

import pytest
from salt.exceptions import CommandExecutionError

from tests.fixtures.docker import seed_containers

pytestmark = [pytest.mark.docker]


@pytest.fixture
def device(fresh_engine, testbed, release_images, release_pillar, release_loaders, tmp_path):
    cli = testbed.client(fresh_engine)
    data = tmp_path / "data"
    data.mkdir()
    release = release_pillar(40, seed_containers(release_images, data))
    loaders = release_loaders(
        {"docker": {"release": release, "registries": testbed.registries_pillar()}},
        docker_host=fresh_engine,
    )
    yield cli, loaders, release
    cli.close()


def test_logs_by_short_name_of_current_release(device):
    cli, loaders, _ = device
    assert loaders.modules.docker.release_apply()["outcome"] == "succeeded"
    out = loaders.modules.docker.logs("curveball")
    container_id = cli.api.inspect_container("deployment-curveball-40")["Config"]["Hostname"]
    assert f"started {container_id}" in out
    assert loaders.modules.docker.logs("deployment-ravendb-40", tail=1).startswith("started ")
    stamped = loaders.modules.docker.logs("curveball", timestamps=True)
    assert stamped.split(" ", 1)[0].endswith("Z")
    with pytest.raises(CommandExecutionError, match="no container named 'nope'"):
        loaders.modules.docker.logs("nope")


def test_ps_and_status_show_release_containers(device):
    _, loaders, release = device
    assert loaders.modules.docker.release_status()["state"] == "none"
    loaders.modules.docker.release_apply()
    ps = {c["name"]: c for c in loaders.modules.docker.ps()}
    assert ps["deployment-curveball-40"]["state"] == "running"
    assert (
        ps["deployment-curveball-40"]["labels"]["io.berth.version_hash"] == release["version_hash"]
    )
    status = loaders.modules.docker.release_status()
    assert status["release_id"] == 40 and status["version_hash"] == release["version_hash"]
    assert status["state"] == "running"
    assert {c["fully_qualified_name"] for c in status["containers"]} == {
        "deployment-curveball-40",
        "deployment-ravendb-40",
    }
    loaders.modules.docker.release_apply()
    cli = device[0]
    cli.api.stop("deployment-ravendb-40", timeout=1)
    assert loaders.modules.docker.release_status()["state"] == "degraded"


def test_registries_logs_in_once_and_hides_password(
    device, testbed, release_loaders, fresh_engine, tmp_path
):
    _, loaders, _ = device
    assert loaders.modules.docker.registries() == {testbed.registry: "logged in"}
    assert loaders.modules.docker.registries() == {testbed.registry: "already logged in"}
    bad = release_loaders(
        {"docker": {"registries": testbed.registries_pillar(password="not-the-password")}},
        docker_host=fresh_engine,
        **{"docker.release_state_dir": str(tmp_path / "other-device")},
    )
    out = bad.modules.docker.registries()
    assert "401 Unauthorized" in out[testbed.registry]
    assert "not-the-password" not in str(out)
    with pytest.raises(CommandExecutionError, match="not in pillar docker:registries"):
        loaders.modules.docker.login("127.0.0.1:1")


def test_release_pull_prepulls_without_stopping_anything(
    device, testbed, release_images, release_pillar, tmp_path
):
    cli, loaders, _ = device
    assert loaders.modules.docker.release_apply()["outcome"] == "succeeded"
    before = {c["Id"]: c["State"] for c in cli.api.containers(all=True)}
    next_release = release_pillar(
        41, seed_containers(release_images, tmp_path / "data", curveball="curveball_v2")
    )

    out = loaders.modules.docker.release_pull(
        release=next_release, registries=testbed.registries_pillar()
    )

    image, tag = release_images["curveball_v2"]
    assert out["pulled"] == [f"{testbed.registry}/{image}:{tag}"]
    assert {c["Id"]: c["State"] for c in cli.api.containers(all=True)} == before
    result = loaders.modules.docker.release_apply(
        release=next_release, registries=testbed.registries_pillar()
    )
    assert result["outcome"] == "succeeded"
    assert "pulled" not in result["changes"]  # everything was cached by release_pull


def test_result_event_fired_after_real_apply_only(device):
    _, loaders, release = device
    sent = []
    loaders.modules["event.send"] = lambda tag, data=None, **kw: sent.append((tag, data)) or True
    assert loaders.modules.docker.release_apply()["outcome"] == "succeeded"
    assert len(sent) == 1
    tag, data = sent[0]
    assert tag == "berth/release/result"
    assert data["release_id"] == 40 and data["version_hash"] == release["version_hash"]
    assert data["outcome"] == "succeeded" and data["error"] is None
    assert {c["fully_qualified_name"]: c["status"] for c in data["containers"]} == {
        "deployment-curveball-40": "running",
        "deployment-ravendb-40": "running",
    }
    assert data["finished_at"].endswith("Z")
    assert loaders.modules.docker.release_apply()["outcome"] == "unchanged"
    assert len(sent) == 1  # a no-op reports nothing


def test_event_failure_never_breaks_the_apply(device):
    _, loaders, _ = device

    def broken(*args, **kwargs):
        raise RuntimeError("no event bus")

    loaders.modules["event.send"] = broken
    assert loaders.modules.docker.release_apply()["outcome"] == "succeeded"


def test_invalid_release_is_a_clear_error(device, testbed):
    _, loaders, release = device
    bad = {
        **release,
        "containers": [
            {**release["containers"][0], "startup_parameters": {"restart_policy": "often"}}
        ],
    }
    with pytest.raises(
        CommandExecutionError, match="container 'curveball': startup_parameters: restart_policy"
    ):
        loaders.modules.docker.release_apply(release=bad, registries=testbed.registries_pillar())
    with pytest.raises(
        CommandExecutionError, match="registry 9 is not in pillar docker:registries"
    ):
        loaders.modules.docker.release_plan(
            release={**release, "containers": [{**release["containers"][0], "registry": 9}]},
            registries=testbed.registries_pillar(),
        )


def test_unreachable_engine_is_a_clear_error_and_reported(
    testbed, release_images, release_pillar, release_loaders, tmp_path
):
    release = release_pillar(42, seed_containers(release_images, tmp_path))
    loaders = release_loaders(
        {"docker": {"release": release, "registries": testbed.registries_pillar()}},
        docker_host=f"unix://{tmp_path}/no-engine.sock",
    )
    sent = []
    loaders.modules["event.send"] = lambda tag, data=None, **kw: sent.append((tag, data)) or True
    with pytest.raises(CommandExecutionError, match="cannot reach the Docker engine at unix://"):
        loaders.modules.docker.release_apply()
    assert [(t, d["release_id"], d["outcome"]) for t, d in sent] == [
        ("berth/release/result", 42, "failed")
    ]
    assert "cannot reach the Docker engine" in sent[0][1]["error"]
    with pytest.raises(CommandExecutionError, match="cannot reach the Docker engine"):
        loaders.modules.docker.ps()
    (state,) = list(loaders.modules.state.sls("docker.release"))
    assert state.result is False and "cannot reach the Docker engine" in state.comment


def test_prepulled_release_applies_while_registry_is_unreachable(
    fresh_engine,
    testbed,
    release_images,
    release_pillar,
    release_loaders,
    private_registry,
    build_image,
    tmp_path,
):
    """Pre-pull while awake, apply at sleep time with no network: no registry is contacted."""
    image, _ = release_images["curveball_v2"]
    build_image(f"{private_registry.url}/{image}:offline")
    regs = {
        5: {"url": private_registry.url, "username": testbed.user, "password": testbed.password}
    }
    release = release_pillar(
        43,
        [
            {
                "name": "app",
                "image": image,
                "tag": "offline",
                "registry": 5,
                "startup_parameters": {"network_mode": "none"},
            }
        ],
    )
    loaders = release_loaders(
        {"docker": {"release": release, "registries": regs}}, docker_host=fresh_engine
    )
    assert loaders.modules.docker.release_pull()["pulled"] == [
        f"{private_registry.url}/{image}:offline"
    ]
    private_registry.stop()
    # a device whose login record is gone (e.g. cache wiped) still applies from its cached images
    (tmp_path / "device-state" / "logins.json").unlink()

    result = loaders.modules.docker.release_apply()

    assert result["outcome"] == "succeeded", result["error"]
    assert "logged_in" not in result["changes"] and "pulled" not in result["changes"]


def test_report_failed_without_sending_only_queues_the_pre_pulled_release(
    release_loaders, tmp_path
):
    # salt-call --local on a master's minion (the sleep hook with the master away): no release
    # in the local pillar, the release last pre-pulled in the device state directory
    loaders = release_loaders({})
    state = tmp_path / "device-state"
    state.mkdir()
    (state / "prepulled-release.json").write_text('{"id": 41, "version_hash": "abc"}')
    sent = []
    loaders.modules["event.send"] = lambda tag, data=None, **kw: sent.append((tag, data)) or True

    ret = loaders.modules.docker.release_report_failed("master away", send=False)

    assert ret == {"reported": True, "release_id": 41, "error": "master away", "sent": False}
    queued = [json.loads(e.read_text()) for e in sorted((state / "results-outbox").glob("*.json"))]
    assert [(e["release_id"], e["outcome"], e["error"]) for e in queued] == [
        (41, "failed", "master away")
    ]
    assert sent == []  # under --local event.send would drop it without a master
    # the next flush (here: a report that sends) delivers the queue in order
    loaders.modules.docker.release_report_failed("again")
    assert [(t, d["release_id"], d["error"]) for t, d in sent] == [
        ("berth/release/result", 41, "master away"),
        ("berth/release/result", 41, "again"),
    ]
    assert not list((state / "results-outbox").glob("*.json"))


def test_report_failed_without_sending_and_no_known_release_queues_nothing(
    release_loaders, tmp_path
):
    loaders = release_loaders({})
    ret = loaders.modules.docker.release_report_failed("master away", send=False)
    assert ret == {"reported": False, "comment": "no release for this device"}
    assert not list((tmp_path / "device-state" / "results-outbox").glob("*.json"))
