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
    (image, tag) = release_images["ravendb_base"]
    cli.images.pull(
        f"{testbed.registry}/{image}",
        tag=tag,
        auth_config={"username": testbed.user, "password": testbed.password},
    )
    cli.containers.run(
        f"{testbed.registry}/{image}:{tag}", name="salt-minion", detach=True, network_mode="none"
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
    (image, tag) = release_images["ravendb_base"]
    cli.images.pull(
        f"{testbed.registry}/{image}",
        tag=tag,
        auth_config={"username": testbed.user, "password": testbed.password},
    )
    minion = cli.containers.run(
        f"{testbed.registry}/{image}:{tag}", name="salt-minion", detach=True, network_mode="none"
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
