"""Update locks: a container of a release says "not now" by holding ``flock`` on a file.

The device bind-mounts a directory of its own, ``<state dir>/locks/<container name>/``, at
:data:`MOUNT_POINT` (``/tmp/berth``) in every container it creates (not a release bind: the
operator's binds allow-list, :mod:`berth.release.policy`, never sees it). An app that must not
be stopped takes the lock on :data:`LOCK_FILE` in it (``flock /tmp/berth/updates.lock ...``,
the convention of balena's ``/tmp/balena/updates.lock``). Before an apply stops a running
container, :func:`hold` takes each of their locks without waiting: one held by its container
defers the apply (nothing is changed); the ones taken stay held until the apply ends, so an app
cannot take its lock while it is being replaced. One directory per container: the held file
names its holder.

The directory is the container's to write: the file is opened without following a symlink,
without blocking (a FIFO) and only when it is a regular file, read-only; anything else is
ignored (it holds no lock).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

MOUNT_POINT = "/tmp/berth"
LOCK_FILE = "updates.lock"
# container names Docker accepts; anything else gets no lock directory
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}\Z")


def root(state_dir: str | Path) -> Path:
    return Path(state_dir) / "locks"


def directory(state_dir: str | Path, name: str) -> Path | None:
    """The lock directory of container ``name`` (None for a name that is not a plain one)."""
    return root(state_dir) / name if _NAME.match(name) else None


def mount(state_dir: str | Path, name: str, volumes: list[str]) -> list[str]:
    """``volumes`` (docker SDK ``src:dst:mode`` strings) with the lock directory of ``name``
    mounted at :data:`MOUNT_POINT`, created (0777: the app may run as any user and create the
    file itself). Unchanged when the release mounts something there itself."""
    path = directory(state_dir, name)
    if path is None or any(_target_of(v) == MOUNT_POINT for v in volumes):
        return list(volumes)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o777)  # the container's own directory, reached only through its mount
    return [*volumes, f"{path}:{MOUNT_POINT}:rw"]


def _target_of(spec: str) -> str:
    parts = spec.split(":")
    return parts[1].rstrip("/") if len(parts) > 1 else ""


def _open(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None  # absent, a symlink, unreadable: no lock
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def hold(state_dir: str | Path, names: Iterable[str]) -> Iterator[list[str]]:
    """Take the update lock of each container in ``names`` without waiting. Yields the names
    whose lock another holder has (their containers must not be stopped now); the locks taken
    are held until the block ends."""
    taken: list[int] = []
    held: list[str] = []
    try:
        for name in names:
            path = directory(state_dir, name)
            fd = _open(path / LOCK_FILE) if path is not None else None
            if fd is None:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    held.append(name)
                continue
            taken.append(fd)
        yield held
    finally:
        for fd in taken:
            os.close(fd)


def deferred_reason(held: list[str]) -> str:
    return (
        f"deferred: the update lock ({MOUNT_POINT}/{LOCK_FILE}) is held by "
        f"{', '.join(held)}; nothing was stopped, the device tries again at its next apply"
    )


def prune(state_dir: str | Path, keep: Iterable[str]) -> None:
    """Remove the lock directories of containers not in ``keep`` (best effort)."""
    base = root(state_dir)
    if not base.is_dir():
        return
    for entry in base.iterdir():
        if entry.name not in keep and not entry.is_symlink() and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
