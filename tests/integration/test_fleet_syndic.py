"""Berth on Salt's own tiers, all real: the API talks to the *top* master's salt-api
(``order_masters: True``); each device hangs off a lower master that runs ``salt-syndic``
and Berth's ext_pillar, reactor and runners with its own master token (docs/scale.md).

One topology for the module: a top master + salt-api, two syndics (lower master + syndic
process) with one minion each (own dockerd), and the API in a thread. The tests build on each
other and run in file order. Run once (SQLite): nothing here tests SQL.

Shown working: pillar, enrollment, results and spooled reports through each lower master, the
outbox's messages published on the top master and run on the devices under both syndics, a
rollout halted by wave 1's device under one syndic keeping the other syndic's device on its
previous release, a device under a syndic enrolling with an enrollment token, and execute /
execute_raw through the top master with the return polled back: Salt 3008.4's syndic carries
no return up, so the lower master's ``job_return.sls`` reactor forwards it to the API
(``POST /master/execute/returns/``, docs/scale.md "The path up").
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import uuid

import docker
import pytest
import requests

from berth.master.config import syndic_master_options, top_master_options
from tests.fixtures.salt import (
    TEST_DIAGNOSTICS,
    LiveApi,
    fire_nested_events,
    free_port,
    registry_and_project,
    running_minions,
    wait_for,
)

pytestmark = [pytest.mark.salt_daemons, pytest.mark.docker]

APPLY_TIMEOUT = 180
SYNDICS = 2
# Each master on its own loopback address, in a /24 of 127/8 drawn per run, so that two runs of
# this module on one machine (other checkouts, CI) do not meet on an address.
_NET = f"127.{random.randint(16, 250)}.{random.randint(0, 250)}"
TOP_ADDRESS = f"{_NET}.2"


def lower_address(index: int) -> str:
    return f"{_NET}.{3 + index}"


class Tier:
    """One lower master: its syndic, its master token file and spool, its one device."""

    def __init__(self, syndic, token_file, spool):
        self.syndic = syndic
        self.master = syndic.master
        self.token_file = token_file
        self.spool = spool
        self.minion = None


class Topology:
    def __init__(self, api, top, tiers, registry_id, project_id, repo, testbed):
        self.api = api
        self.top = top
        self.tiers = tiers
        self.registry_id = registry_id
        self.project_id = project_id
        self.repo = repo
        self.testbed = testbed
        self.device_ids: dict[str, int] = {}

    @property
    def minions(self):
        return [tier.minion for tier in self.tiers]

    def call(self, method, path, expect=200, **kwargs):
        resp = requests.request(
            method, self.api.url + path, headers=self.api.headers, timeout=60, **kwargs
        )
        assert resp.status_code == expect, f"{method} {path}: {resp.status_code} {resp.text[:1000]}"
        return resp.json() if resp.content else None

    def release(self, version, tag, minions, extra=None, image="app"):
        body = {
            "version": version,
            "devices": [self.device_ids[m.id] for m in minions],
            "containers": [
                {
                    "name": "app",
                    "image": f"{self.repo}/{image}",
                    "tag": tag,
                    "required_tags": [],
                    "startup_parameters": {"network_mode": "none", "restart_policy": "no"},
                    "purge_data": False,
                    "registry": self.registry_id,
                }
            ],
            "remove_containers": [],
            **(extra or {}),
        }
        return self.call(
            "POST", f"/docker/projects/{self.project_id}/releases/", expect=201, json=body
        )

    def get_release(self, release_id):
        return self.call("GET", f"/docker/projects/{self.project_id}/releases/{release_id}/")

    def wait_successful(self, release_id, minions, timeout=APPLY_TIMEOUT):
        wanted = {self.device_ids[m.id] for m in minions}

        def done():
            release = self.get_release(release_id)
            return wanted <= set(release["successful_deployments"]) and release

        return wait_for(done, timeout=timeout, what=f"release {release_id} successful on {wanted}")

    def execute(self, minion, path, body, timeout=90):
        device_id = self.device_ids[minion.id]
        started = self.call("POST", f"/dongle/devices/{device_id}/{path}/", expect=202, json=body)
        assert started["minions"] == [minion.id], started

        def done():
            job = self.call("GET", f"/dongle/devices/{device_id}/execute/{started['jid']}/")
            return job if job["state"] != "PENDING" else None

        return wait_for(done, timeout=timeout, what=f"{path} {body} on {minion.id}")


def sleep_signal(minion, timeout=APPLY_TIMEOUT):
    """What the device's power manager does before suspending: run the installed sleep hook."""
    return subprocess.run([str(minion.sleep_hook)], capture_output=True, text=True, timeout=timeout)


def deliver_outbox(app, timeout=150):
    """Run the API's worker until every outbox message is delivered."""
    from sqlalchemy import select

    from api.extensions import db
    from api.outbox import OutboxMessage
    from api.worker import run_once

    with app.app_context():

        def delivered():
            run_once()
            db.session.expire_all()
            rows = db.session.scalars(select(OutboxMessage)).all()
            return rows if rows and all(r.delivered_at for r in rows) else None

        rows = wait_for(delivered, timeout=timeout, interval=1, what="the outbox delivered")
        return [dict(row.payload) for row in rows]


def running_containers(minion) -> dict[str, str]:
    cli = docker.DockerClient(base_url=minion.docker_host)
    try:
        return {c.name: c.status for c in cli.containers.list(all=True)}
    finally:
        cli.close()


def inspect_app(minion) -> dict[str, tuple[str, bool]]:
    """``docker inspect`` of the release containers on the device's own engine:
    {name: (image, running)}."""
    cli = docker.DockerClient(base_url=minion.docker_host)
    try:
        return {
            c.name: (c.attrs["Config"]["Image"], c.attrs["State"]["Running"])
            for c in cli.containers.list(all=True)
            if c.name.startswith("deployment-app-")
        }
    finally:
        cli.close()


@pytest.fixture(scope="module")
def syndic_api(tmp_path_factory):
    """The API's app (SQLite), an account with a user token, and one master token per lower
    master (each lower master serves the devices enrolled through it)."""
    from flask_migrate import upgrade

    from api import create_app
    from api.extensions import db
    from tests.fixtures.api import ApiFactory

    state = tmp_path_factory.mktemp("syndic")
    port = free_port()
    app = create_app(
        {
            "DATABASE_URL": "sqlite:///" + str(state / "api.sqlite3"),
            "SECRET_KEY": "berth-syndic-test-secret",
            "INSTANCE_PATH": str(state / "instance"),
            "BERTH_SALT_API_TIMEOUT": "60",
            "BERTH_OUTBOX_STEP_WAIT": "15",
        }
    )
    with app.app_context():
        upgrade()
    factory = ApiFactory(app)
    account = factory.account("syndic-fleet")
    user = factory.user(account)
    live = LiveApi(app, port)
    live.state = state
    live.factory = factory
    live.account = account
    live.headers = factory.token("user", user=user).headers
    live.master_tokens = [factory.token("master", user=user) for _ in range(SYNDICS)]
    result = app.test_cli_runner().invoke(
        args=["accounts", "commands", account.name, "--allow", "test.*", "--allow", "docker.*"]
    )
    assert result.exit_code == 0, result.output
    yield live
    live.stop()
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(scope="module")
def topology(salt_factories, syndic_api, testbed, build_image):
    api = syndic_api
    state = api.state
    sharedsecret = uuid.uuid4().hex
    # Every master listens on its own loopback address with the same publish_port, as on
    # separate hosts with Salt's default: a syndic reaches the top master's publisher at its own
    # master's publish_port (docs/scale.md).
    publish_port = free_port()
    top_options = top_master_options(salt_api_port=free_port(), sharedsecret=sharedsecret)
    # As the single-master fixture: the few pinned diagnostics (test.sleep for a job that is
    # still running when a forged return arrives), widened as docs/fleet-api.md tells an
    # operator to.
    top_options["external_auth"]["sharedsecret"]["berth"].append({"*": [TEST_DIAGNOSTICS]})
    top = salt_factories.salt_master_daemon(
        f"berth-top-{uuid.uuid4().hex[:6]}",
        order_masters=True,
        overrides={
            **top_options,
            "interface": TOP_ADDRESS,
            "publish_port": publish_port,
            "log_level_logfile": "info",
        },
    )
    started = []
    stack = contextlib.ExitStack()
    try:
        top.start(start_timeout=120)
        started.append(top)
        salt_api = top.salt_api_daemon()
        salt_api.start(start_timeout=120)
        started.append(salt_api)
        api_port = salt_api.config["rest_cherrypy"]["port"]
        api.app.config.update(
            BERTH_SALT_API_URL=f"http://127.0.0.1:{api_port}",
            BERTH_SALT_API_USER="berth",
            BERTH_SALT_API_PASSWORD=sharedsecret,
            BERTH_SALT_API_EAUTH="sharedsecret",
        )
        api.start()

        tiers = []
        for index in range(SYNDICS):
            token_file = state / f"master-{index}.token"
            token_file.write_text(api.master_tokens[index].token + "\n")
            os.chmod(token_file, 0o600)
            spool = state / f"spool-{index}"
            lower = syndic_master_options(
                api_url=api.url,
                token_file=token_file,
                spool_dir=spool,
                # salt-factories fills in the top master's address and ret port itself
                syndic_master="127.0.0.1",
                syndic_master_port=top.config["ret_port"],
                flush_seconds=3,
            )
            for key in ("syndic_master", "syndic_master_port"):
                lower.pop(key)
            syndic = top.salt_syndic_daemon(
                f"berth-syndic{index}-{uuid.uuid4().hex[:6]}",
                master_overrides={
                    **lower,
                    "interface": lower_address(index),
                    "publish_port": publish_port,
                    "log_level_logfile": "info",
                },
                overrides={"syndic_master": TOP_ADDRESS},
            )
            # The syndic factory also starts a minion named after the syndic; a lower master
            # needs none, and this machine's cores are shared.
            syndic.impl._before_start_callbacks[:] = [
                cb for cb in syndic.impl._before_start_callbacks if cb.func != syndic.minion.start
            ]
            syndic.start(start_timeout=120)
            started.append(syndic)
            started.append(syndic.master)
            tiers.append(Tier(syndic, token_file, spool))

        for index, tier in enumerate(tiers):
            (tier.minion,) = stack.enter_context(
                running_minions(
                    tier.master,
                    state,
                    1,
                    name=f"syndic{index}",
                    overrides={"master": lower_address(index)},
                )
            )

        # each lower master enrolls its own minions through its own master token
        for tier in tiers:
            ret = tier.master.salt_run_cli(timeout=120).run("berth.register_minions")
            assert ret.returncode == 0, ret
            assert ret.data["created"] == [tier.minion.id], ret.data

        repo = f"syndic-{uuid.uuid4().hex[:6]}"
        for tag in ("v1", "v2"):
            build_image(f"{testbed.registry}/{repo}/app:{tag}")
        build_image(f"{testbed.registry}/{repo}/crash:v1", cmd=["sh", "-c", "exit 3"])
        registry_id, project_id = registry_and_project(api.url, api.headers, testbed, repo)
        topo = Topology(api, top, tiers, registry_id, project_id, repo, testbed)
        devices = topo.call("GET", "/devices/?page_size=100")["results"]
        topo.device_ids = {d["unit_id"]: d["id"] for d in devices}
        yield topo
    finally:
        stack.close()
        for daemon in reversed(started):
            if daemon.is_running():
                daemon.terminate()


def test_each_lower_master_serves_only_the_devices_enrolled_through_it(topology):
    """Each lower master's own master token enrolled its own minion; another tier's token is
    told nothing about it (the pillar, with the device's report key, stays on its tier)."""
    for index, tier in enumerate(topology.tiers):
        other = topology.api.master_tokens[1 - index]
        own = topology.api.master_tokens[index]
        path = f"/master/minions/{tier.minion.id}/pillar/"
        assert requests.get(topology.api.url + path, headers=own.headers, timeout=30).ok
        refused = requests.get(topology.api.url + path, headers=other.headers, timeout=30)
        assert refused.status_code == 404, refused.text


def test_release_reaches_devices_under_two_syndics_and_both_succeed(topology):
    for tier in topology.tiers:
        ret = tier.master.salt_cli(timeout=180).run(
            "state.sls", "docker.sleep", minion_tgt=tier.minion.id
        )
        assert ret.returncode == 0, ret
        assert tier.minion.sleep_hook.exists()

    release = topology.release("1.0.0", "v1", topology.minions)
    assert release["successful_deployments"] == []
    # the outbox (pillar refresh then pre-pull; registry: refresh then logins) is published on
    # the top master and carried down by both syndics: every step ran on both devices
    jobs = {
        jid: step[0]
        for payload in deliver_outbox(topology.api.app)
        for jid, step in zip(payload["jids"], payload["steps"], strict=True)
    }
    assert sorted(jobs.values()) == sorted(
        ["saltutil.refresh_pillar", "docker.release_pull", "saltutil.refresh_pillar", "state.sls"]
    ), jobs
    for tier in topology.tiers:
        run = tier.master.salt_run_cli(timeout=60)
        for jid, fun in jobs.items():
            wait_for(
                lambda r=run, j=jid, m=tier.minion: (
                    m.id in (r.run("jobs.lookup_jid", j).data or {})
                ),
                timeout=120,
                interval=2,
                what=f"{fun} ({jid}) run on {tier.minion.id} under {tier.master.id}",
            )
    for minion in topology.minions:
        # the release pillar comes from the minion's own lower master (its ext_pillar and token)
        done = sleep_signal(minion)
        assert done.returncode == 0, done.stdout + done.stderr

    # each result went minion -> its lower master's reactor -> berth.report -> the API
    final = topology.wait_successful(release["id"], topology.minions)
    assert sorted(final["successful_deployments"]) == sorted(topology.device_ids.values())
    for minion in topology.minions:
        assert running_containers(minion).get(f"deployment-app-{release['id']}") == "running"
    topology.first_release = release


def test_api_stopped_while_a_lower_master_reports_is_delivered_once_back(topology):
    tier = topology.tiers[1]
    release = topology.release("1.1.0", "v2", [tier.minion])
    salt_cli = tier.master.salt_cli(timeout=APPLY_TIMEOUT)
    # the device got the release in its pillar (what the outbox's pillar refresh does)
    ret = salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=tier.minion.id)
    assert ret.returncode == 0, ret
    topology.api.stop()
    try:
        ret = salt_cli.run("docker.release_apply", minion_tgt=tier.minion.id)
        assert ret.data["outcome"] == "succeeded", ret.data
        wait_for(
            lambda: list(tier.spool.glob("*.json")),
            timeout=60,
            what="the report spooled on the lower master",
        )
    finally:
        topology.api.start()
    topology.wait_successful(release["id"], [tier.minion], timeout=90)
    wait_for(lambda: not list(tier.spool.glob("*.json")), timeout=60, what="the spool to drain")
    rows = topology.call(
        "GET", f"/docker/projects/{topology.project_id}/releases/{release['id']}/deployments/"
    )
    rows = rows["results"] if isinstance(rows, dict) else rows
    assert [r["status"] for r in rows] == ["succeeded"], rows
    # the other tier's device was not part of this release: it keeps the previous one
    other = topology.tiers[0].minion
    assert running_containers(other).get(f"deployment-app-{topology.first_release['id']}") == (
        "running"
    )


def test_a_rollout_halted_by_wave_1_under_one_syndic_keeps_the_other_on_its_previous_release(
    topology,
):
    """Two waves of one device each, under different syndics: wave 1's device fails the release
    (its container exits at once) and rolls back, its report halts the rollout, and the device
    under the other syndic, signalled "about to sleep", keeps the release it ran before."""
    before = {m.id: inspect_app(m) for m in topology.minions}
    for minion_id, containers in before.items():
        assert [running for _, running in containers.values()] == [True], (minion_id, containers)
    bad = topology.release(
        "2.0.0-broken", "v1", topology.minions, {"rollout": {"waves": [50, 100]}}, image="crash"
    )
    base = f"/docker/projects/{topology.project_id}/releases/{bad['id']}"
    rows = topology.call("GET", f"{base}/deployments/?page_size=100")["results"]
    wave_of = {row["device"]: row["wave"] for row in rows}
    by_device = {topology.device_ids[m.id]: m for m in topology.minions}
    (first,) = [by_device[d] for d, wave in wave_of.items() if wave == 1]
    (second,) = [by_device[d] for d, wave in wave_of.items() if wave == 2]
    assert first.id != second.id  # one device under each syndic

    done = sleep_signal(first)
    assert done.returncode != 0, done.stdout + done.stderr  # failed and rolled back
    rollout = wait_for(
        lambda: (r := topology.call("GET", f"{base}/rollout/"))["state"] == "halted" and r,
        timeout=90,
        what="the rollout halted by wave 1's report (through its lower master)",
    )
    assert rollout["waves"][0]["failed"] == 1 and "wave 1" in rollout["halt_reason"], rollout

    done = sleep_signal(second)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {
        row["device"]: row
        for row in topology.call("GET", f"{base}/deployments/?page_size=100")["results"]
    }
    assert {device: row["status"] for device, row in rows.items()} == {
        topology.device_ids[first.id]: "failed",
        topology.device_ids[second.id]: "waiting",
    }
    # it failed because its container exited, not on the way there
    assert "exit code 3" in rows[topology.device_ids[first.id]]["error"], rows
    # docker inspect on each device's own engine: the same container, the same image, running;
    # the broken release's container is on neither
    for minion in topology.minions:
        assert inspect_app(minion) == before[minion.id], minion.id
        assert f"deployment-app-{bad['id']}" not in running_containers(minion)


def test_execute_through_the_top_master_reaches_a_device_two_tiers_down(topology):
    """execute and execute_raw published on the top master's salt-api reach the device under
    each syndic; the return comes back through the device's lower master (job_return.sls ->
    berth.forward_return -> POST /master/execute/returns/), not through salt-syndic."""
    for tier in topology.tiers:
        minion = tier.minion
        job = topology.execute(minion, "execute_raw", {"command": "docker.ps all=True"})
        assert job["state"] == "COMMAND_EXECUTED", job
        response = job["response"]
        assert response["fun"] == "docker.ps" and response["success"] is True, job
        running = {c["name"] for c in response["return"] if c["state"] == "running"}
        assert running == {n for n, (_, up) in inspect_app(minion).items() if up}, response

        job = topology.execute(minion, "execute", {"command": "test.ping"})
        assert job["state"] == "COMMAND_EXECUTED", job
        assert job["response"]["return"] is True and job["response"]["fun"] == "test.ping", job


def test_a_device_under_a_syndic_enrolls_with_an_enrollment_token(topology):
    """The device under syndic B is deleted in the API (its minion is unknown to every master
    credential: 404), then presents an enrollment token (grain ``berth_enrollment_token``): its
    lower master's ext_pillar enrolls it through that lower master's own credential, which is
    served its pillar again; the other lower master's credential is still told nothing."""
    index = 1
    tier = topology.tiers[index]
    minion = tier.minion
    own, other = topology.api.master_tokens[index], topology.api.master_tokens[1 - index]
    path = topology.api.url + f"/master/minions/{minion.id}/pillar/"
    old_id = topology.device_ids[minion.id]
    topology.call("DELETE", f"/devices/{old_id}/", expect=204)
    assert requests.get(path, headers=own.headers, timeout=30).status_code == 404

    token = topology.call(
        "POST", "/enrollment-tokens/", expect=201, json={"name": "syndic-b", "max_uses": 1}
    )["token"]
    salt_cli = tier.master.salt_cli(timeout=120)
    ret = salt_cli.run("grains.setval", "berth_enrollment_token", token, minion_tgt=minion.id)
    assert ret.returncode == 0, ret
    ret = salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=minion.id)
    assert ret.returncode == 0, ret

    def enrolled():
        devices = topology.call("GET", "/devices/?page_size=100")["results"]
        return [d for d in devices if d["unit_id"] == minion.id] or None

    (device,) = wait_for(enrolled, timeout=60, what=f"{minion.id} enrolled with its token")
    assert device["id"] != old_id
    topology.device_ids[minion.id] = device["id"]
    assert requests.get(path, headers=own.headers, timeout=30).status_code == 200
    assert requests.get(path, headers=other.headers, timeout=30).status_code == 404


def test_a_minion_cannot_forge_another_devices_execute_return(topology):
    """A second minion of the device's lower master (it sees every publication, so it knows the
    jid) fires ``salt/job/<jid>/ret/<device>`` in the nested ``events`` form, with the top
    master's ``master_id`` and a return of its own, while the device's command still runs: the
    lower master forwards only what its job cache holds, which only the device's own return
    writes (docs/security.md "2."). The job stays PENDING and finishes with the device's return.
    Last in the module: the extra minion is this test's alone."""
    tier = topology.tiers[0]
    victim = tier.minion
    forger = tier.master.salt_minion_daemon(
        f"forger-{uuid.uuid4().hex[:8]}",
        overrides={"master": lower_address(0), "log_level_logfile": "info"},
    )
    forger.start(start_timeout=120)
    try:
        device_id = topology.device_ids[victim.id]
        started = topology.call(
            "POST",
            f"/dongle/devices/{device_id}/execute/",
            expect=202,
            json={"command": "test.sleep", "arg": [15]},
        )
        jid = started["jid"]
        forged = {
            "id": victim.id,
            "jid": jid,
            "master_id": "berth-top",
            "fun": "test.sleep",
            "fun_args": [15],
            "return": "forged by another device",
            "retcode": 0,
            "success": True,
        }
        fire_nested_events(
            tier.master.salt_cli(timeout=120),
            forger,
            [{"tag": f"salt/job/{jid}/ret/{victim.id}", "data": forged}],
        )
        path = f"/dongle/devices/{device_id}/execute/{jid}/"

        def done():
            job = topology.call("GET", path)
            return job if job["state"] != "PENDING" else None

        job = wait_for(done, timeout=120, what=f"the execute of {jid} on {victim.id}")
        assert job["state"] == "COMMAND_EXECUTED", job
        assert job["response"]["return"] is True, job  # test.sleep's own return
        assert job["response"]["fun"] == "test.sleep", job
    finally:
        forger.terminate()
