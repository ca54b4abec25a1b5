"""A durable on-disk queue of reports the API has not accepted yet (one JSON file each)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import time
import uuid
from typing import Any


class Spool:
    def __init__(self, directory: str) -> None:
        self.dir = pathlib.Path(directory)

    def put(self, payload: dict[str, Any]) -> pathlib.Path:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        tmp = self.dir / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        final = self.dir / name
        os.replace(tmp, final)
        return final

    @contextlib.contextmanager
    def locked(self, blocking: bool = True):
        """Serialise flushes (the master schedule and the reactor may flush at once). Yields
        whether the lock is held: with ``blocking=False`` False when another holds it now."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        held = False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
                held = True
            except BlockingIOError:
                pass
            yield held
        finally:
            if held:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def entries(self) -> list[pathlib.Path]:
        """Spooled files, oldest first."""
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.glob("*.json") if not p.name.startswith("."))

    @staticmethod
    def load(path: pathlib.Path) -> dict[str, Any]:
        return json.loads(path.read_text(encoding="utf-8"))

    def status(self, path: pathlib.Path) -> str:
        """Where a report put as ``path`` is now: ``"spooled"`` (still queued), ``"rejected"``
        (moved aside) or ``"sent"`` (gone: only a delivered report leaves the spool)."""
        if path.exists():
            return "spooled"
        if (self.dir / "rejected" / path.name).exists():
            return "rejected"
        return "sent"

    def reject(self, path: pathlib.Path) -> pathlib.Path:
        """Move a report the API refused for good aside, for an operator to inspect."""
        rejected = self.dir / "rejected"
        rejected.mkdir(exist_ok=True, mode=0o700)
        target = rejected / path.name
        os.replace(path, target)
        return target
