"""Update locks end to end, all real (docs/release.md "Update locks"): the API (thread, real DB),
salt-master ext_pillar and reactor, two minions each with its own dockerd, the sleep hook,
results back through ``berth.report``.

A container of the running release holds ``flock`` on its ``/tmp/berth/updates.lock``: the
sleep hook waits for it until its timeout, the device reports ``deferred`` naming the holder,
the rollout (``halt_at`` 0) neither halts nor advances; the lock released, the next sleep
applies and the next wave starts. The operator's override applies over a held lock once, and
is in the audit log.
"""

import pathlib
import shlex
import subprocess
import uuid

import pytest

from api.devices.models import Device
from api.extensions import db
from tests.fixtures.salt import wait_for
from tests.integration.test_fleet_loop import containers_on
from tests.integration.test_fleet_rollout import Api, Project

pytestmark = [pytest.mark.salt_daemons, pytest.mark.docker, pytest.mark.db]

TIMEOUT = 240

# holds its update lock until a file "done" appears in its lock directory, then sleeps
LOCKING_APP = [
    "sh",
    "-c",
    'trap "exit 0" TERM; '
    'flock /tmp/berth/updates.lock sh -c "while [ ! -e /tmp/berth/done ]; do sleep 0.2; done"; '
    "sleep 3600 & wait",
]


def sleep_hook(minion, timeout):
    """The installed sleep hook with a short ``--timeout`` (its default is 20 minutes)."""
    line = next(x for x in minion.sleep_hook.read_text().splitlines() if x.startswith("exec "))
    argv = shlex.split(line)[1:]
    argv[argv.index("--timeout") + 1] = str(timeout)
    argv[argv.index("--") : argv.index("--")] = ["--busy-retry", "1"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)


def lock_dir(minion, container):
    config = minion.config
    state = config.get("docker.release_state_dir") or pathlib.Path(config["cachedir"]) / "berth"
    return pathlib.Path(state) / "locks" / container


def test_a_held_lock_defers_the_sleep_then_applies_and_the_override_applies_once(
    fleet_api, salt_minions, salt_cli, salt_run_cli, testbed, build_image
):
    api = Api(fleet_api)
    repo = f"locks-{uuid.uuid4().hex[:6]}"
    for tag in ("v1", "v2", "v3"):
        build_image(f"{testbed.registry}/{repo}/app:{tag}", cmd=LOCKING_APP)
    fleet = Project(api, salt_cli, salt_run_cli, salt_minions, testbed.registry, testbed, repo)
    minion_of, releases = fleet.minion_of, fleet.releases

    def release(version, tag, devices, rollout=None):
        return fleet.release(version, "app", tag, rollout, devices=list(devices))

    def deployment(rel, device_id):
        rows = api.call("GET", f"{releases}{rel['id']}/deployments/?page_size=100")["results"]
        return next(row for row in rows if row["device"] == device_id)

    def rollout(rel):
        return api.call("GET", f"{releases}{rel['id']}/rollout/")

    def applied(rel, device_id):
        return wait_for(
            lambda: deployment(rel, device_id)["status"] == "succeeded",
            timeout=TIMEOUT,
            what=f"release {rel['id']} applied on {device_id}",
        )

    # the running release, whose container holds its update lock
    base = release("1.0.0", "v1", minion_of)
    for device_id, minion in minion_of.items():
        assert sleep_hook(minion, 60).returncode == 0
        applied(base, device_id)

    new = release("1.1.0", "v2", minion_of, rollout={"waves": [50, 100], "halt_at": 0})
    rows = api.call("GET", f"{releases}{new['id']}/deployments/?page_size=100")["results"]
    (first,) = [row["device"] for row in rows if row["wave"] == 1]
    minion = minion_of[first]
    holder = f"deployment-app-{base['id']}"
    done = sleep_hook(minion, 4)
    assert done.returncode == 0, done.stdout + done.stderr  # the device may sleep
    assert "update lock held" in done.stderr and holder in done.stderr
    row = wait_for(
        lambda: (r := deployment(new, first))["status"] == "deferred" and r,
        timeout=TIMEOUT,
        what="the deferral reported",
    )
    assert holder in row["error"]
    body = rollout(new)
    assert body["state"] == "running" and body["wave"] == 1 and body["waves"][0]["failed"] == 0
    assert containers_on(minion).get(holder) == "running"  # nothing was stopped

    # the app finished its work and let the lock go: the next sleep applies
    (lock_dir(minion, holder) / "done").touch()
    assert sleep_hook(minion, 60).returncode == 0
    applied(new, first)
    wait_for(lambda: rollout(new)["wave"] == 2, timeout=TIMEOUT, what="wave 2 started")
    assert rollout(new)["state"] == "running"

    # the new container holds its lock; the operator overrides it for this device, once
    third = release("1.2.0", "v3", [first])
    assert sleep_hook(minion, 3).returncode == 0
    wait_for(
        lambda: deployment(third, first)["status"] == "deferred",
        timeout=TIMEOUT,
        what="the third release deferred",
    )
    body = api.call("POST", f"/devices/{first}/override-lock/")
    assert body["update_lock_override"] is True
    done = sleep_hook(minion, 60)
    assert done.returncode == 0, done.stdout + done.stderr
    applied(third, first)
    assert containers_on(minion).get(f"deployment-app-{third['id']}") == "running"
    audited = api.call("GET", "/audit/?action=device.lock_override")["results"]
    assert [e["device"] for e in audited] == [first]

    # used up by the report of that apply: a later release obeys the locks again
    def override_pending():
        with fleet_api.app.app_context():
            pending = db.session.get(Device, first).update_lock_override_at is not None
            db.session.remove()
        return pending

    wait_for(lambda: not override_pending(), timeout=TIMEOUT, what="the override used up")
