"""Rollouts end to end, all real: the API (thread, real DB), salt-master ext_pillar and reactor,
four minions each with its own dockerd, the sleep hook, results back through ``berth.report``.

1. a release with waves [25, 100] whose container exits at once: wave 1's device fails and
   rolls back, the rollout halts by itself, the other 3 devices are signalled "about to
   sleep" and keep running the previous release;
2. a good release with waves [25, 100]: wave 1 succeeds, wave 2 starts by itself (the
   report decides), all 4 succeed;
3. ``revert/`` on it: all 4 run the previous release again, applied with the registry
   stopped (the device kept the previous release's images).
"""

import uuid

import pytest
import requests

from tests.fixtures.salt import running_minions, wait_for
from tests.integration.test_fleet_loop import containers_on, sleep_signal

pytestmark = [pytest.mark.salt_daemons, pytest.mark.docker, pytest.mark.db]

TIMEOUT = 240


@pytest.fixture(scope="module")
def four_minions(salt_master, salt_minions, fleet_state_dir):
    with running_minions(salt_master, fleet_state_dir, 2, name="rollout") as more:
        yield [*salt_minions, *more]


class Api:
    def __init__(self, live):
        self.live = live

    def call(self, method, path, expect=200, **kwargs):
        resp = requests.request(
            method, self.live.url + path, headers=self.live.headers, timeout=30, **kwargs
        )
        assert resp.status_code == expect, f"{method} {path}: {resp.status_code} {resp.text[:1000]}"
        return resp.json() if resp.content else None


class Project:
    """The minions registered as devices, a registry, a project, the sleep hook installed."""

    def __init__(self, api, salt_cli, salt_run_cli, minions, registry, testbed, repo):
        self.api, self.repo = api, repo
        ret = salt_run_cli.run("berth.register_minions")
        assert ret.returncode == 0, ret
        rows = api.call("GET", "/devices/?page_size=100")["results"]
        devices = {d["unit_id"]: d["id"] for d in rows}
        self.minion_of = {devices[m.id]: m for m in minions}
        body = {"name": repo, "url": registry, "username": testbed.user}
        self.registry_id = api.call(
            "POST", "/docker/registries/", expect=201, json={**body, "password": testbed.password}
        )["id"]
        project = api.call("POST", "/docker/projects/", expect=201, json={"name": repo})["id"]
        self.releases = f"/docker/projects/{project}/releases/"
        for minion in minions:
            ret = salt_cli.run("state.sls", "docker.sleep", minion_tgt=minion.id)
            assert ret.returncode == 0, ret

    def release(self, version, image, tag, rollout=None, **targets):
        """A release of one container ``app`` for ``targets`` (``devices`` or ``device_tags``)."""
        body = {
            "version": version,
            **targets,
            "containers": [
                {
                    "name": "app",
                    "image": f"{self.repo}/{image}",
                    "tag": tag,
                    "startup_parameters": {"network_mode": "none", "restart_policy": "no"},
                    "registry": self.registry_id,
                }
            ],
        }
        if rollout:
            body["rollout"] = rollout
        return self.api.call("POST", self.releases, expect=201, json=body)


def test_halt_then_waves_then_offline_revert(
    fleet_api, four_minions, salt_cli, salt_run_cli, testbed, build_image, private_registry
):
    api = Api(fleet_api)
    registry = private_registry.url
    repo = f"rollout-{uuid.uuid4().hex[:6]}"
    for image, tag, cmd in (
        ("app", "v1", None),
        ("app", "v2", None),
        ("crash", "v1", ["sh", "-c", "echo 'fatal: config missing' >&2; exit 3"]),
    ):
        build_image(f"{registry}/{repo}/{image}:{tag}", cmd=cmd)

    fleet = Project(api, salt_cli, salt_run_cli, four_minions, registry, testbed, repo)
    minion_of, releases = fleet.minion_of, fleet.releases
    assert len(minion_of) == 4
    # the devices carry a tag; the rollouts target the tag
    for device_id in minion_of:
        api.call("PATCH", f"/devices/{device_id}/", json={"tags": ["rollout-fleet"]})

    def release(version, image, tag, rollout=None):
        return fleet.release(version, image, tag, rollout, device_tags=["rollout-fleet"])

    def rollout(rel):
        return api.call("GET", f"{releases}{rel['id']}/rollout/")

    def deployments(rel, query=""):
        rows = api.call("GET", f"{releases}{rel['id']}/deployments/?page_size=100{query}")
        return {row["device"]: row for row in rows["results"]}

    def running(rel):
        return {
            device_id
            for device_id, minion in minion_of.items()
            if containers_on(minion).get(f"deployment-app-{rel['id']}") == "running"
        }

    def sleep(device_ids, expect_ok=True):
        for device_id in device_ids:
            done = sleep_signal(minion_of[device_id], timeout=TIMEOUT)
            if expect_ok:
                assert done.returncode == 0, done.stdout + done.stderr

    # 0. the previous release, everywhere at once (no rollout)
    base = release("1.0.0", "app", "v1")
    sleep(minion_of)
    wait_for(
        lambda: (
            set(api.call("GET", f"{releases}{base['id']}/")["successful_deployments"])
            == set(minion_of)
        ),
        timeout=TIMEOUT,
        what="the base release on all 4",
    )

    # 1. a release whose container exits at once: wave 1 fails, the rollout halts by itself
    bad = release("1.1.0-broken", "crash", "v1", rollout={"waves": [25, 100]})
    waves = {}
    for device_id, row in deployments(bad).items():
        waves.setdefault(row["wave"], []).append(device_id)
    (first,) = waves[1]
    assert len(waves[2]) == 3
    done = sleep_signal(minion_of[first], timeout=TIMEOUT)
    assert done.returncode != 0  # failed and rolled back
    body = wait_for(
        lambda: (r := rollout(bad))["state"] == "halted" and r,
        timeout=TIMEOUT,
        what="the broken release's rollout halted",
    )
    assert body["waves"][0]["failed"] == 1 and "wave 1" in body["halt_reason"]
    assert deployments(bad)[first]["status"] == "failed"
    # the other 3 are signalled "about to sleep" and keep running the previous release
    sleep(waves[2])
    assert running(base) == set(minion_of)
    assert {deployments(bad)[d]["status"] for d in waves[2]} == {"waiting"}
    assert running(bad) == set()

    # 2. a good release: wave 1 succeeds, wave 2 starts by itself, all 4 succeed
    good = release("1.2.0", "app", "v2", rollout={"waves": [25, 100]})
    waves = {}
    for device_id, row in deployments(good).items():
        waves.setdefault(row["wave"], []).append(device_id)
    (first,) = waves[1]
    sleep([first])
    wait_for(
        lambda: rollout(good)["wave"] == 2,
        timeout=TIMEOUT,
        what="wave 2 started by wave 1's report",
    )
    sleep(waves[2])
    body = wait_for(
        lambda: (r := rollout(good))["state"] == "completed" and r,
        timeout=TIMEOUT,
        what="the good rollout completed",
    )
    assert [w["succeeded"] for w in body["waves"]] == [1, 3]
    assert running(good) == set(minion_of)

    # 3. revert with the registry stopped: the previous release's images are still on the devices
    private_registry.stop()
    body = api.call("POST", f"{releases}{good['id']}/rollout/revert/")
    assert body["state"] == "reverting" and body["revert"]["devices"] == 4
    sleep(minion_of)
    body = wait_for(
        lambda: (r := rollout(good))["state"] == "reverted" and r,
        timeout=TIMEOUT,
        what="the good release reverted on all 4",
    )
    assert body["revert"] == {"devices": 4, "reverted": 4, "failed": 0, "pending": 0}
    assert running(base) == set(minion_of)
    assert running(good) == set()
    assert [h["action"] for h in body["history"]] == ["revert"]
