"""Failures of state.sls docker.release against a real dockerd and registry: nothing is
lost, the running release survives, rollback restores containers and purged data."""

import json
import signal
import time

import pytest

from tests.fixtures.docker import seed_containers, set_pillar

pytestmark = [pytest.mark.docker]


def apply_sls(loaders, **kwargs):
    (result,) = list(loaders.modules.state.sls("docker.release", **kwargs))
    return result


def snapshot(cli):
    """name -> (id, state, StartedAt): proves containers were not even restarted."""
    out = {}
    for c in cli.api.containers(all=True):
        attrs = cli.api.inspect_container(c["Id"])
        out[c["Names"][0].lstrip("/")] = (
            c["Id"],
            attrs["State"]["Status"],
            attrs["State"]["StartedAt"],
        )
    return out


@pytest.fixture
def running_release(
    fresh_engine, testbed, release_images, release_pillar, release_loaders, tmp_path
):
    """Release 20 (the seed pair) applied and running; returns (cli, loaders, data dir)."""
    cli = testbed.client(fresh_engine)
    data = tmp_path / "data"
    data.mkdir()
    (data / "settings.json").write_text("original")
    release = release_pillar(20, seed_containers(release_images, data))
    loaders = release_loaders(
        {"docker": {"release": release, "registries": testbed.registries_pillar()}},
        docker_host=fresh_engine,
    )
    assert apply_sls(loaders).result is True
    yield cli, loaders, data
    cli.close()


def test_pull_of_missing_tag_fails_with_running_release_untouched(
    running_release, testbed, release_images, release_pillar
):
    cli, loaders, data = running_release
    before = snapshot(cli)
    containers = seed_containers(release_images, data)
    containers[0]["tag"] = "no-such-tag"
    set_pillar(
        loaders,
        {
            "docker": {
                "release": release_pillar(21, containers),
                "registries": testbed.registries_pillar(),
            }
        },
    )

    result = apply_sls(loaders)

    assert result.result is False
    assert "pull of" in result.comment and "no-such-tag" in result.comment
    assert "running release was left untouched" in result.comment
    assert snapshot(cli) == before
    assert loaders.modules.docker.release_status()["release_id"] == 20


def test_wrong_registry_password_fails_with_running_release_untouched(
    running_release, testbed, release_images, release_pillar
):
    cli, loaders, data = running_release
    before = snapshot(cli)
    release = release_pillar(22, seed_containers(release_images, data, curveball="curveball_v2"))
    set_pillar(
        loaders,
        {"docker": {"release": release, "registries": testbed.registries_pillar(password="wrong")}},
    )

    result = apply_sls(loaders)

    assert result.result is False
    assert f"login to registry {testbed.registry} failed" in result.comment
    assert testbed.password not in result.comment
    assert snapshot(cli) == before


def test_stopped_registry_fails_with_running_release_untouched(
    running_release, testbed, release_images, release_pillar, private_registry, build_image
):
    cli, loaders, data = running_release
    image, _ = release_images["curveball_v2"]
    build_image(f"{private_registry.url}/{image}:private", docker_host=testbed.docker_host)
    # the registry is known and logged in on the device, then goes away before the pull
    regs = {
        **testbed.registries_pillar(),
        2: {"url": private_registry.url, "username": testbed.user, "password": testbed.password},
    }
    assert loaders.modules.docker.registries() == {testbed.registry: "already logged in"}
    containers = seed_containers(release_images, data)
    containers[0].update(image=image, tag="private", registry=2)
    set_pillar(loaders, {"docker": {"release": release_pillar(23, containers), "registries": regs}})
    assert loaders.modules.docker.login(2) == {private_registry.url: "logged in"}
    private_registry.stop()
    before = snapshot(cli)

    result = apply_sls(loaders)

    assert result.result is False
    assert f"pull of {private_registry.url}/{image}:private failed" in result.comment
    assert "connection refused" in result.comment  # unreachable, not a missing image
    assert snapshot(cli) == before


def test_container_that_exits_is_rolled_back_and_purged_data_restored(
    running_release, testbed, release_images, release_pillar
):
    cli, loaders, data = running_release
    old_ids = {n: v[0] for n, v in snapshot(cli).items()}
    image, tag = release_images["crash"]
    containers = seed_containers(release_images, data, purge_data=True)
    containers[1].update(image=image, tag=tag)  # "ravendb" now exits at once
    set_pillar(
        loaders,
        {
            "docker": {
                "release": release_pillar(24, containers),
                "registries": testbed.registries_pillar(),
            }
        },
    )

    result = apply_sls(loaders)

    assert result.result is False
    assert "deployment-ravendb-24 did not stay running" in result.comment
    assert "boom" in result.comment  # the container's own last output
    after = snapshot(cli)
    assert set(after) == {"deployment-curveball-20", "deployment-ravendb-20"}
    assert all(state == "running" for _, state, _ in after.values())
    assert {n: v[0] for n, v in after.items()} == old_ids
    assert (data / "settings.json").read_text() == "original"
    assert not list(data.parent.glob("data.berth-purged*"))
    assert loaders.modules.docker.release_status()["release_id"] == 20


def test_failing_healthcheck_is_rolled_back(
    running_release, testbed, release_images, release_pillar
):
    cli, loaders, data = running_release
    image, tag = release_images["unhealthy"]
    containers = seed_containers(release_images, data)
    containers[0].update(image=image, tag=tag, required_tags=[])
    set_pillar(
        loaders,
        {
            "docker": {
                "release": release_pillar(25, containers),
                "registries": testbed.registries_pillar(),
            }
        },
    )

    result = apply_sls(loaders)

    assert result.result is False
    assert "deployment-curveball-25 is unhealthy" in result.comment
    after = snapshot(cli)
    assert set(after) == {"deployment-curveball-20", "deployment-ravendb-20"}
    assert all(state == "running" for _, state, _ in after.values())


def test_successful_purge_replaces_data_and_drops_the_copy(
    running_release, testbed, release_images, release_pillar
):
    cli, loaders, data = running_release
    containers = seed_containers(release_images, data, curveball="curveball_v2", purge_data=True)
    set_pillar(
        loaders,
        {
            "docker": {
                "release": release_pillar(26, containers),
                "registries": testbed.registries_pillar(),
            }
        },
    )
    result = apply_sls(loaders)
    assert result.result is True, result.comment
    assert result.changes["purged"] == [str(data)]
    assert data.is_dir() and list(data.iterdir()) == []
    assert not list(data.parent.glob("data.berth-purged*"))


def test_run_killed_after_stopping_old_containers_recovers(
    running_release,
    testbed,
    release_images,
    release_pillar,
    salt_call_local,
    fresh_engine,
    tmp_path,
):
    cli, loaders, data = running_release
    release = release_pillar(
        27, seed_containers(release_images, data, curveball="curveball_v2", purge_data=True)
    )
    pillar = {"docker": {"release": release, "registries": testbed.registries_pillar()}}
    # a real salt-call with a long settle time, killed (SIGKILL: no cleanup) once the old
    # containers are stopped and the data purged
    call = salt_call_local(fresh_engine, **{"docker.release_settle_seconds": 60})
    call.set_pillar(pillar)
    journal = tmp_path / "device-state" / "journal.json"
    proc = call.popen("state.sls", "docker.release")
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                state = json.loads(journal.read_text())
            except (OSError, ValueError):
                state = None
            if (
                state
                and any(s["action"] == "verify" for s in state["steps"][: state["done"] + 1])
                and state["done"] >= [s["action"] for s in state["steps"]].index("verify")
            ):
                break
            assert time.monotonic() < deadline, "apply never reached verification"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    stopped = snapshot(cli)
    assert stopped["deployment-curveball-20"][1] == "exited"
    assert stopped["deployment-ravendb-20"][1] == "exited"
    assert journal.exists()

    # next start: the interrupted apply is rolled back, the old release runs again
    assert loaders.modules.docker.release_recover().startswith(
        "rolled back interrupted apply of release 27"
    )
    after = snapshot(cli)
    assert set(after) == {"deployment-curveball-20", "deployment-ravendb-20"}
    assert all(state == "running" for _, state, _ in after.values())
    assert (data / "settings.json").read_text() == "original"
    assert not journal.exists()

    # and the next apply brings the new release
    set_pillar(loaders, pillar)
    result = apply_sls(loaders)
    assert result.result is True, result.comment
    assert {n for n, v in snapshot(cli).items() if v[1] == "running"} == {
        "deployment-curveball-27",
        "deployment-ravendb-27",
    }


def test_concurrent_second_apply_is_refused(
    running_release,
    testbed,
    release_images,
    release_pillar,
    salt_call_local,
    fresh_engine,
    tmp_path,
):
    cli, loaders, data = running_release
    release = release_pillar(28, seed_containers(release_images, data, curveball="curveball_v2"))
    pillar = {"docker": {"release": release, "registries": testbed.registries_pillar()}}
    call = salt_call_local(fresh_engine, **{"docker.release_settle_seconds": 60})
    call.set_pillar(pillar)
    lock_holder = call.popen("docker.release_apply")
    try:
        journal = tmp_path / "device-state" / "journal.json"
        deadline = time.monotonic() + 60
        while not journal.exists():
            assert lock_holder.poll() is None, lock_holder.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        set_pillar(loaders, pillar)
        result = apply_sls(loaders)
        assert result.result is False
        assert "another release apply is already running" in result.comment
    finally:
        lock_holder.send_signal(signal.SIGKILL)
        lock_holder.communicate()
    loaders.modules.docker.release_recover()


def test_pillar_error_refuses_to_run(running_release, testbed):
    cli, loaders, data = running_release
    before = snapshot(cli)
    set_pillar(
        loaders, {"docker": {"error": "berth_api: GET /master/minions/x/pillar/ failed: timed out"}}
    )
    result = apply_sls(loaders)
    assert result.result is False
    assert "Refusing to apply" in result.comment and "timed out" in result.comment
    assert snapshot(cli) == before


DIE_IN_COMMIT = """
import json, os, sys
from berth.release import commands
from berth.release.executor import Executor

opts, release, registries = json.load(open(sys.argv[1]))
Executor._commit = lambda self, *args: os._exit(137)  # the process dies right after verification
commands.executor(opts).apply(commands.target(release, registries))
"""


def test_run_killed_after_verification_is_finished_on_next_run(
    running_release, testbed, release_images, release_pillar, fresh_engine, tmp_path
):
    import subprocess
    import sys

    cli, loaders, data = running_release
    release = release_pillar(29, seed_containers(release_images, data, curveball="curveball_v2"))
    regs = {"1": testbed.registries_pillar()[1]}
    opts = {
        "docker.url": fresh_engine,
        "docker.release_state_dir": str(tmp_path / "device-state"),
        "docker.release_settle_seconds": 0.5,
        "id": "killed-device",
    }
    args = tmp_path / "args.json"
    args.write_text(json.dumps([opts, release, regs]))
    proc = subprocess.run(
        [sys.executable, "-c", DIE_IN_COMMIT, str(args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 137, proc.stderr
    state = snapshot(cli)
    assert (
        state["deployment-curveball-29"][1] == "running"
        and state["deployment-curveball-20"][1] == "exited"
    )
    assert loaders.modules.docker.release_status()["state"] == "interrupted"

    set_pillar(loaders, {"docker": {"release": release, "registries": regs}})
    result = loaders.modules.docker.release_apply()

    assert result["recovered"] == "finished interrupted apply of release 29"
    assert result["outcome"] == "unchanged"
    assert set(snapshot(cli)) == {"deployment-curveball-29", "deployment-ravendb-29"}
    assert loaders.modules.docker.release_status()["state"] == "running"
