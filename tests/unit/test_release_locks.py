"""berth.release.locks without an engine: what a container can do to its lock directory."""

import fcntl
import os

from berth.release import locks


def test_a_lock_file_the_container_replaced_by_a_symlink_or_fifo_holds_nothing(tmp_path):
    """The lock directory is the container's to write: the device opens no symlink (it could
    point at a host file) and no FIFO (opening one would block the apply)."""
    state = tmp_path / "state"
    mounted = locks.mount(state, "deployment-app-1", [])
    assert mounted == [f"{state / 'locks' / 'deployment-app-1'}:/tmp/berth:rw"]
    target = tmp_path / "host-file"
    target.write_text("x")
    holder = os.open(target, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # someone holds the file the symlink points at
    (state / "locks" / "deployment-app-1" / "updates.lock").symlink_to(target)
    (state / "locks" / "deployment-app-2").mkdir()
    os.mkfifo(state / "locks" / "deployment-app-2" / "updates.lock")
    with locks.hold(state, ["deployment-app-1", "deployment-app-2", "../escape"]) as held:
        assert held == []
    os.close(holder)


def test_a_held_lock_is_named_and_a_free_one_is_held_by_the_apply_until_it_ends(tmp_path):
    state = tmp_path / "state"
    for name in ("deployment-a-1", "deployment-b-1"):
        locks.mount(state, name, [])
        (state / "locks" / name / "updates.lock").touch()
    app = os.open(state / "locks" / "deployment-a-1" / "updates.lock", os.O_RDONLY)
    fcntl.flock(app, fcntl.LOCK_EX)
    with locks.hold(state, ["deployment-a-1", "deployment-b-1", "deployment-c-1"]) as held:
        assert held == ["deployment-a-1"]
        # b's app cannot take its lock while the apply holds it
        other = os.open(state / "locks" / "deployment-b-1" / "updates.lock", os.O_RDONLY)
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            raise AssertionError("the apply did not hold the free lock")
        except BlockingIOError:
            pass
    fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released at the end of the apply
    os.close(other)
    os.close(app)
    assert "deployment-a-1" in locks.deferred_reason(["deployment-a-1"])


def test_a_release_mounting_tmp_berth_itself_keeps_its_own_mount(tmp_path):
    volumes = ["/data/x:/tmp/berth/:rw"]
    assert locks.mount(tmp_path, "deployment-a-1", volumes) == volumes
