"""The fleet loop end to end, all real: API (thread, real DB) -> salt-master ext_pillar ->
two minions with their own dockerd -> sleep hook applies -> result event -> reactor ->
``berth.report`` runner -> API.

The tests build on each other (one fleet, releases superseding each other) and run in
file order.
"""

import shlex
import socket
import subprocess
import sys
import time
import uuid

import docker
import pytest
import requests

from berth import localapi
from tests.fixtures.salt import registry_and_project, wait_for

pytestmark = [pytest.mark.salt_daemons, pytest.mark.docker, pytest.mark.db]

APPLY_TIMEOUT = 180


class Fleet:
    """The API seen by an operator, plus the two devices."""

    def __init__(self, api, minions, registry_id, project_id, repo, testbed):
        self.api = api
        self.minions = minions
        self.registry_id = registry_id
        self.project_id = project_id
        self.repo = repo  # image repository prefix inside the registry
        self.testbed = testbed
        self.device_ids = {}

    def call(self, method, path, expect=200, **kwargs):
        resp = requests.request(
            method, self.api.url + path, headers=self.api.headers, timeout=30, **kwargs
        )
        assert resp.status_code == expect, f"{method} {path}: {resp.status_code} {resp.text[:1000]}"
        return resp.json() if resp.content else None

    def release(self, version, containers, devices, remove_containers=()):
        body = {
            "version": version,
            "devices": [self.device_ids[m.id] for m in devices],
            "containers": [
                {
                    "name": name,
                    "image": f"{self.repo}/{image}",
                    "tag": tag,
                    "required_tags": [],
                    "startup_parameters": {"network_mode": "none", "restart_policy": "no"},
                    "purge_data": False,
                    "registry": self.registry_id,
                }
                for name, image, tag in containers
            ],
            "remove_containers": list(remove_containers),
        }
        return self.call(
            "POST", f"/docker/projects/{self.project_id}/releases/", expect=201, json=body
        )

    def get_release(self, release_id):
        return self.call("GET", f"/docker/projects/{self.project_id}/releases/{release_id}/")

    def deployments(self, release_id):
        data = self.call(
            "GET", f"/docker/projects/{self.project_id}/releases/{release_id}/deployments/"
        )
        rows = data["results"] if isinstance(data, dict) else data
        return {row["device"]: row for row in rows}

    def device(self, minion):
        return self.call("GET", f"/devices/{self.device_ids[minion.id]}/")

    def wait_successful(self, release_id, minions, timeout=APPLY_TIMEOUT):
        wanted = {self.device_ids[m.id] for m in minions}

        def done():
            release = self.get_release(release_id)
            return wanted <= set(release["successful_deployments"]) and release

        return wait_for(
            done, timeout=timeout, what=f"release {release_id} successful on {sorted(wanted)}"
        )

    def wait_status(self, release_id, minion, status, timeout=APPLY_TIMEOUT):
        device_id = self.device_ids[minion.id]

        def reached():
            row = self.deployments(release_id).get(device_id)
            return row if row and row["status"] == status else None

        return wait_for(
            reached, timeout=timeout, what=f"deployment of {release_id} on {device_id} {status}"
        )


def sleep_signal(minion, timeout=APPLY_TIMEOUT):
    """What the device's power manager does before suspending: run the installed sleep hook."""
    return subprocess.run([str(minion.sleep_hook)], capture_output=True, text=True, timeout=timeout)


def containers_on(minion, all_=True):
    cli = docker.DockerClient(base_url=minion.docker_host)
    try:
        return {c.name: c.status for c in cli.containers.list(all=all_)}
    finally:
        cli.close()


@pytest.fixture(scope="module")
def fleet(fleet_api, salt_minions, salt_cli, salt_run_cli, testbed, build_image):
    repo = f"fleet-{uuid.uuid4().hex[:6]}"
    for image, tag, cmd in (
        ("app", "v1", None),
        ("app", "v2", None),
        ("app", "v3", None),
        ("crash", "v1", ["sh", "-c", "echo 'fatal: config missing' >&2; exit 3"]),
    ):
        build_image(f"{testbed.registry}/{repo}/{image}:{tag}", cmd=cmd)

    # devices come from the accepted minion keys (berth.register_minions, for real)
    ret = salt_run_cli.run("berth.register_minions")
    assert ret.returncode == 0, ret
    assert set(ret.data["created"]) | set(ret.data.get("existing", [])) >= {
        m.id for m in salt_minions
    }, ret.data

    registry_id, project_id = registry_and_project(fleet_api.url, fleet_api.headers, testbed, repo)
    fleet = Fleet(fleet_api, salt_minions, registry_id, project_id, repo, testbed)
    devices = fleet.call("GET", "/devices/?page_size=100")["results"]
    fleet.device_ids = {d["unit_id"]: d["id"] for d in devices}

    # every device installs its sleep hook (state.sls docker.sleep)
    for minion in salt_minions:
        ret = salt_cli.run("state.sls", "docker.sleep", minion_tgt=minion.id)
        assert ret.returncode == 0, ret
        assert minion.sleep_hook.exists()
    return fleet


def test_sleep_state_installs_a_unit_ordered_before_sleep(fleet):
    minion = fleet.minions[0]
    unit = (minion.sleep_hook.parent / "systemd" / "berth-before-sleep.service").read_text()
    assert "Before=sleep.target" in unit
    assert "WantedBy=sleep.target" in unit
    assert f"ExecStart={minion.sleep_hook}" in unit
    assert "TimeoutStartSec=1320" in unit  # the hook's 1200 s, then time for a failure report
    script = minion.sleep_hook.read_text()
    assert "state.sls docker.release" in script and minion.config_dir in script
    # the running minion applies through its local API; salt-call is the fallback
    assert f"--local-api {shlex.quote(minion.localapi_url)} " in script


def test_register_minions_is_idempotent(fleet, salt_run_cli):
    ret = salt_run_cli.run("berth.register_minions")
    assert ret.returncode == 0, ret
    assert ret.data["created"] == []
    assert set(ret.data["existing"]) >= {m.id for m in fleet.minions}


def test_device_without_release_gets_empty_release_pillar(fleet, salt_cli):
    minion = fleet.minions[0]
    ret = salt_cli.run("pillar.items", minion_tgt=minion.id)
    assert ret.returncode == 0, ret
    assert ret.data["docker"]["release"] is None
    assert "error" not in ret.data["docker"]
    # the account's registries are there anyway, so minion start can log in to them
    assert len(ret.data["docker"]["registries"]) == 1


def test_release_applied_on_sleep_signal_on_both_devices(fleet):
    release = fleet.release("1.0.0", [("app", "app", "v1")], fleet.minions)
    assert release["successful_deployments"] == []
    fqn = f"deployment-app-{release['id']}"

    for minion in fleet.minions:
        done = sleep_signal(minion)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"state.sls docker.release via {minion.localapi_url}: succeeded" in done.stderr, (
            done.stderr
        )

    final = fleet.wait_successful(release["id"], fleet.minions)
    assert sorted(final["successful_deployments"]) == sorted(
        fleet.device_ids[m.id] for m in fleet.minions
    )
    for minion in fleet.minions:
        assert release["id"] in fleet.device(minion)["docker_releases"]
        assert containers_on(minion).get(fqn) == "running"
    rows = fleet.deployments(release["id"])
    assert {row["status"] for row in rows.values()} == {"succeeded"}
    fleet.first_release = release


def test_second_release_supersedes_the_first(fleet):
    first = fleet.first_release
    # queued but never applied: the newer release that lists the device wins
    skipped = fleet.release("1.1.0-rc1", [("app", "app", "v3")], fleet.minions)
    second = fleet.release("1.1.0", [("app", "app", "v2")], fleet.minions)
    assert {row["status"] for row in fleet.deployments(skipped["id"]).values()} == {"superseded"}
    assert {row["status"] for row in fleet.deployments(second["id"]).values()} == {"queued"}

    for minion in fleet.minions:
        done = sleep_signal(minion)
        assert done.returncode == 0, done.stdout + done.stderr
    fleet.wait_successful(second["id"], fleet.minions)
    for minion in fleet.minions:
        names = containers_on(minion)
        assert names.get(f"deployment-app-{second['id']}") == "running"
        assert f"deployment-app-{first['id']}" not in names
        assert second["id"] in fleet.device(minion)["docker_releases"]
        assert f"deployment-app-{skipped['id']}" not in names
    assert fleet.get_release(skipped["id"])["successful_deployments"] == []
    fleet.second_release = second


def test_crashing_release_fails_with_reason_and_device_keeps_previous(fleet):
    minion = fleet.minions[0]
    previous = fleet.second_release
    broken = fleet.release("1.2.0-broken", [("app", "crash", "v1")], [minion])

    done = sleep_signal(minion)
    assert done.returncode != 0  # the hook reports failure; the device still sleeps

    row = fleet.wait_status(broken["id"], minion, "failed")
    assert row["error"], row
    assert (
        fleet.device_ids[minion.id] not in fleet.get_release(broken["id"])["successful_deployments"]
    )
    names = containers_on(minion)
    assert names.get(f"deployment-app-{previous['id']}") == "running"
    assert f"deployment-app-{broken['id']}" not in names
    assert broken["id"] not in fleet.device(minion)["docker_releases"]


def test_api_down_pillar_carries_error_and_release_state_refuses(fleet, salt_cli):
    minion = fleet.minions[1]
    fleet.api.stop()
    try:
        ret = salt_cli.run("pillar.items", minion_tgt=minion.id)
        assert "error" in ret.data["docker"], ret.data
        assert "release" not in ret.data["docker"]
        done = sleep_signal(minion)
        assert done.returncode != 0
        assert (
            containers_on(minion).get(f"deployment-app-{fleet.second_release['id']}") == "running"
        )
    finally:
        fleet.api.start()


def test_result_reported_while_api_down_arrives_after_it_is_back(fleet, salt_cli, fleet_state_dir):
    minion = fleet.minions[1]
    release = fleet.release("1.3.0", [("app", "app", "v3")], [minion])
    # the device got the release in its pillar (what the API's outbox asks salt-api to do)
    ret = salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion.id)
    assert ret.returncode == 0, ret

    spool = fleet_state_dir / "spool"
    fleet.api.stop()
    try:
        # applies from the device's pillar; the report reaches the master while the API is down
        ret = salt_cli.run("docker.release_apply", minion_tgt=minion.id, _timeout=APPLY_TIMEOUT)
        assert ret.data["outcome"] == "succeeded", ret.data
        wait_for(
            lambda: list(spool.glob("*.json")),
            timeout=60,
            what="the report to be spooled on the master",
        )
    finally:
        fleet.api.start()
    fleet.wait_successful(release["id"], [minion], timeout=60)
    wait_for(lambda: not list(spool.glob("*.json")), timeout=30, what="the spool to drain")


def test_offline_device_applies_release_after_reconnecting(fleet, salt_minions):
    minion = fleet.minions[0]
    minion.terminate()
    release = fleet.release("2.0.0", [("app", "app", "v1"), ("side", "app", "v3")], fleet.minions)
    minion.start(start_timeout=120)

    # minion start reactor: registries + pre-pull of the pending release's images (by the digest
    # the release pinned, docs/release.md "Digest pinning")
    cli = docker.DockerClient(base_url=minion.docker_host)
    try:
        digest = release["containers"][1]["digest"]
        ref = f"{fleet.testbed.registry}/{fleet.repo}/app@{digest}"
        wait_for(
            lambda: any(ref in img.attrs.get("RepoDigests", []) for img in cli.images.list()),
            timeout=120,
            what=f"{ref} pre-pulled on reconnect",
        )
    finally:
        cli.close()

    for m in fleet.minions:
        done = sleep_signal(m)
        assert done.returncode == 0, done.stdout + done.stderr
    fleet.wait_successful(release["id"], fleet.minions)
    names = containers_on(minion)
    assert names.get(f"deployment-side-{release['id']}") == "running"
    fleet.current_release = release


def test_sleep_signal_with_release_already_applied_is_a_cheap_no_op(fleet):
    minion = fleet.minions[1]
    before = fleet.deployments(fleet.current_release["id"])[fleet.device_ids[minion.id]]
    done = sleep_signal(minion)
    assert done.returncode == 0, done.stdout + done.stderr
    after = fleet.deployments(fleet.current_release["id"])[fleet.device_ids[minion.id]]
    assert after["status"] == "succeeded"
    assert after["attempts"] == before["attempts"]


def test_resync_reports_what_every_device_runs(fleet, salt_run_cli):
    ret = salt_run_cli.run("berth.resync", _timeout=120)
    assert ret.returncode == 0, ret
    reported = {r["minion_id"]: r for r in ret.data["reported"]}
    assert set(reported) == {m.id for m in fleet.minions}
    assert {r["release_id"] for r in reported.values()} == {fleet.current_release["id"]}
    assert {r["status"] for r in reported.values()} == {"sent"}
    assert sorted(
        fleet.get_release(fleet.current_release["id"])["successful_deployments"]
    ) == sorted(fleet.device_ids.values())


def run_hook(minion, timeout, busy_retry=1):
    """The sleep hook with a short timeout (the installed script has 1200 s)."""
    return subprocess.Popen(
        [sys.executable, "-m", "berth.sleephook", "--local-api", minion.localapi_url]
        + ["--local-token-file", localapi.local_token_file(minion.config)]
        + ["--timeout", str(timeout), "--busy-retry", str(busy_retry), "--", "false"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def hold_the_minion(salt_cli, minion, seconds):
    """Another state run on the device (as ``docker.registries`` after a registry change)."""
    ret = salt_cli.run(
        "--async", "state.single", "cmd.run", f"name=sleep {seconds}", minion_tgt=minion.id
    )
    assert ret.returncode == 0, ret

    def running():
        ret = salt_cli.run("saltutil.is_running", "state.*", minion_tgt=minion.id)
        return ret.returncode == 0 and ret.data

    wait_for(running, timeout=60, what="the blocking state run to start")


def test_sleep_hook_waits_for_a_busy_minion_then_applies(fleet, salt_cli):
    minion = fleet.minions[0]
    release = fleet.release("2.0.0-busy", [("app", "app", "v1")], [minion])
    hold_the_minion(salt_cli, minion, 12)
    proc = run_hook(minion, timeout=150)
    out, err = proc.communicate(timeout=200)
    assert proc.returncode == 0, out + err
    assert "minion busy" in err and "is running as PID" in err, err
    fleet.wait_successful(release["id"], [minion])
    assert containers_on(minion).get(f"deployment-app-{release['id']}") == "running"
    fleet.busy_release = release


def test_sleep_hook_busy_until_its_timeout_reports_failed_with_the_reason(fleet, salt_cli):
    minion = fleet.minions[0]
    release = fleet.release("2.1.0-busy", [("app", "app", "v2")], [minion])
    hold_the_minion(salt_cli, minion, 40)
    proc = run_hook(minion, timeout=8)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    row = fleet.wait_status(release["id"], minion, "failed", timeout=60)
    assert "could not apply within its 8s timeout" in row["error"], row
    assert "is running as PID" in row["error"], row
    # nothing was touched: the previous release still runs
    names = containers_on(minion)
    assert names.get(f"deployment-app-{fleet.busy_release['id']}") == "running"
    assert f"deployment-app-{release['id']}" not in names

    # the next sleep, with the minion idle again, applies it and the API says so
    wait_for(
        lambda: not salt_cli.run("saltutil.is_running", "state.*", minion_tgt=minion.id).data,
        timeout=90,
        what="the blocking state run to end",
    )
    done = sleep_signal(minion)
    assert done.returncode == 0, done.stdout + done.stderr
    row = fleet.wait_status(release["id"], minion, "succeeded")
    assert row["error"] is None


def test_two_sleep_hooks_at_once_apply_once(fleet):
    minion = fleet.minions[0]
    release = fleet.release("2.2.0-twice", [("app", "app", "v3")], [minion])
    hooks = [run_hook(minion, timeout=150) for _ in range(2)]
    results = [proc.communicate(timeout=200) for proc in hooks]
    assert [proc.returncode for proc in hooks] == [0, 0], results
    applied = [out for out, _ in results if "changed" in out]
    assert len(applied) == 1, results  # the other found it applied: a no-op
    fleet.wait_successful(release["id"], [minion])
    row = fleet.deployments(release["id"])[fleet.device_ids[minion.id]]
    assert row["status"] == "succeeded" and row["attempts"] == 1, row
    names = [n for n in containers_on(minion) if n == f"deployment-app-{release['id']}"]
    assert names == [f"deployment-app-{release['id']}"]


def queued_failure_delivered(salt_cli, fleet, minion, release):
    """Run the awake schedule's pre-pull until it has delivered the failure report queued on the
    device while the master was away; the deployment row then."""

    def delivered():
        salt_cli.run("schedule.run_job", "berth-prepull", minion_tgt=minion.id)
        row = fleet.deployments(release["id"])[fleet.device_ids[minion.id]]
        return row if row["status"] == "failed" else None

    return wait_for(delivered, timeout=180, interval=5, what="the queued failure report")


def test_master_unreachable_at_sleep_fails_fast_and_the_report_arrives_when_it_is_back(
    fleet, salt_master, salt_cli
):
    minion = fleet.minions[1]
    release = fleet.release("2.3.0-offline", [("app", "app", "v2")], [minion])
    ret = salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion.id)
    assert ret.returncode == 0, ret
    ret = salt_cli.run("schedule.list", "return_yaml=False", minion_tgt=minion.id)
    assert "berth-prepull" in ret.data, ret.data  # installed by the minion start reactor
    # awake: the pre-pull (what the schedule runs) records which release it pulled
    ret = salt_cli.run("docker.release_pull", minion_tgt=minion.id, _timeout=APPLY_TIMEOUT)
    assert ret.returncode == 0, ret
    before = containers_on(minion)

    salt_master.terminate()
    try:
        started = time.monotonic()
        done = sleep_signal(minion)
        took = time.monotonic() - started
        assert done.returncode == 1, done.stdout + done.stderr
        assert "master was unreachable at sleep time" in done.stderr, done.stderr
        assert '"reported": true' in done.stderr, done.stderr  # queued on the device
        assert took < 30, f"the hook took {took:.1f}s with the master away"
        assert containers_on(minion) == before  # nothing stopped, nothing started
        # nothing reached the API while the master was away
        row = fleet.deployments(release["id"])[fleet.device_ids[minion.id]]
        assert row["status"] == "queued", row
    finally:
        salt_master.start(start_timeout=120)

    # the failure report waited on the device; the next pre-pull run (the awake schedule)
    # delivers it, acknowledged by the master
    row = queued_failure_delivered(salt_cli, fleet, minion, release)
    assert "master was unreachable at sleep time" in row["error"], row

    # the next sleep with the master back applies it and the API says so
    done = sleep_signal(minion)
    assert done.returncode == 0, done.stdout + done.stderr
    row = fleet.wait_status(release["id"], minion, "succeeded")
    assert row["error"] is None
    assert containers_on(minion).get(f"deployment-app-{release['id']}") == "running"


def run_fallback_hook(minion, timeout, busy_retry=2, options=()):
    """The sleep hook with its local API out of reach: it runs the installed ``salt-call``
    line (a new Salt process), which must keep the same promise."""
    script = minion.sleep_hook.read_text()
    line = next(row for row in script.splitlines() if row.strip().startswith("exec "))
    head, tail = line.split(" -- ", 1)
    salt_call = shlex.split(tail)
    assert "state.sls" in salt_call and "salt-call" in salt_call[0], salt_call
    head = shlex.split(head)
    release_lock = head[head.index("--release-lock") + 1]
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "berth.sleephook",
            "--local-api",
            f"http://127.0.0.1:{closed_port()}",
            *options,
        ]
        + ["--timeout", str(timeout), "--busy-retry", str(busy_retry)]
        + ["--release-lock", release_lock, "--", *salt_call],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_fallback_salt_call_busy_until_its_timeout_reports_failed_then_waits_and_applies(
    fleet, salt_cli
):
    minion = fleet.minions[0]
    release = fleet.release("3.0.0-fallback-busy", [("app", "app", "v1")], [minion])
    before = containers_on(minion)
    hold_the_minion(salt_cli, minion, 60)

    # 15 s: on a loaded machine each salt-call takes seconds to start, and the hook must still
    # have time left to see the busy minion and report (the minion stays busy for 60 s)
    proc = run_fallback_hook(minion, timeout=15)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    assert "local API unavailable" in err and "minion busy" in err, err
    row = fleet.wait_status(release["id"], minion, "failed", timeout=60)
    assert "could not apply within its 15s timeout" in row["error"], row
    assert "is running as PID" in row["error"], row
    assert containers_on(minion) == before  # nothing stopped, nothing started

    # the minion is still busy: a hook with time to spare waits for it, then applies
    assert salt_cli.run("saltutil.is_running", "state.*", minion_tgt=minion.id).data
    proc = run_fallback_hook(minion, timeout=150, busy_retry=3)
    out, err = proc.communicate(timeout=200)
    assert proc.returncode == 0, out + err
    assert "minion busy" in err, err
    assert "state.sls docker.release via salt-call: succeeded" in err, err
    row = fleet.wait_status(release["id"], minion, "succeeded")
    assert row["error"] is None
    assert containers_on(minion).get(f"deployment-app-{release['id']}") == "running"


def test_two_fallback_hooks_at_once_apply_once(fleet):
    minion = fleet.minions[0]
    release = fleet.release("3.1.0-fallback-twice", [("app", "app", "v2")], [minion])
    hooks = [run_fallback_hook(minion, timeout=150) for _ in range(2)]
    results = [proc.communicate(timeout=200) for proc in hooks]
    assert [proc.returncode for proc in hooks] == [0, 0], results
    applied = [out for out, _ in results if "changed" in out]
    assert len(applied) == 1, results  # the other waited, then found it applied: a no-op
    fleet.wait_successful(release["id"], [minion])
    row = fleet.deployments(release["id"])[fleet.device_ids[minion.id]]
    assert row["status"] == "succeeded" and row["attempts"] == 1, row
    names = [n for n in containers_on(minion) if n.startswith("deployment-app-")]
    assert names == [f"deployment-app-{release['id']}"], names


def test_fallback_with_the_master_unreachable_queues_the_failure_until_it_is_back(
    fleet, salt_master, salt_cli
):
    minion = fleet.minions[0]
    release = fleet.release("3.2.0-fallback-offline", [("app", "app", "v3")], [minion])
    ret = salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion.id)
    assert ret.returncode == 0, ret
    # awake: the pre-pull records the release (salt-call --local has no master's pillar)
    ret = salt_cli.run("docker.release_pull", minion_tgt=minion.id, _timeout=APPLY_TIMEOUT)
    assert ret.returncode == 0, ret
    before = containers_on(minion)

    salt_master.terminate()
    try:
        proc = run_fallback_hook(minion, timeout=6, options=["--report-timeout", "6"])
        out, err = proc.communicate(timeout=150)
        assert proc.returncode == 1, out + err
        assert "had not started state.sls within 6s and was stopped" in err, err
        assert "the report through salt-call failed" in err, err
        assert '"sent": false' in err and "nothing could be queued" not in err, err
        assert containers_on(minion) == before  # nothing stopped, nothing started
        row = fleet.deployments(release["id"])[fleet.device_ids[minion.id]]
        assert row["status"] == "queued", row
    finally:
        salt_master.start(start_timeout=120)

    row = queued_failure_delivered(salt_cli, fleet, minion, release)
    assert "had not started state.sls within 6s" in row["error"], row

    # the next sleep with the master back applies it
    proc = run_fallback_hook(minion, timeout=150)
    out, err = proc.communicate(timeout=200)
    assert proc.returncode == 0, out + err
    row = fleet.wait_status(release["id"], minion, "succeeded")
    assert row["error"] is None
