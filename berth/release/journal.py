"""The apply's journal (``journal.json``) and its typed undo list.

Written before every change while an apply runs; if the process dies, the next recovery
(:mod:`berth.release.recovery`) finishes the run (when it had passed verification) or rolls it
back (when it had not). It is deleted only once that rollback or cleanup fully succeeded:
phase ``applying`` -> ``rolling_back`` or ``committing`` -> gone.

On disk::

    {"release_id", "version_hash", "phase", "started_at", "steps": [step dicts], "done": n,
     "undo": {"stopped": [{"name", "was_running", "renamed_to"}], "purged": [{"path", "aside"}],
              "created": [name]},
     "undone": ["remove <name>", "restore <path>", "rename <renamed_to>", "restart <name>"]}

Each forward step declares what undoes it (:meth:`berth.release.steps.Step.undo`), one of the
:data:`Undo` kinds below; the journal records it before the step changes anything.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from berth.contract import JournalPhase
from berth.release.statefiles import write_json

#: what a journal read from disk must hold
JOURNAL_KEYS = ("release_id", "version_hash", "phase", "steps", "undo")


class JournalCorrupt(ValueError):
    """A journal whose undo list cannot be read (recovery then starts from the engine)."""


@dataclass(frozen=True)
class Stopped:
    """A container the apply stopped (and renamed aside when ``renamed_to``)."""

    kind: ClassVar[str] = "stopped"
    name: str
    was_running: bool
    renamed_to: str | None

    def to_json(self) -> object:
        return {"name": self.name, "was_running": self.was_running, "renamed_to": self.renamed_to}


@dataclass(frozen=True)
class Purged:
    """A bind source the apply moved aside to ``aside``."""

    kind: ClassVar[str] = "purged"
    path: str
    aside: str

    def to_json(self) -> object:
        return {"path": self.path, "aside": self.aside}


@dataclass(frozen=True)
class Created:
    """A container the apply created."""

    kind: ClassVar[str] = "created"
    name: str

    def to_json(self) -> object:
        return self.name


Undo = Stopped | Purged | Created


def _undo_from_json(kind: str, value: Any) -> Undo:
    try:
        if kind == Created.kind and isinstance(value, str):
            return Created(value)
        if kind == Purged.kind:
            return Purged(str(value["path"]), str(value["aside"]))
        if kind == Stopped.kind:
            renamed = value["renamed_to"]
            return Stopped(
                str(value["name"]), bool(value["was_running"]), None if renamed is None else renamed
            )
    except (KeyError, TypeError) as exc:
        raise JournalCorrupt(f"journal undo entry {value!r}: {exc}") from None
    raise JournalCorrupt(f"journal undo entry {kind} {value!r}")


@dataclass
class UndoList:
    """What the apply changed so far, by kind, in the order it changed it."""

    stopped: list[Stopped] = field(default_factory=list)
    purged: list[Purged] = field(default_factory=list)
    created: list[Created] = field(default_factory=list)

    def add(self, entry: Undo) -> None:
        match entry:
            case Stopped():
                self.stopped.append(entry)
            case Purged():
                self.purged.append(entry)
            case Created():
                self.created.append(entry)

    def __bool__(self) -> bool:
        return bool(self.stopped or self.purged or self.created)

    def to_json(self) -> dict[str, list[object]]:
        return {
            kind: [e.to_json() for e in entries]
            for kind, entries in (
                ("stopped", self.stopped),
                ("purged", self.purged),
                ("created", self.created),
            )
        }

    @classmethod
    def from_json(cls, data: Any) -> UndoList:
        if not isinstance(data, dict):
            raise JournalCorrupt(f"journal undo list {data!r}")
        out = cls()
        for kind in ("stopped", "purged", "created"):
            for value in data.get(kind) or []:
                out.add(_undo_from_json(kind, value))
        return out


@dataclass
class Journal:
    """An apply in progress; :meth:`save` writes it (atomically) to ``path``."""

    path: Path
    release_id: Any
    version_hash: Any
    phase: str
    steps: list[dict[str, Any]]
    started_at: str | None = None
    done: int = 0
    undo: UndoList = field(default_factory=UndoList)
    undone: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def start(
        cls, path: Path, release_id: Any, version_hash: str, steps: list[dict[str, Any]], now: str
    ) -> Journal:
        journal = cls(path, release_id, version_hash, JournalPhase.APPLYING, steps, now)
        journal.save()
        return journal

    @classmethod
    def from_json(cls, path: Path, data: dict[str, Any]) -> Journal:
        """The journal read from disk (it holds :data:`JOURNAL_KEYS`); :class:`JournalCorrupt`
        when its undo list cannot be read."""
        return cls(
            path,
            data["release_id"],
            data["version_hash"],
            data["phase"],
            list(data["steps"]),
            data.get("started_at"),
            int(data.get("done") or 0),
            UndoList.from_json(data["undo"]),
            list(data.get("undone") or []),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "release_id": self.release_id,
            "version_hash": self.version_hash,
            "phase": self.phase,
            "started_at": self.started_at,
            "steps": self.steps,
            "done": self.done,
            "undo": self.undo.to_json(),
            "undone": self.undone,
        }

    def save(self) -> None:
        with self._lock:
            write_json(self.path, self.to_json())

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self.save()

    def add_undo(self, entry: Undo | None) -> None:
        """Record what undoes the step about to run (before it changes anything)."""
        if entry is None:
            return
        with self._lock:
            self.undo.add(entry)
            write_json(self.path, self.to_json())

    def advance(self, steps: int) -> None:
        with self._lock:
            self.done += steps
        self.save()

    def mark_undone(self, key: str) -> None:
        with self._lock:
            self.undone.append(key)
        self.save()
