"""The device enforces the release policy itself (docs/security.md): a forged pillar -- one that
never went through the API's validation -- cannot make it rename, delete or bind-mount a system
path, or remove a protected container. Real dockerd, real registry, the real release state."""

import os

import pytest

from tests.fixtures.docker import seed_containers

pytestmark = [pytest.mark.docker]


def apply_sls(loaders):
    (result,) = list(loaders.modules.state.sls("docker.release"))
    return result


def _pillar(testbed, release):
    return {"docker": {"release": release, "registries": testbed.registries_pillar()}}


def _unpullable(testbed, release_pillar, release_id, bind, purge_data=False):
    """A release of one container binding ``bind``, of an image nobody has: were the policy to
    let it through, the pull would fail before any step."""
    container = {
        "name": "evil",
        "image": f"{testbed.registry}/berth-no-such-image",
        "tag": "1",
        "startup_parameters": {"binds": [bind]},
        "purge_data": purge_data,
        "registry": 1,
    }
    return release_pillar(release_id, [container])


def _etc_state():
    return sorted(os.listdir("/")), os.stat("/etc").st_ino


def _pulled(cli, testbed, release_images, key="ravendb_base") -> str:
    """The reference of a test image, pulled onto the engine (as a device's other containers)."""
    (image, tag) = release_images[key]
    auth = {"username": testbed.user, "password": testbed.password}
    cli.images.pull(f"{testbed.registry}/{image}", tag=tag, auth_config=auth)
    return f"{testbed.registry}/{image}:{tag}"


def test_forged_pillar_purging_etc_is_refused_before_anything_happens(
    fresh_engine, testbed, release_pillar, release_loaders
):
    before = _etc_state()
    # An image nobody has: were the policy ever to let this through, the pull would fail
    # before any purge step, so this test can never rename the real /etc.
    release = _unpullable(testbed, release_pillar, 31, "/etc:/host-etc", purge_data=True)
    loaders = release_loaders(_pillar(testbed, release), docker_host=fresh_engine)
    result = apply_sls(loaders)
    assert result.result is False
    assert "refused by the device's release policy" in result.comment
    assert "'/etc'" in result.comment and "a system path" in result.comment
    assert _etc_state() == before
    assert not [n for n in os.listdir("/") if n.startswith("etc.berth-purged")]
    cli = testbed.client(fresh_engine)
    assert cli.api.containers(all=True) == [] and cli.api.images() == []  # not even pulled
    cli.close()


def test_symlink_into_a_system_path_and_protected_containers(
    fresh_engine, testbed, release_images, release_pillar, release_loaders, tmp_path
):
    cli = testbed.client(fresh_engine)
    link = tmp_path / "data"
    link.symlink_to("/etc")  # looks like a data directory, leads to /etc
    release = release_pillar(32, seed_containers(release_images, link, purge_data=True))
    loaders = release_loaders(_pillar(testbed, release), docker_host=fresh_engine)
    result = apply_sls(loaders)
    assert result.result is False and "touches /etc" in result.comment
    assert link.is_symlink() and os.readlink(link) == "/etc"

    # remove_containers naming the device's own salt-minion container
    cli.containers.run(
        _pulled(cli, testbed, release_images), name="salt-minion", detach=True, network_mode="none"
    )
    data = tmp_path / "real-data"
    data.mkdir()
    release = release_pillar(
        33, seed_containers(release_images, data), remove_containers=["salt-minion"]
    )
    loaders = release_loaders(_pillar(testbed, release), docker_host=fresh_engine)
    result = apply_sls(loaders)
    assert result.result is False and "'salt-minion' is a protected container" in result.comment
    assert cli.api.inspect_container("salt-minion")["State"]["Status"] == "running"

    # data roots: purge only under them
    release = release_pillar(34, seed_containers(release_images, data, purge_data=True))
    loaders = release_loaders(
        _pillar(testbed, release),
        docker_host=fresh_engine,
        **{"docker.release_data_roots": [str(tmp_path / "elsewhere")]},
    )
    result = apply_sls(loaders)
    assert result.result is False and "outside the data roots" in result.comment
    assert data.is_dir()
    cli.close()


def test_forged_pillar_joining_the_salt_minion_namespace_is_refused(
    fresh_engine, testbed, release_images, release_pillar, release_loaders, tmp_path
):
    cli = testbed.client(fresh_engine)
    minion = cli.containers.run(
        _pulled(cli, testbed, release_images), name="salt-minion", detach=True, network_mode="none"
    )
    data = tmp_path / "data"
    data.mkdir()
    for ref in ("salt-minion", minion.id[:6], minion.id):
        containers = seed_containers(release_images, data)
        containers[0]["startup_parameters"]["network_mode"] = f"container:{ref}"
        release = release_pillar(35, containers)
        loaders = release_loaders(_pillar(testbed, release), docker_host=fresh_engine)
        result = apply_sls(loaders)
        assert result.result is False, ref
        assert "refused by the device's release policy" in result.comment
        assert "network_mode" in result.comment
        assert [c["Names"] for c in cli.api.containers(all=True)] == [["/salt-minion"]]
    cli.close()


# -- issue 17, finding 4: binds by allow-list on the device -----------------------------------


def test_forged_pillar_binding_host_paths_outside_the_data_roots_is_refused(
    fresh_engine, testbed, release_pillar, release_loaders
):
    cli = testbed.client(fresh_engine)
    sources = [
        "/run/dbus/system_bus_socket",
        "/run/systemd/private",
        "/var/spool/cron",
        "/home",
        "/run/user/0",
        "/run/podman/podman.sock",
        "/tmp",
    ]
    for n, source in enumerate(sources):
        release = _unpullable(testbed, release_pillar, 40 + n, f"{source}:/host")
        # the account's bind prefixes never open a denied path
        release["bind_prefixes"] = ["/run", "/var/spool"]
        loaders = release_loaders(_pillar(testbed, release), docker_host=fresh_engine)
        result = apply_sls(loaders)
        assert result.result is False, source
        assert "refused by the device's release policy" in result.comment, (source, result.comment)
        assert repr(source) in result.comment
        assert cli.api.containers(all=True) == [] and cli.api.images() == []  # not even pulled
    cli.close()


def test_bind_prefixes_from_pillar_open_a_path_and_are_bounded(
    fresh_engine, testbed, release_images, release_pillar, release_loaders, tmp_path
):
    cli = testbed.client(fresh_engine)
    app_dir = tmp_path / "app"
    data = app_dir / "data"
    data.mkdir(parents=True)
    roots = {"docker.release_data_roots": [str(tmp_path / "roots")]}
    release = release_pillar(60, seed_containers(release_images, data))
    result = apply_sls(release_loaders(_pillar(testbed, release), fresh_engine, **roots))
    assert result.result is False and "outside the data roots" in result.comment
    assert cli.api.containers(all=True) == []

    for bad in (["/"], [str(app_dir)] * 33, "/opt", ["relative"]):
        release = release_pillar(61, seed_containers(release_images, data))
        release["bind_prefixes"] = bad
        result = apply_sls(release_loaders(_pillar(testbed, release), fresh_engine, **roots))
        assert result.result is False and "bind_prefixes" in result.comment, bad
    assert cli.api.containers(all=True) == []

    release = release_pillar(62, seed_containers(release_images, data))
    release["bind_prefixes"] = [str(app_dir)]
    result = apply_sls(release_loaders(_pillar(testbed, release), fresh_engine, **roots))
    assert result.result is True, result.comment
    names = sorted(c["Names"][0] for c in cli.api.containers(all=True))
    assert names == ["/deployment-curveball-62", "/deployment-ravendb-62"]
    cli.close()


# -- issue 17, finding 4: named volumes that belong to the release's project ------------------


@pytest.fixture
def cli(testbed, fresh_engine):
    """A Docker client of the device's engine."""
    client = testbed.client(fresh_engine)
    yield client
    client.close()


@pytest.fixture
def data(tmp_path):
    """A directory under the device's data roots (``release_loaders``)."""
    path = tmp_path / "data"
    path.mkdir()
    return path


def _with_volume(release_images, release_pillar, release_id, data, volume, **kwargs):
    """The seed release, its curveball mounting ``volume`` at /appdata."""
    curveball = kwargs.pop("curveball", "curveball_v1")
    containers = seed_containers(release_images, data, curveball=curveball)
    containers[0]["startup_parameters"]["volumes"] = [f"{volume}:/appdata"]
    return release_pillar(release_id, containers, **kwargs)


def _running(cli):
    return sorted((c["Names"][0], c["State"]) for c in cli.api.containers(all=True))


def test_forged_pillar_mounting_a_volume_that_binds_etc_is_refused_before_anything_happens(
    fresh_engine, testbed, release_images, release_pillar, release_loaders, cli, data
):
    release = release_pillar(90, seed_containers(release_images, data))
    assert apply_sls(release_loaders(_pillar(testbed, release), fresh_engine)).result is True
    before = _running(cli)
    images = sorted(i["Id"] for i in cli.api.images())
    bind = {"type": "none", "o": "bind", "device": "/etc"}
    cli.api.create_volume("host-etc", driver="local", driver_opts=bind)
    # Berth's own label on it changes nothing: a volume with driver options is never mounted
    cli.api.create_volume(
        "labelled-etc", driver="local", driver_opts=bind, labels={"io.berth.project": "1"}
    )
    for n, volume in enumerate(("host-etc", "labelled-etc")):
        release = _with_volume(
            release_images, release_pillar, 91 + n, data, volume, curveball="curveball_v2"
        )
        result = apply_sls(release_loaders(_pillar(testbed, release), fresh_engine))
        assert result.result is False, volume
        assert "refused by the device's release policy" in result.comment, result.comment
        assert f"volume {volume!r} has driver options" in result.comment
        # the previous release keeps running; nothing pulled, nothing created
        assert _running(cli) == before
        assert sorted(i["Id"] for i in cli.api.images()) == images


def test_a_volume_of_another_app_of_the_salt_minion_or_made_outside_berth_is_refused(
    fresh_engine, testbed, release_images, release_pillar, release_loaders, cli, data
):
    ref = _pulled(cli, testbed, release_images)
    # the salt-minion's volume, even labelled for this very project
    cli.api.create_volume("minion-pki", labels={"io.berth.project": "1"})
    cli.containers.run(
        ref,
        name="salt-minion",
        detach=True,
        network_mode="none",
        volumes=["minion-pki:/etc/salt/pki"],
    )
    cli.api.create_volume("other-app", labels={"io.berth.project": "2"})
    cli.api.create_volume("not-berths")
    cli.api.create_volume(
        "by-a-plugin", driver="local", driver_opts={"type": "tmpfs", "device": "tmpfs"}
    )
    before = _running(cli)
    expected = {
        "minion-pki": "is mounted by 'salt-minion', a protected container",
        "other-app": "belongs to another project (io.berth.project=2)",
        "not-berths": "was not created by Berth for this project",
        "by-a-plugin": "has driver options",
    }
    for n, (volume, reason) in enumerate(expected.items()):
        release = _with_volume(release_images, release_pillar, 100 + n, data, volume)
        result = apply_sls(release_loaders(_pillar(testbed, release), fresh_engine))
        assert result.result is False, volume
        assert "refused by the device's release policy" in result.comment, result.comment
        assert reason in result.comment, result.comment
        assert _running(cli) == before
    # volumes_from and mounts are no startup parameters: the device refuses them too
    for key, value in (("volumes_from", ["salt-minion"]), ("mounts", [{"Source": "minion-pki"}])):
        containers = seed_containers(release_images, data)
        containers[0]["startup_parameters"][key] = value
        release = release_pillar(110, containers)
        result = apply_sls(release_loaders(_pillar(testbed, release), fresh_engine))
        assert result.result is False and "Unknown startup parameter" in result.comment, key
        assert _running(cli) == before


def test_a_new_named_volume_is_made_for_the_project_and_kept_by_its_next_release(
    fresh_engine, testbed, release_images, release_pillar, release_loaders, cli, data
):
    release = _with_volume(release_images, release_pillar, 120, data, "appdata", project=7)
    result = apply_sls(release_loaders(_pillar(testbed, release), fresh_engine))
    assert result.result is True, result.comment
    volume = cli.api.inspect_volume("appdata")
    assert volume["Driver"] == "local" and not volume.get("Options")
    assert volume["Labels"] == {"io.berth.project": "7"}
    box = cli.containers.get("deployment-curveball-120")
    assert box.exec_run(["sh", "-c", "echo kept > /appdata/f"]).exit_code == 0

    # the next version of the same app mounts the same volume and finds its data
    release = _with_volume(
        release_images, release_pillar, 121, data, "appdata", project=7, curveball="curveball_v2"
    )
    result = apply_sls(release_loaders(_pillar(testbed, release), fresh_engine))
    assert result.result is True, result.comment
    names = sorted(c["Names"][0] for c in cli.api.containers(all=True))
    assert names == ["/deployment-curveball-121", "/deployment-ravendb-121"]
    out = cli.containers.get("deployment-curveball-121").exec_run(["cat", "/appdata/f"])
    assert out.output.decode().strip() == "kept"

    # another app on the same device does not get it
    release = _with_volume(release_images, release_pillar, 122, data, "appdata", project=8)
    result = apply_sls(release_loaders(_pillar(testbed, release), fresh_engine))
    assert result.result is False
    assert "belongs to another project (io.berth.project=7)" in result.comment
    assert sorted(c["Names"][0] for c in cli.api.containers(all=True)) == names


def test_an_unlabelled_volume_of_an_earlier_berth_release_of_the_app_is_kept_on_upgrade(
    fresh_engine, testbed, release_images, release_pillar, release_loaders, tmp_path
):
    """Before volumes were labelled, Docker made them unlabelled when the release's container was
    created: the next release of the same app still mounts it; another app does not."""
    cli = testbed.client(fresh_engine)
    data = tmp_path / "data"
    data.mkdir()
    ref = _pulled(cli, testbed, release_images, "curveball_v1")
    old = cli.containers.run(
        ref,
        name="deployment-curveball-129",
        detach=True,
        network_mode="none",
        volumes=["legacy:/appdata"],
        labels={
            "io.berth.project": "7",
            "io.berth.release": "129",
            "io.berth.version_hash": "0ld",
            "io.berth.name": "curveball",
        },
    )
    assert old.exec_run(["sh", "-c", "echo kept > /appdata/f"]).exit_code == 0
    assert not cli.api.inspect_volume("legacy")["Labels"]

    release = _with_volume(release_images, release_pillar, 130, data, "legacy", project=8)
    result = apply_sls(release_loaders(_pillar(testbed, release), fresh_engine))
    assert result.result is False and "was not created by Berth" in result.comment
    assert cli.api.inspect_container(old.id)["State"]["Status"] == "running"

    release = _with_volume(release_images, release_pillar, 131, data, "legacy", project=7)
    result = apply_sls(release_loaders(_pillar(testbed, release), fresh_engine))
    assert result.result is True, result.comment
    out = cli.containers.get("deployment-curveball-131").exec_run(["cat", "/appdata/f"])
    assert out.output.decode().strip() == "kept"


def test_a_volume_made_between_the_check_and_the_containers_creation_is_refused_there(
    fresh_engine, testbed, release_images, release_pillar, cli, data, tmp_path
):
    """The engine creates the volumes itself at each container's creation and checks them again:
    one made outside Berth after the check before the steps (here: that check not run at all)
    is never mounted, and Docker never makes one unlabelled."""
    from berth.release import commands

    opts = {
        "docker.url": fresh_engine,
        "docker.release_state_dir": str(tmp_path / "state"),
        "docker.release_settle_seconds": 0.5,
    }
    regs = {"1": testbed.registries_pillar()[1]}
    first = _with_volume(release_images, release_pillar, 140, data, "appdata", project=7)
    result = commands.executor(opts).apply(commands.target(first, regs))
    assert result["outcome"] == "succeeded", result["error"]
    before = _running(cli)

    bind = {"type": "none", "o": "bind", "device": str(data)}
    cli.api.create_volume("late", driver="local", driver_opts=bind)
    late = _with_volume(release_images, release_pillar, 141, data, "late", project=7)
    result = commands.executor(opts).apply(commands.target(late, regs))
    assert result["outcome"] == "failed"
    assert "volume 'late' has driver options" in result["error"], result["error"]
    assert _running(cli) == before  # rolled back: the previous release runs again
