"""state.sls docker.release against a real dockerd and a real htpasswd registry: the success paths."""

import time

import pytest

from tests.fixtures.docker import seed_containers, set_pillar

pytestmark = [pytest.mark.docker]


def running(cli, name):
    return cli.api.inspect_container(name)["State"]["Status"] == "running"


def local_refs(cli):
    return {t for img in cli.api.images() for t in (img.get("RepoTags") or [])}


def apply_sls(loaders, **kwargs):
    ret = loaders.modules.state.sls("docker.release", **kwargs)
    (result,) = list(ret)
    return result


@pytest.fixture
def device(fresh_engine, testbed, tmp_path):
    cli = testbed.client(fresh_engine)
    data = tmp_path / "data"
    data.mkdir()
    (data / "settings.json").write_text('{"seed": true}')
    yield cli, data
    cli.close()


def test_seed_release_on_fresh_engine_replaces_initial_containers(
    device, fresh_engine, testbed, release_images, release_pillar, release_loaders
):
    cli, data = device
    reg = testbed.registry
    # the "initial" containers a device shipped with, named in remove_containers
    base_image = "berth-busybox:base"
    cli.images.pull(
        f"{reg}/{release_images['ravendb_base'][0]}",
        tag="base",
        auth_config={"username": testbed.user, "password": testbed.password},
    )
    for name in ("curveball", "ravendb"):
        cli.containers.run(
            f"{reg}/{release_images['ravendb_base'][0]}:base",
            name=name,
            detach=True,
            network_mode="none",
        )
    release = release_pillar(
        7, seed_containers(release_images, data), remove_containers=["curveball", "ravendb"]
    )
    loaders = release_loaders(
        {"docker": {"release": release, "registries": testbed.registries_pillar()}},
        docker_host=fresh_engine,
    )

    result = apply_sls(loaders)

    assert result.result is True, result.comment
    cb_image, cb_tag = release_images["curveball_v1"]
    assert f"{reg}/{cb_image}:{cb_tag}" in result.changes["pulled"]
    assert f"{reg}/{cb_image}:base" in result.changes["pulled"]
    assert sorted(result.changes["stopped"]) == ["curveball", "ravendb"]
    assert sorted(result.changes["started"]) == ["deployment-curveball-7", "deployment-ravendb-7"]
    assert sorted(result.changes["removed"]) == ["curveball", "ravendb"]
    names = {c["Names"][0].lstrip("/") for c in cli.api.containers(all=True)}
    assert names == {"deployment-curveball-7", "deployment-ravendb-7"}
    attrs = cli.api.inspect_container("deployment-curveball-7")
    assert attrs["State"]["Status"] == "running"
    assert attrs["HostConfig"]["NetworkMode"] == "host"
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert f"{data}:/opt/RavenDB/Server/RavenData:rw" in attrs["HostConfig"]["Binds"]
    assert (
        "REQUESTS_CA_BUNDLE=/usr/local/share/ca-certificates/Adam CA.crt" in attrs["Config"]["Env"]
    )
    labels = attrs["Config"]["Labels"]
    assert labels["io.berth.release"] == "7"
    assert labels["io.berth.version_hash"] == release["version_hash"]
    assert labels["io.berth.project"] == "1"
    assert labels["io.berth.name"] == "curveball"
    # the bind is really mounted: the container sees the host data
    exec_id = cli.api.exec_create(
        "deployment-ravendb-7", ["cat", "/opt/RavenDB/Server/RavenData/settings.json"]
    )
    assert b'"seed": true' in cli.api.exec_start(exec_id)
    assert f"{reg}/{cb_image}:base" in local_refs(cli)  # required tag present
    del base_image

    status = loaders.modules.docker.release_status()
    assert status["release_id"] == 7 and status["state"] == "running"


def test_reapply_is_a_fast_noop(
    device, fresh_engine, testbed, release_images, release_pillar, release_loaders
):
    cli, data = device
    release = release_pillar(8, seed_containers(release_images, data))
    loaders = release_loaders(
        {"docker": {"release": release, "registries": testbed.registries_pillar()}},
        docker_host=fresh_engine,
    )
    assert apply_sls(loaders).result is True
    ids = {c["Id"] for c in cli.api.containers()}

    second = apply_sls(loaders)
    assert second.result is True
    assert second.changes == {}
    assert "already applied" in second.comment
    assert {c["Id"] for c in cli.api.containers()} == ids

    t0 = time.perf_counter()
    out = loaders.modules.docker.release_apply()
    elapsed = time.perf_counter() - t0
    assert out["outcome"] == "unchanged"
    assert elapsed < 0.5, f"no-op apply took {elapsed:.3f} s"
    assert loaders.modules.docker.release_plan() == []


def test_upgrade_removes_old_release_and_unused_images_keeps_required(
    device, fresh_engine, testbed, release_images, release_pillar, release_loaders
):
    cli, data = device
    reg = testbed.registry
    regs = testbed.registries_pillar()
    r1 = release_pillar(10, seed_containers(release_images, data))
    loaders = release_loaders(
        {"docker": {"release": r1, "registries": regs}}, docker_host=fresh_engine
    )
    assert apply_sls(loaders).result is True

    r2 = release_pillar(11, seed_containers(release_images, data, curveball="curveball_v2"))
    set_pillar(loaders, {"docker": {"release": r2, "registries": regs}})
    result = apply_sls(loaders)

    assert result.result is True, result.comment
    cb, v1 = release_images["curveball_v1"]
    _, v2 = release_images["curveball_v2"]
    rv, rv_tag = release_images["ravendb_base"]
    assert sorted(result.changes["removed"]) == ["deployment-curveball-10", "deployment-ravendb-10"]
    # the replaced release's images stay: a revert or rollback to it needs no registry
    assert "images_removed" not in result.changes
    assert f"{reg}/{cb}:{v1}" in local_refs(cli)
    names = {c["Names"][0].lstrip("/"): c["State"] for c in cli.api.containers(all=True)}
    assert names == {"deployment-curveball-11": "running", "deployment-ravendb-11": "running"}
    assert loaders.modules.docker.release_status()["release_id"] == 11

    # one release later the images of the release before the replaced one go
    r3 = release_pillar(12, seed_containers(release_images, data, curveball="curveball_v2"))
    set_pillar(loaders, {"docker": {"release": r3, "registries": regs}})
    result = apply_sls(loaders)
    assert result.result is True, result.comment
    assert result.changes["images_removed"] == [f"{reg}/{cb}:{v1}"]
    refs = local_refs(cli)
    assert f"{reg}/{cb}:{v1}" not in refs
    assert {f"{reg}/{cb}:{v2}", f"{reg}/{cb}:base", f"{reg}/{rv}:{rv_tag}"} <= refs
    assert loaders.modules.docker.release_status()["release_id"] == 12


def test_healthcheck_is_awaited_before_success(
    fresh_engine, testbed, release_images, release_pillar, release_loaders, tmp_path
):
    cli = testbed.client(fresh_engine)
    image, tag = release_images["healthy"]
    release = release_pillar(
        12,
        [
            {
                "name": "svc",
                "image": image,
                "tag": tag,
                "registry": 1,
                "startup_parameters": {"network_mode": "none"},
            }
        ],
    )
    loaders = release_loaders(
        {"docker": {"release": release, "registries": testbed.registries_pillar()}},
        docker_host=fresh_engine,
        **{"docker.release_settle_seconds": 0},
    )
    result = apply_sls(loaders)
    assert result.result is True, result.comment
    # success was only reported once the image's HEALTHCHECK said healthy
    assert cli.api.inspect_container("deployment-svc-12")["State"]["Health"]["Status"] == "healthy"


def test_test_mode_lists_plan_and_changes_nothing(
    device, fresh_engine, testbed, release_images, release_pillar, release_loaders
):
    cli, data = device
    release = release_pillar(13, seed_containers(release_images, data))
    loaders = release_loaders(
        {"docker": {"release": release, "registries": testbed.registries_pillar()}},
        docker_host=fresh_engine,
    )
    before = (cli.api.containers(all=True), local_refs(cli))

    result = apply_sls(loaders, test=True)

    assert result.result is None
    cb, tag = release_images["curveball_v1"]
    assert f"pull {testbed.registry}/{cb}:{tag}" in result.changes["plan"]
    assert sorted(result.changes["started"]) == ["deployment-curveball-13", "deployment-ravendb-13"]
    assert (cli.api.containers(all=True), local_refs(cli)) == before
    assert loaders.modules.docker.release_status()["state"] == "none"


def test_degraded_release_is_reapplied(
    device, fresh_engine, testbed, release_images, release_pillar, release_loaders
):
    cli, data = device
    release = release_pillar(14, seed_containers(release_images, data))
    loaders = release_loaders(
        {"docker": {"release": release, "registries": testbed.registries_pillar()}},
        docker_host=fresh_engine,
    )
    assert apply_sls(loaders).result is True
    cli.api.stop("deployment-ravendb-14", timeout=1)
    assert loaders.modules.docker.release_status()["state"] == "degraded"

    result = apply_sls(loaders)

    assert result.result is True, result.comment
    # the stale copies were moved aside, replaced, then removed
    assert sorted(result.changes["removed"]) == [
        "deployment-curveball-14.berth-previous",
        "deployment-ravendb-14.berth-previous",
    ]
    names = {c["Names"][0].lstrip("/"): c["State"] for c in cli.api.containers(all=True)}
    assert names == {"deployment-curveball-14": "running", "deployment-ravendb-14": "running"}
    assert loaders.modules.docker.release_status()["state"] == "running"
