"""The release engine interrupted at every point, on a real Docker engine: the apply runs
in its own process, which SIGKILLs itself inside a step (``tests/fixtures/release_faults``),
or the engine goes away mid-apply; the next recover must end with exactly one release
running, the true status, and purged data where the running release expects it."""

import json
import signal
import subprocess
import time

import pytest

from berth.release import commands
from berth.release.executor import Executor
from tests.fixtures.docker import TESTBED, seed_containers
from tests.fixtures.release_faults import finish, run_apply

pytestmark = [pytest.mark.docker]


class Device:
    def __init__(self, host, testbed, images, release_pillar, tmp_path, settle=0.5):
        self.cli = testbed.client(host)
        self.testbed = testbed
        self.images = images
        self.make = release_pillar
        self.tmp = tmp_path
        self.state = tmp_path / "device-state"
        self.data = tmp_path / "data"
        self.data.mkdir()
        (self.data / "settings.json").write_text("original")
        self.registries = {"1": testbed.registries_pillar()[1]}
        self.opts = {
            "docker.url": host,
            "docker.release_state_dir": str(self.state),
            "docker.release_settle_seconds": settle,
            "docker.release_health_timeout": 20,
            "id": "fault-device",
        }

    def executor(self):
        return commands.executor(self.opts)

    def apply(self, release):
        return self.executor().apply(commands.target(release, self.registries))

    def release(self, rid, **kw):
        return self.make(rid, seed_containers(self.images, self.data, **kw))

    def containers(self):
        return {c["Names"][0].lstrip("/"): c["State"] for c in self.cli.api.containers(all=True)}

    def journal(self):
        try:
            return json.loads((self.state / "journal.json").read_text())
        except (OSError, ValueError):
            return None

    def assert_runs(self, release_id, purged=False):
        """Exactly the containers of ``release_id`` exist and run; status and data agree."""
        names = {f"deployment-curveball-{release_id}", f"deployment-ravendb-{release_id}"}
        assert self.containers() == dict.fromkeys(names, "running")
        status = commands.status(self.opts)
        assert (status["state"], str(status["release_id"])) == ("running", str(release_id))
        assert status["interrupted"] is None
        assert not (self.state / "journal.json").exists()
        if purged:
            assert list(self.data.iterdir()) == []
        else:
            assert (self.data / "settings.json").read_text() == "original"
        assert not list(self.tmp.glob("data.berth-purged*"))


@pytest.fixture
def device(fresh_engine, testbed, release_images, release_pillar, tmp_path):
    dev = Device(fresh_engine, testbed, release_images, release_pillar, tmp_path)
    assert dev.apply(dev.release(20))["outcome"] == "succeeded"
    yield dev
    dev.cli.close()


# (fault point, delay after reaching it, which release must run after recovery)
POINTS = [
    ("pull", 0.05, "previous"),  # inside the pull
    ("stop:done", 0, "previous"),  # between stop and purge/create
    ("purge:done", 0, "previous"),  # data moved aside, nothing created
    ("create:done", 0, "previous"),  # between create and start
    ("verify", 0.3, "previous"),  # inside the verification (settle 2 s)
    ("commit:remove", 0, "new"),
    ("commit:drop_purged", 0, "new"),
    ("commit:prune", 0, "new"),
    ("commit:record", 0, "new"),
]


@pytest.mark.parametrize("point,delay,runs", POINTS, ids=[p[0] for p in POINTS])
def test_apply_killed_inside_a_step_is_recovered(device, point, delay, runs):
    old, new = 20, 21
    if point == "commit:prune":
        # the replaced release's images are kept (a way back); the ones before it are pruned
        step = seed_containers(device.images, device.data, curveball="curveball_v2")
        step[1].update(zip(("image", "tag"), device.images["healthy"], strict=True))
        assert device.apply(device.make(21, step))["outcome"] == "succeeded"
        old, new = 21, 22
    containers = seed_containers(
        device.images, device.data, curveball="curveball_v2", purge_data=True
    )
    if point == "commit:prune":
        containers[1].update(zip(("image", "tag"), device.images["slow"], strict=True))
    release = device.make(new, containers)
    opts = {**device.opts, "docker.release_settle_seconds": 2}
    proc, _ = run_apply(
        opts, release, device.registries, device.tmp, kill={"point": point, "delay": delay}
    )
    result, err = finish(proc)
    assert result is None, f"not killed at {point}: {result}"
    journal = device.journal()
    assert journal is not None
    assert journal["phase"] == ("committing" if runs == "new" else "applying")

    recovered = device.executor().recover()

    if runs == "new":
        assert recovered == f"finished interrupted apply of release {new}"
        device.assert_runs(new, purged=True)
    else:
        assert recovered == f"rolled back interrupted apply of release {new}"
        device.assert_runs(old)
        # and the same release applies cleanly afterwards
        assert device.apply(release)["outcome"] == "succeeded"
        device.assert_runs(new, purged=True)


@pytest.mark.parametrize("point", ["rollback:remove", "rollback:restore", "rollback:restart"])
def test_rollback_killed_midway_is_finished_by_the_next_recover(device, point):
    containers = seed_containers(device.images, device.data, purge_data=True)
    image, tag = device.images["crash"]
    containers[1].update(image=image, tag=tag)  # ravendb exits at once: a rollback follows
    release = device.make(22, containers)
    proc, _ = run_apply(device.opts, release, device.registries, device.tmp, kill={"point": point})
    result, _ = finish(proc)
    assert result is None
    assert device.journal()["phase"] == "rolling_back"
    assert device.executor().recover() == "rolled back interrupted apply of release 22"
    device.assert_runs(20)
    assert device.executor().recover() is None


def test_stop_in_flight_is_waited_for_before_restarting(
    fresh_engine, testbed, release_images, release_pillar, tmp_path
):
    """Cause 1 of issue 9: the killed apply's `docker stop` is still running inside the engine
    when recovery restarts the container; a bare `start` is a no-op on a container that is
    stopping, and the stop then leaves it exited for good."""
    dev = Device(fresh_engine, testbed, release_images, release_pillar, tmp_path)
    slow_image, slow_tag = release_images["slow"]
    old = dev.make(
        30,
        [
            {
                "name": "slowapp",
                "image": slow_image,
                "tag": slow_tag,
                "registry": 1,
                "startup_parameters": {"network_mode": "host"},
            }
        ],
    )
    assert dev.apply(old)["outcome"] == "succeeded"
    healthy_image, healthy_tag = release_images["healthy"]
    new = dev.make(
        31,
        [
            {
                "name": "slowapp",
                "image": healthy_image,
                "tag": healthy_tag,
                "registry": 1,
                "startup_parameters": {"network_mode": "host"},
            }
        ],
    )
    proc, _ = run_apply(dev.opts, new, dev.registries, dev.tmp)
    try:
        deadline = time.monotonic() + 60
        while not ((dev.journal() or {}).get("undo") or {}).get("stopped"):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.5)  # the stop request reached the engine; its TERM handler takes 4 s
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert dev.containers()["deployment-slowapp-30"] == "running"  # still stopping

    dev.executor().recover()

    time.sleep(5)  # longer than the stop that was in flight
    assert dev.containers() == {"deployment-slowapp-30": "running"}
    assert commands.status(dev.opts)["state"] == "running"
    dev.cli.close()


def test_engine_gone_mid_apply_keeps_journal_reports_and_recovers(
    fresh_restartable_engine,
    testbed,
    release_images,
    release_pillar,
    release_loaders,
    tmp_path,
    monkeypatch,
):
    """Cause 2 of issue 9: every undo step fails while the engine is down; the journal must
    stay (rollback incomplete, said so in the state and the result event) so that recovery
    brings the previous release back once the engine is up."""
    name, host = fresh_restartable_engine
    dev = Device(host, testbed, release_images, release_pillar, tmp_path)
    assert dev.apply(dev.release(20))["outcome"] == "succeeded"
    new = dev.release(21, curveball="curveball_v2", purge_data=True)
    loaders = release_loaders(
        {"docker": {"release": new, "registries": dev.registries}},
        docker_host=host,
        **{"docker.release_state_dir": str(dev.state)},
    )
    sent = []
    loaders.modules["event.send"] = lambda tag, data=None, **kw: sent.append((tag, data)) or True
    verify = Executor._verify

    def engine_stops_during_verification(self, names):
        subprocess.run([str(TESTBED), "engine-down", name], capture_output=True, check=True)
        return verify(self, names)

    monkeypatch.setattr(Executor, "_verify", engine_stops_during_verification)

    state = loaders.states.docker_release.applied("berth-docker-release")

    assert state.result is False
    assert "Release 21 failed, rollback incomplete" in state.comment
    # no event bus in this masterless minion: the result waits in the outbox
    queued = [
        json.loads(e.read_text()) for e in sorted((dev.state / "results-outbox").glob("*.json"))
    ]
    assert [(d["release_id"], d["outcome"]) for d in queued] == [(21, "failed")]
    assert "rollback incomplete" in queued[0]["error"]
    assert sent == []
    assert dev.journal()["phase"] == "rolling_back"
    monkeypatch.setattr(Executor, "_verify", verify)
    subprocess.run([str(TESTBED), "engine", name], capture_output=True, check=True)
    # the engine's restart policies now run both releases' containers at once
    assert loaders.modules.docker.release_status()["state"] == "interrupted"

    assert loaders.modules.docker.release_recover() == (
        "rolled back interrupted apply of release 21"
    )

    dev.assert_runs(20)
    # at minion start: the queued result, then the rollback's
    assert [(t, d["release_id"], d["outcome"]) for t, d in sent] == [
        ("berth/release/result", 21, "failed"),
        ("berth/release/result", 21, "failed"),
    ]
    assert "rollback incomplete" in sent[0][1]["error"]
    assert "rolled back" in sent[1][1]["error"]
    assert not list((dev.state / "results-outbox").glob("*.json"))
    dev.cli.close()


@pytest.mark.parametrize("keep", [0, 0.5], ids=["empty", "truncated"])
def test_unreadable_journal_recovers_from_what_the_engine_shows(device, keep):
    release = device.release(23, curveball="curveball_v2", purge_data=True)
    proc, _ = run_apply(
        device.opts, release, device.registries, device.tmp, kill={"point": "start"}
    )
    assert finish(proc)[0] is None
    journal = device.state / "journal.json"
    raw = journal.read_bytes()
    journal.write_bytes(raw[: int(len(raw) * keep)])  # what a power cut can leave on a bad disk

    recovered = device.executor().recover()

    assert "journal was unreadable" in recovered
    device.assert_runs(20)


def test_truncated_applied_record_is_not_a_crash(device):
    (device.state / "applied.json").write_text('{"release_id": 2')
    assert commands.status(device.opts)["state"] == "none"
    result = device.apply(device.release(20))  # replanned from the engine: same release again
    assert result["outcome"] == "succeeded", result["error"]
    device.assert_runs(20)


def test_power_cut_right_after_the_old_containers_stop(
    fresh_restartable_engine, testbed, release_images, release_pillar, tmp_path
):
    """The apply dies and the engine is killed (SIGKILL: its containers die with it, like a
    power cut) right after the old containers stopped; once the engine is back the engine's
    restart policies run what they like, and recovery brings back exactly the old release."""
    name, host = fresh_restartable_engine
    dev = Device(host, testbed, release_images, release_pillar, tmp_path)
    assert dev.apply(dev.release(20))["outcome"] == "succeeded"
    release = dev.release(21, curveball="curveball_v2", purge_data=True)
    proc, _ = run_apply(dev.opts, release, dev.registries, dev.tmp, kill={"point": "purge:done"})
    assert finish(proc)[0] is None
    assert dev.containers() == {
        "deployment-curveball-20": "exited",
        "deployment-ravendb-20": "exited",
    }
    subprocess.run(
        [str(TESTBED), "engine-restart", name, "--kill"], capture_output=True, check=True
    )

    assert dev.executor().recover() == "rolled back interrupted apply of release 21"

    dev.assert_runs(20)
    assert dev.apply(release)["outcome"] == "succeeded"
    dev.assert_runs(21, purged=True)
    dev.cli.close()
