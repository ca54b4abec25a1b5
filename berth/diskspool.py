"""One durable on-disk queue (a spool) for everything Berth must deliver later.

Used by the device's results outbox (``berth.release.commands``), the master's report spool
(``berth.master.report_spool``) and the device's logbook spool (``berth.telemetry.spool``).

Layout: a directory (mode 0700) holding one JSON file (mode 0600) per entry, named
``<time_ns:020d>-<8 hex>.json`` so that the names sort oldest first, a lock file ``.lock`` held
by the one reader sending the spool (:meth:`Spool.locked`, :meth:`Spool.drain`) and a lock
file ``.write.lock`` held briefly by every change (put, acknowledge, rewrite, eviction). Both
are ``flock`` locks, so they serialise processes (the minion daemon and a ``salt-call`` of the
sleep hook; the master's reactor and its schedule) as well as threads holding separate
handles. Writers never wait for a reader's send.

Crash safety:

* **atomic write**: an entry is written to a hidden ``.<random>.<pid>.tmp``, flushed and fsynced, renamed to
  its name, and the directory is fsynced. A crash before the rename leaves only a hidden temp
  file, which readers never see and the next put removes once it is older than
  ``STALE_TEMP_SECONDS``; a crash after it leaves the whole entry.
* **acknowledge, then remove**: an entry leaves the spool only when its receiver took it
  (:meth:`Spool.ack` after a successful send). A crash between the send and the
  acknowledgement sends it again; every receiver is idempotent (the API's release reports
  and logbook writes, docs/architecture.md).

Bounded: at most ``max_entries`` entries and ``max_bytes`` bytes of entries. A put into a full
spool removes the oldest entries until the new one fits (the newest news matters most: a
device's latest result, the latest samples) and logs a warning naming the spool and how many
entries it dropped; an entry larger than ``max_bytes`` on its own is refused with
:class:`SpoolFull` (nothing is dropped for it).

Standard library only: it runs on devices and on the master.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import pathlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

log = logging.getLogger(__name__)

SUFFIX = ".json"
READ_LOCK = ".lock"
WRITE_LOCK = ".write.lock"
STALE_TEMP_SECONDS = 600.0

_clock_guard = threading.Lock()
_last_ns = 0


class SpoolFull(OSError):
    """An entry larger than the whole spool may hold; the message names the spool."""


def _next_ns() -> int:
    """A strictly increasing clock within this process, so one writer's entries keep their order."""
    global _last_ns
    with _clock_guard:
        _last_ns = max(time.time_ns(), _last_ns + 1)
        return _last_ns


def _fsync_dir(directory: pathlib.Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """A directory of JSON entries, oldest first (see the module docstring)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        name: str,
        max_entries: int,
        max_bytes: int,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("a spool holds at least one entry and one byte")
        self.dir = pathlib.Path(directory)
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes

    # -- locks ---------------------------------------------------------------------------

    def _ensure_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    @contextlib.contextmanager
    def _flock(self, lock_name: str, blocking: bool = True) -> Iterator[bool]:
        self._ensure_dir()
        fd = os.open(self.dir / lock_name, os.O_RDWR | os.O_CREAT, 0o600)
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

    def locked(self, blocking: bool = True) -> contextlib.AbstractContextManager[bool]:
        """Hold the spool as its one reader (whoever sends it). Yields whether the lock is held:
        with ``blocking=False`` False when another reader holds it now. Writers do not wait."""
        return self._flock(READ_LOCK, blocking)

    def writing(self) -> contextlib.AbstractContextManager[bool]:
        """Hold the short lock every change takes (for a read-modify-write of an entry)."""
        return self._flock(WRITE_LOCK)

    # -- reading -------------------------------------------------------------------------

    def entries(self) -> list[pathlib.Path]:
        """The entries, oldest first."""
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.glob("*" + SUFFIX) if not p.name.startswith("."))

    @staticmethod
    def load(path: pathlib.Path) -> Any:
        """An entry's payload (OSError when it is gone, ValueError when it is not JSON)."""
        return json.loads(path.read_text(encoding="utf-8"))

    def __len__(self) -> int:
        return len(self.entries())

    def size_bytes(self) -> int:
        """The bytes the entries take (an entry removed meanwhile counts nothing)."""
        total = 0
        for path in self.entries():
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    # -- writing -------------------------------------------------------------------------

    def _write_temp(self, data: bytes) -> pathlib.Path:
        """``data`` in a new hidden temp file, flushed and fsynced; its path."""
        self._ensure_dir()
        tmp = self.dir / f".{uuid.uuid4().hex}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp

    @staticmethod
    def _encode(payload: Any) -> bytes:
        return json.dumps(payload, separators=(",", ":")).encode("utf-8")

    def put(self, payload: Any) -> pathlib.Path:
        """Add ``payload`` (anything JSON can hold) as the newest entry; its path.

        A full spool first drops its oldest entries (logged); :class:`SpoolFull` when the
        entry alone is larger than ``max_bytes``. The slow part (writing and fsyncing the
        temp file) runs outside the lock, so writers in parallel do not queue behind it."""
        return self._put(payload, self.writing())

    def put_locked(self, payload: Any) -> pathlib.Path:
        """:meth:`put` for a caller already holding :meth:`writing` (e.g. moving entries of an
        older on-disk format in)."""
        return self._put(payload, contextlib.nullcontext(True))

    def _put(self, payload: Any, lock: contextlib.AbstractContextManager[bool]) -> pathlib.Path:
        data = self._encode(payload)
        if len(data) > self.max_bytes:
            raise SpoolFull(
                f"spool {self.name}: an entry of {len(data)} bytes is larger than the whole "
                f"spool ({self.max_bytes} bytes); not spooled"
            )
        tmp = self._write_temp(data)
        try:
            with lock:
                self._make_room(len(data))
                self._remove_stale_temps()
                # named under the lock: the names' order is the order entries appeared in
                final = self.dir / f"{_next_ns():020d}-{uuid.uuid4().hex[:8]}{SUFFIX}"
                os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.dir)
        return final

    def replace(self, path: pathlib.Path, payload: Any) -> None:
        """Rewrite an entry in place, atomically (a partial acknowledgement); hold
        :meth:`writing` around the read-modify-write."""
        tmp = self._write_temp(self._encode(payload))
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.dir)

    def _make_room(self, incoming: int) -> None:
        entries = self.entries()
        sizes: list[int] = []
        for path in entries:
            try:
                sizes.append(path.stat().st_size)
            except FileNotFoundError:
                sizes.append(0)
        count, total, dropped = len(entries), sum(sizes), 0
        for path, size in zip(entries, sizes, strict=True):
            if count < self.max_entries and total + incoming <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            count, total, dropped = count - 1, total - size, dropped + 1
        if dropped:
            log.warning(
                "spool %s is full (at most %d entries, %d bytes): dropped its %d oldest "
                "entr%s to take a new one",
                self.name,
                self.max_entries,
                self.max_bytes,
                dropped,
                "y" if dropped == 1 else "ies",
            )

    def _remove_stale_temps(self) -> None:
        """Temp files of writers that died before their rename."""
        cutoff = time.time() - STALE_TEMP_SECONDS
        for tmp in self.dir.glob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()

    def ack(self, path: pathlib.Path) -> None:
        """Remove an entry its receiver took (already gone: nothing to do)."""
        path.unlink(missing_ok=True)

    def move_aside(self, path: pathlib.Path, subdir: str = "rejected") -> pathlib.Path:
        """Move an entry its receiver refused for good into ``subdir`` for an operator."""
        aside = self.dir / subdir
        aside.mkdir(exist_ok=True, mode=0o700)
        target = aside / path.name
        os.replace(path, target)
        return target

    # -- sending -------------------------------------------------------------------------

    def drain(self, send: Callable[[Any], bool]) -> int:
        """Send the entries there now, oldest first, as their one reader: each leaves the spool
        only after ``send(payload)`` returned True; the first False stops (the rest stay, in
        order). An unreadable entry is moved aside to ``unreadable/`` (logged). Entries put
        meanwhile wait for the next drain. Returns how many were sent."""
        sent = 0
        with self.locked():
            for path in self.entries():
                try:
                    payload = self.load(path)
                except FileNotFoundError:  # dropped by a full spool's put meanwhile
                    continue
                except (OSError, ValueError) as exc:
                    log.error(
                        "spool %s: unreadable entry %s (%s): moved aside", self.name, path.name, exc
                    )
                    with contextlib.suppress(OSError):
                        self.move_aside(path, "unreadable")
                    continue
                if not send(payload):
                    break
                self.ack(path)
                sent += 1
        return sent
