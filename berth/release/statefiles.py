"""The release engine's state files and its lock, in ``state_dir`` (on a minion ``<cachedir>/berth``).

``applied.json``     the last successfully applied release (the no-op check reads it)
``journal.json``     written before every change while an apply runs (:mod:`berth.release.journal`)
``logins.json``      registries whose credentials were verified (password digested)
``release.lock``     ``flock``-ed while an apply runs; a second apply gets :class:`ReleaseBusy`
``signatures.json``  digests whose signature by a trusted key was verified (:mod:`berth.release.trust`)
``secret``           this device's key for the password digests of ``logins.json``

Every file is replaced atomically (:func:`write_json`); one that cannot be read reads as
:data:`CORRUPT` (falsy), never as an exception.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

VERIFIED_LIMIT = 256  # remembered (digest, key) pairs


class ReleaseBusy(RuntimeError):
    """Another apply holds the lock."""


class Corrupt:
    """What :func:`read_json` returns for a file that exists but cannot be used."""

    def __bool__(self) -> Literal[False]:
        return False


CORRUPT = Corrupt()


def write_json(path: Path, data: Any) -> None:
    """Atomically replace ``path``: write + fsync a temporary file, rename it, fsync the directory,
    so after a power cut the file holds the old or the new content, never a torn one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path, required: tuple[str, ...] = ()) -> dict[str, Any] | Corrupt | None:
    """The JSON object in ``path``; None when missing; :data:`CORRUPT` (falsy) when empty,
    truncated, not an object or lacking a ``required`` key (e.g. after a power cut on a
    filesystem that lost the data despite fsync)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (ValueError, OSError) as exc:
        log.warning("berth release: %s is unreadable (%s), ignoring it", path, exc)
        return CORRUPT
    if not isinstance(data, dict) or any(k not in data for k in required):
        log.warning("berth release: %s does not hold what it should, ignoring it", path)
        return CORRUPT
    return data


def read_dict(path: Path, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """:func:`read_json`, with a missing or unusable file read as ``{}``."""
    return read_json(path, required) or {}


def unlink(path: str | Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """Hold ``release.lock`` (its file names the holder's pid); :class:`ReleaseBusy` when taken."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise ReleaseBusy(
                f"another release apply is already running (pid {holder}); try again later"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


class StateFiles:
    """The files of one state directory (made 0700 when missing)."""

    def __init__(self, state_dir: str | Path) -> None:
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.applied_path = self.dir / "applied.json"
        self.journal_path = self.dir / "journal.json"
        self.logins_path = self.dir / "logins.json"
        self.lock_path = self.dir / "release.lock"
        self.verified_path = self.dir / "signatures.json"
        self.secret_path = self.dir / "secret"

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return locked(self.lock_path)

    def applied(self) -> dict[str, Any] | None:
        # a truncated record reads as "nothing applied": the next apply replans from the engine
        return read_json(self.applied_path, ("release_id", "version_hash")) or None

    def record_applied(self, record: dict[str, Any]) -> None:
        write_json(self.applied_path, record)

    def verified_logins(self) -> set[str]:
        return set(read_dict(self.logins_path).get("verified") or [])

    def remember_login(self, key: str) -> None:
        verified = [
            k
            for k in read_dict(self.logins_path).get("verified", [])
            if k.split("|")[0] != key.split("|")[0]
        ]
        verified.append(key)
        write_json(self.logins_path, {"verified": verified})

    def password_digest(self, password: str) -> str:
        """The password as ``logins.json`` keeps it: a digest keyed by this device's secret."""
        return hmac.new(self._device_secret(), password.encode(), hashlib.sha256).hexdigest()

    def _device_secret(self) -> bytes:
        try:
            return self.secret_path.read_bytes()
        except FileNotFoundError:
            fd = os.open(self.secret_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(os.urandom(32))
            return self.secret_path.read_bytes()

    def verified_signatures(self) -> set[str]:
        return set(read_dict(self.verified_path).get("verified") or [])

    def remember_signatures(self, entries: list[str]) -> None:
        known = [e for e in read_dict(self.verified_path).get("verified") or []]
        known = [e for e in known if e not in entries] + entries
        try:
            write_json(self.verified_path, {"verified": known[-VERIFIED_LIMIT:]})
        except OSError as exc:  # the next apply verifies again
            log.warning("berth release: cannot remember signatures: %s", exc)

    def set_journal_aside(self) -> None:
        """Keep an unreadable journal as ``journal.json.unreadable`` (it is no longer acted on)."""
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.journal_path, self.dir / "journal.json.unreadable")

    def clear_journal(self) -> None:
        unlink(self.journal_path)
        with contextlib.suppress(OSError):
            fsync_dir(self.dir)
