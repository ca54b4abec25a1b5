"""Digest pinning end to end, all real (issue 18): the API pins ``curveball:2.0.0`` to the digest
the testbed registry serves when the rollout is created; after wave 1 succeeded a different image
is pushed under the same tag; wave 2's device runs exactly wave 1's digest (``docker inspect`` on
its own engine), not the image the tag names now."""

import uuid

import docker
import pytest

from berth import registryclient
from tests.fixtures.salt import wait_for
from tests.integration.test_fleet_loop import sleep_signal
from tests.integration.test_fleet_rollout import Api

pytestmark = [pytest.mark.salt_daemons, pytest.mark.docker, pytest.mark.db]

TIMEOUT = 240


def running_digests(minion, name) -> tuple[str, list[str]]:
    """(the container's configured image, RepoDigests of the image it runs) on the device's engine."""
    cli = docker.DockerClient(base_url=minion.docker_host)
    try:
        container = cli.api.inspect_container(name)
        assert container["State"]["Running"], container["State"]
        return container["Config"]["Image"], cli.api.inspect_image(container["Image"])[
            "RepoDigests"
        ]
    finally:
        cli.close()


def test_a_tag_pushed_again_between_waves_does_not_reach_wave_2(
    fleet_api, salt_minions, salt_cli, salt_run_cli, testbed, build_image
):
    api = Api(fleet_api)
    registry = testbed.registry
    repo = f"pin-{uuid.uuid4().hex[:6]}/curveball"
    ref = f"{registry}/{repo}:2.0.0"
    build_image(ref)
    creds = (testbed.user, testbed.password)
    validated = registryclient.resolve(registry, repo, "2.0.0", creds)

    ret = salt_run_cli.run("berth.register_minions")
    assert ret.returncode == 0, ret
    devices = {d["unit_id"]: d["id"] for d in api.call("GET", "/devices/?page_size=100")["results"]}
    minion_of = {devices[m.id]: m for m in salt_minions}
    tag = f"pin-{uuid.uuid4().hex[:6]}"
    for device_id in minion_of:
        api.call("PATCH", f"/devices/{device_id}/", json={"tags": [tag]})
    for minion in salt_minions:
        assert salt_cli.run("state.sls", "docker.sleep", minion_tgt=minion.id).returncode == 0
    reg = api.call(
        "POST",
        "/docker/registries/",
        expect=201,
        json={
            "name": repo,
            "url": registry,
            "username": testbed.user,
            "password": testbed.password,
        },
    )
    project = api.call("POST", "/docker/projects/", expect=201, json={"name": repo})["id"]
    releases = f"/docker/projects/{project}/releases/"
    release = api.call(
        "POST",
        releases,
        expect=201,
        json={
            "version": "2.0.0",
            "device_tags": [tag],
            "containers": [
                {
                    "name": "curveball",
                    "image": repo,
                    "tag": "2.0.0",
                    "startup_parameters": {"network_mode": "none", "restart_policy": "no"},
                    "registry": reg["id"],
                }
            ],
            "rollout": {"waves": [50, 100]},
        },
    )
    assert release["containers"][0]["digest"] == validated
    waves = {}
    for row in api.call("GET", f"{releases}{release['id']}/deployments/?page_size=100")["results"]:
        waves.setdefault(row["wave"], []).append(row["device"])
    (first,), (second,) = waves[1], waves[2]
    name = f"deployment-curveball-{release['id']}"
    pinned_ref = f"{registry}/{repo}@{validated}"

    done = sleep_signal(minion_of[first], timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(
        lambda: api.call("GET", f"{releases}{release['id']}/rollout/")["wave"] == 2,
        timeout=TIMEOUT,
        what="wave 2 started by wave 1's report",
    )
    image, digests = running_digests(minion_of[first], name)
    assert image == pinned_ref and pinned_ref in digests

    # between the waves: someone pushes another image as curveball:2.0.0
    build_image(ref, cmd=["sh", "-c", "echo not what wave 1 validated; sleep 3600"])
    moved = registryclient.resolve(registry, repo, "2.0.0", creds)
    assert moved != validated

    done = sleep_signal(minion_of[second], timeout=TIMEOUT)
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(
        lambda: api.call("GET", f"{releases}{release['id']}/rollout/")["state"] == "completed",
        timeout=TIMEOUT,
        what="the rollout completed",
    )
    image, digests = running_digests(minion_of[second], name)
    assert image == pinned_ref
    assert pinned_ref in digests
    assert f"{registry}/{repo}@{moved}" not in digests
