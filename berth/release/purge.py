"""Purged data: a bind source moved aside for a container with ``purge_data``, and put back.

An apply moves ``<path>`` to ``<path>.berth-purged-<release id>`` (:func:`purge`) and leaves an
empty one of the same kind; a rollback puts it back (:func:`restore`); a successful apply
deletes the copy (:func:`drop`). Each is safe to repeat.
"""

from __future__ import annotations

import os
import shutil

from berth.release import plan as planner
from berth.release.statefiles import unlink


def purge(path: str, aside: str) -> None:
    """Move ``path`` aside (kept for rollback) and leave an empty one of the same kind."""
    if not os.path.lexists(path):
        return
    is_dir = os.path.isdir(path)
    mode = os.stat(path).st_mode & 0o7777
    os.rename(path, aside)
    if is_dir:
        os.mkdir(path, mode)
    else:
        open(path, "a").close()
        os.chmod(path, mode)


def restore(path: str, aside: str) -> None:
    """Put purged data back (safe to repeat: does nothing once ``aside`` is gone)."""
    if not os.path.lexists(aside):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
    os.rename(aside, path)


def drop(aside: str) -> None:
    """Delete a purged copy (the release that purged it was committed)."""
    if os.path.isdir(aside):
        shutil.rmtree(aside)
    else:
        unlink(aside)


def asides(path: str) -> list[str]:
    """The purged copies of ``path`` (any release's)."""
    parent, base = os.path.split(path.rstrip("/"))
    prefix = base + planner.PURGED_SUFFIX + "-"
    try:
        return [os.path.join(parent, n) for n in os.listdir(parent or ".") if n.startswith(prefix)]
    except OSError:
        return []
