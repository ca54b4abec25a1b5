"""The master's reports the API has not accepted yet: a :mod:`berth.diskspool` directory (one JSON
file each, the layout of earlier versions), ``rejected/`` for those it refused for good."""

from __future__ import annotations

import pathlib

from berth import diskspool

# a result report is a few hundred bytes; 100 000 of them cover a fleet through a long outage
MAX_ENTRIES = 100_000
MAX_BYTES = 256 * 1024 * 1024


class Spool(diskspool.Spool):
    def __init__(self, directory: str) -> None:
        super().__init__(
            directory,
            name=f"master reports {directory}",
            max_entries=MAX_ENTRIES,
            max_bytes=MAX_BYTES,
        )

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
        return self.move_aside(path, "rejected")
