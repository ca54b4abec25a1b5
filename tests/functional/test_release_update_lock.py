"""Update locks on a real dockerd (docs/release.md "Update locks"): a container that holds
``flock`` on its mounted ``/tmp/berth/updates.lock`` defers the apply; released, the next apply
applies; the operator's override (pillar ``docker:update_lock_override``) applies despite it."""

import fcntl
import os
import time

import pytest

from tests.fixtures.docker import set_pillar

pytestmark = [pytest.mark.docker]

# the app holds its update lock until the host (the test) drops a file "done" into its lock
# directory, then sleeps; SIGTERM ends it at once only after it let the lock go
LOCKING_APP = [
    "sh",
    "-c",
    'trap "exit 0" TERM; '
    'flock /tmp/berth/updates.lock sh -c "while [ ! -e /tmp/berth/done ]; do sleep 0.1; done"; '
    "sleep 3600 & wait",
]


def app(images, key="curveball_v1"):
    image, tag = images[key]
    return {
        "name": "app",
        "image": image,
        "tag": tag,
        "registry": 1,
        "startup_parameters": {"network_mode": "none", "command": LOCKING_APP},
    }


def lock_dir(tmp_path, name):
    return tmp_path / "device-state" / "locks" / name


def wait_held(path, timeout=20):
    """Until the lock file at ``path`` is held by someone else (probed without waiting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            time.sleep(0.1)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        time.sleep(0.1)
    raise AssertionError(f"{path} was never locked")


def names(cli):
    return {c["Names"][0].lstrip("/"): c["State"] for c in cli.api.containers(all=True)}


def pillar_of(release, testbed, **docker):
    return {"docker": {"release": release, "registries": testbed.registries_pillar(), **docker}}


def test_a_held_update_lock_defers_until_released_and_the_override_applies_once(
    fresh_engine, testbed, release_images, release_pillar, release_loaders, tmp_path
):
    cli = testbed.client(fresh_engine)
    first = release_pillar(7, [app(release_images)])
    loaders = release_loaders(
        pillar_of(first, testbed), docker_host=fresh_engine, **{"docker.release_stop_timeout": 2}
    )
    assert loaders.modules.docker.release_apply()["outcome"] == "succeeded"
    # the device mounted the container's own lock directory (no release bind): the app took it
    binds = cli.api.inspect_container("deployment-app-7")["HostConfig"]["Binds"]
    assert f"{lock_dir(tmp_path, 'deployment-app-7')}:/tmp/berth:rw" in binds
    wait_held(lock_dir(tmp_path, "deployment-app-7") / "updates.lock")

    second = release_pillar(8, [app(release_images, "curveball_v2")])
    set_pillar(loaders, pillar_of(second, testbed))
    sent = []
    loaders.modules["event.send"] = lambda tag, data=None, **kw: sent.append((tag, data)) or True
    deferred = loaders.modules.docker.release_apply()
    assert deferred["outcome"] == "deferred" and deferred["holders"] == ["deployment-app-7"]
    assert names(cli) == {"deployment-app-7": "running"}  # nothing was stopped
    # (release 7's success, kept while the masterless minion had no event bus, goes first)
    reports = lambda: [(d["release_id"], d["outcome"]) for _, d in sent if d["release_id"] != 7]  # noqa: E731
    assert reports() == [(8, "deferred")]
    assert "deployment-app-7" in sent[-1][1]["error"]
    # asked again while the lock is held (the sleep hook's retries): the state is no failure
    # and names the holder; the deferral is not reported again
    (state,) = loaders.modules.state.sls("docker.release")
    assert state.result is True, state.comment
    assert "deferred: the update lock" in state.comment and "deployment-app-7" in state.comment
    assert state.changes == {}
    assert loaders.modules.docker.release_apply()["outcome"] == "deferred"
    assert reports() == [(8, "deferred")]
    assert names(cli) == {"deployment-app-7": "running"}

    (lock_dir(tmp_path, "deployment-app-7") / "done").touch()  # the app finished its work
    deadline = time.monotonic() + 20
    while (result := loaders.modules.docker.release_apply())["outcome"] == "deferred":
        assert time.monotonic() < deadline, result
        time.sleep(0.2)
    assert result["outcome"] == "succeeded", result
    assert names(cli) == {"deployment-app-8": "running"}
    assert reports() == [(8, "deferred"), (8, "succeeded")]
    # the removed container's lock directory went with it
    assert not lock_dir(tmp_path, "deployment-app-7").exists()

    # the new container holds its own lock; the operator's override applies over it, once
    wait_held(lock_dir(tmp_path, "deployment-app-8") / "updates.lock")
    third = release_pillar(9, [app(release_images)])
    set_pillar(loaders, pillar_of(third, testbed))
    assert loaders.modules.docker.release_apply()["outcome"] == "deferred"
    set_pillar(loaders, pillar_of(third, testbed, update_lock_override=True))
    result = loaders.modules.docker.release_apply()
    assert result["outcome"] == "succeeded", result
    assert names(cli) == {"deployment-app-9": "running"}
    cli.close()
