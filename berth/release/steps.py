"""Release steps: one small typed class per action.

The planner (:mod:`berth.release.plan`) returns them; the apply (:mod:`berth.release.apply`)
maps each type to its call; each describes itself for ``test=True`` (:meth:`Step.describe`), for
the state's ``changes`` (:meth:`Step.planned_changes`) and, when it changes something a failed
apply must give back, what undoes it (:meth:`Step.undo`, a :data:`berth.release.journal.Undo`
the journal records before the step runs; :mod:`berth.release.recovery` undoes it). In the journal and in ``docker.release_plan``
they are plain dicts ``{"action": ..., <fields>}`` (:meth:`Step.to_dict`,
:func:`from_dict`); an unknown action is an error, never skipped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from berth.release import journal


class UnknownStep(ValueError):
    """A step dict whose action no class here handles (e.g. a journal from a newer Berth)."""


@dataclass(frozen=True)
class Step:
    action: ClassVar[str] = ""
    #: undone on failure (before verification) or run only on success (after it)
    commit: ClassVar[bool] = False

    def describe(self) -> str:
        raise NotImplementedError

    def planned_changes(self) -> dict[str, list[str]]:
        return {}

    def undo(self) -> journal.Undo | None:
        """What gives back this step's change if the apply fails (None: nothing to give back)."""
        return None

    def to_dict(self) -> dict[str, Any]:
        """``{"action": ..., <fields>}`` with lists, as JSON gives it back."""
        return {"action": self.action, **_plain(dataclasses.asdict(self))}


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Login(Step):
    action: ClassVar[str] = "login"
    registry: str
    url: str

    def describe(self) -> str:
        return f"log in to {self.url}"


@dataclass(frozen=True)
class Pull(Step):
    action: ClassVar[str] = "pull"
    ref: str
    registry: str | None

    def describe(self) -> str:
        return f"pull {self.ref}"

    def planned_changes(self) -> dict[str, list[str]]:
        return {"pulled": [self.ref]}


@dataclass(frozen=True)
class CheckDigest(Step):
    """The engine's image for ``ref`` (``<repo>@sha256:...``) carries that digest; before any stop."""

    action: ClassVar[str] = "check_digest"
    ref: str

    def describe(self) -> str:
        return f"check that {self.ref} has its pinned digest"


@dataclass(frozen=True)
class Stop(Step):
    action: ClassVar[str] = "stop"
    name: str
    was_running: bool
    # a stale container with a target name moves aside so the new one can take the name
    rename_to: str | None

    def describe(self) -> str:
        return f"stop {self.name}"

    def planned_changes(self) -> dict[str, list[str]]:
        return {"stopped": [self.name]} if self.was_running else {}

    def undo(self) -> journal.Undo:
        return journal.Stopped(self.name, self.was_running, self.rename_to)


@dataclass(frozen=True)
class Purge(Step):
    action: ClassVar[str] = "purge"
    path: str
    aside: str

    def describe(self) -> str:
        return f"move {self.path} aside"

    def planned_changes(self) -> dict[str, list[str]]:
        return {"purged": [self.path]}

    def undo(self) -> journal.Undo:
        return journal.Purged(self.path, self.aside)


@dataclass(frozen=True)
class Create(Step):
    action: ClassVar[str] = "create"
    name: str
    short_name: str
    image: str

    def describe(self) -> str:
        return f"create {self.name} from {self.image}"

    def undo(self) -> journal.Undo:
        return journal.Created(self.name)


@dataclass(frozen=True)
class Start(Step):
    action: ClassVar[str] = "start"
    names: tuple[str, ...]

    def describe(self) -> str:
        return f"start {', '.join(self.names)}"

    def planned_changes(self) -> dict[str, list[str]]:
        return {"started": list(self.names)}


@dataclass(frozen=True)
class Verify(Step):
    action: ClassVar[str] = "verify"
    names: tuple[str, ...]

    def describe(self) -> str:
        return f"verify {', '.join(self.names)}"


@dataclass(frozen=True)
class Remove(Step):
    action: ClassVar[str] = "remove"
    commit: ClassVar[bool] = True
    names: tuple[str, ...]

    def describe(self) -> str:
        return f"remove {', '.join(self.names)}"

    def planned_changes(self) -> dict[str, list[str]]:
        return {"removed": list(self.names)}


@dataclass(frozen=True)
class DropPurged(Step):
    action: ClassVar[str] = "drop_purged"
    commit: ClassVar[bool] = True
    paths: tuple[str, ...]

    def describe(self) -> str:
        return f"delete purged copies {', '.join(self.paths)}"


@dataclass(frozen=True)
class Prune(Step):
    action: ClassVar[str] = "prune"
    commit: ClassVar[bool] = True
    refs: tuple[str, ...]

    def describe(self) -> str:
        return f"remove images {', '.join(self.refs)}"

    def planned_changes(self) -> dict[str, list[str]]:
        return {"images_removed": list(self.refs)}


@dataclass(frozen=True)
class Record(Step):
    action: ClassVar[str] = "record"
    commit: ClassVar[bool] = True
    release_id: object
    version: str
    version_hash: str
    project: object
    containers: tuple[dict[str, Any], ...]
    images: tuple[str, ...]
    # the images of the release this one replaced: kept for an offline revert or rollback
    previous_images: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"record release {self.release_id} ({self.version_hash}) as applied"

    def record(self) -> dict[str, Any]:
        """What ``applied.json`` holds (without ``applied_at``)."""
        record: dict[str, Any] = _plain(dataclasses.asdict(self))
        return record


KINDS: dict[str, type[Step]] = {
    cls.action: cls
    for cls in (
        Login,
        Pull,
        CheckDigest,
        Stop,
        Purge,
        Create,
        Start,
        Verify,
        Remove,
        DropPurged,
        Prune,
        Record,
    )
}


def from_dict(data: Any) -> Step:
    """The step a dict (journal, ``docker.release_plan`` output) describes; :class:`UnknownStep`
    when its action or fields are not known."""
    cls = KINDS.get(str(data.get("action"))) if isinstance(data, dict) else None
    if cls is None:
        raise UnknownStep(f"unknown release step {data!r}")
    fields = {f.name for f in dataclasses.fields(cls)}
    # a field added later has a default: a journal written before it still reads
    required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
    values = {k: v for k, v in data.items() if k != "action"}
    if not required <= set(values) <= fields:
        raise UnknownStep(f"release step {data.get('action')!r} has fields {sorted(values)}")
    for f in dataclasses.fields(cls):
        if isinstance(values.get(f.name), list):
            values[f.name] = tuple(values[f.name])
    return cls(**values)


def describe(steps: Iterable[Step]) -> list[str]:
    return [s.describe() for s in steps]


def planned_changes(steps: Iterable[Step]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for step in steps:
        for key, values in step.planned_changes().items():
            out.setdefault(key, []).extend(values)
    return out


def dry_run_changes(step_dicts: Iterable[Any]) -> dict[str, list[str]]:
    """The ``changes`` of the release state under ``test=True``: the plan described, and what
    it would pull, stop, start and remove (``step_dicts`` as ``docker.release_plan`` gives them)."""
    typed = [from_dict(s) for s in step_dicts]
    return {"plan": describe(typed), **planned_changes(typed)}
