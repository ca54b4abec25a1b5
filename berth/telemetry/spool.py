"""A durable FIFO of logbook records on the device: a :mod:`berth.diskspool` directory.

Each :meth:`Spool.add` is one entry holding its records (all or none). Records survive
restarts and power loss and leave the spool only after the API acknowledged them, so a crash
between sending and acknowledging re-sends them -- harmless, the API is idempotent on
(device, field, ts). A full spool drops its oldest batches (logged, berth/diskspool.py).

The spool is named by a path as before: ``<dir>/<name>.sqlite3`` is the directory
``<dir>/<name>`` (another path: that directory itself, or ``<path>.d`` when ``path`` is a file).
An SQLite spool of earlier versions at ``path`` is moved into the directory on first use.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from collections import defaultdict
from typing import Any

from berth import diskspool

log = logging.getLogger(__name__)

LEGACY_SUFFIX = ".sqlite3"
MAX_ENTRIES = 20_000
MAX_BYTES = 64 * 1024 * 1024
_MIGRATE_CHUNK = 1000


class SpoolError(ValueError):
    """A record that cannot be spooled; the message says which and why."""


def _normalise(index: int, record: object) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise SpoolError(
            f"record {index}: expected a mapping with field, field_type, value and optionally ts"
        )
    missing = [key for key in ("field", "field_type", "value") if key not in record]
    if missing:
        raise SpoolError(f"record {index}: missing {', '.join(missing)}")
    record = dict(record)
    # stamp the sample when it is taken, not when it is finally sent
    record.setdefault("ts", int(time.time() * 1000))
    return record


def directory_of(path: str) -> str:
    """The spool directory a configured path names (see the module docstring)."""
    if path.endswith(LEGACY_SUFFIX):
        return path[: -len(LEGACY_SUFFIX)]
    return path + ".d" if os.path.isfile(path) else path


class Spool:
    def __init__(self, path: str) -> None:
        self.path = path
        self.queue = diskspool.Spool(
            directory_of(path),
            name=f"logbook {directory_of(path)}",
            max_entries=MAX_ENTRIES,
            max_bytes=MAX_BYTES,
        )
        if os.path.isfile(path):
            with self.queue.writing():
                self._migrate()

    def _migrate(self) -> None:
        """Move the records of an SQLite spool of earlier versions in, oldest first; the file
        goes once they are all in (a crash in between re-sends some: the API is idempotent)."""
        if not os.path.isfile(self.path):  # another process moved it meanwhile
            return
        with contextlib.closing(sqlite3.connect(self.path, timeout=30)) as conn:
            try:
                rows = conn.execute("SELECT record FROM spool ORDER BY id").fetchall()
            except sqlite3.DatabaseError as exc:
                log.error("logbook: old spool %s unreadable (%s): left in place", self.path, exc)
                return
        records = [json.loads(text) for (text,) in rows]
        for start in range(0, len(records), _MIGRATE_CHUNK):
            chunk = records[start : start + _MIGRATE_CHUNK]
            self.queue.put_locked({"records": list(enumerate(chunk))})
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path + suffix)
        log.info("logbook: %d spooled records moved into %s", len(records), self.queue.dir)

    def add(self, records: list[Any]) -> int:
        """Append records (all or none); returns how many were spooled."""
        rows = [_normalise(n, record) for n, record in enumerate(records)]
        if rows:
            self.queue.put({"records": list(enumerate(rows))})
        return len(rows)

    def _batches(self) -> list[tuple[Any, list[tuple[int, Any]]]]:
        found = []
        for path in self.queue.entries():
            try:
                found.append((path, [(i, r) for i, r in self.queue.load(path)["records"]]))
            except FileNotFoundError:  # acknowledged or dropped meanwhile
                continue
        return found

    def oldest(self, limit: int) -> list[tuple[str, dict[str, Any]]]:
        """[(id, record)] of the oldest ``limit`` records, oldest first."""
        out: list[tuple[str, dict[str, Any]]] = []
        for path, records in self._batches():
            for index, record in records:
                if len(out) >= limit:
                    return out
                out.append((f"{path.name}#{index}", record))
        return out

    def remove(self, ids: list[str]) -> None:
        """Acknowledge records: an entry whose records are all gone leaves the spool, one with
        some left is rewritten (atomically) without the others."""
        by_entry: dict[str, set[int]] = defaultdict(set)
        for record_id in ids:
            name, _, index = record_id.rpartition("#")
            by_entry[name].add(int(index))
        with self.queue.writing():
            for name, gone in by_entry.items():
                path = self.queue.dir / name
                try:
                    records = self.queue.load(path)["records"]
                except FileNotFoundError:
                    continue
                left = [[i, r] for i, r in records if i not in gone]
                if left:
                    self.queue.replace(path, {"records": left})
                else:
                    self.queue.ack(path)

    def __len__(self) -> int:
        return sum(len(records) for _, records in self._batches())
