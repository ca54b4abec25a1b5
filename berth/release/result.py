"""What an apply and a recovery end with, and the one definition of the result event.

:class:`ApplyResult` is what ``docker.release_apply`` answers (:meth:`ApplyResult.as_dict`);
:class:`RecoveryResult` what finishing or rolling back an interrupted apply did. Both (and a
failure reported without an apply, :meth:`ApplyResult.failed`) become the data of the event
``berth/release/result`` through :func:`event_data` (docs/architecture.md "Events").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from berth.contract import ReleaseOutcome


def event_data(
    release_id: Any,
    version_hash: Any,
    outcome: str,
    error: str | None,
    containers: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """Event data for tag ``berth/release/result``: ``failed`` and ``deferred`` stay, any other
    outcome of a run that ended with the release running is ``succeeded``."""
    return {
        "release_id": release_id,
        "version_hash": version_hash,
        "outcome": outcome
        if outcome in (ReleaseOutcome.FAILED, ReleaseOutcome.DEFERRED)
        else ReleaseOutcome.SUCCEEDED,
        "error": error,
        "containers": containers or [],
        "finished_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


@dataclass
class ApplyResult:
    """An apply's answer. The optional fields are in :meth:`as_dict` only when set."""

    release_id: Any
    version_hash: Any
    outcome: ReleaseOutcome = ReleaseOutcome.UNCHANGED
    error: str | None = None
    version: str | None = None
    project: Any = None
    recovered: str | None = None  # what the recovery before the apply did
    changes: dict[str, list[str]] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    containers: list[dict[str, Any]] = field(default_factory=list)
    rollback_incomplete: str | None = None
    rolled_back: bool | None = None
    signed_by: dict[str, str] | None = None
    warnings: list[str] | None = None
    holders: list[Any] | None = None

    OPTIONAL: ClassVar[tuple[str, ...]] = (
        "rollback_incomplete",
        "rolled_back",
        "signed_by",
        "warnings",
        "holders",
    )

    @classmethod
    def failed(cls, release_id: Any, version_hash: Any, error: str) -> ApplyResult:
        """A release this device could not apply, reported without an apply's details."""
        return cls(release_id, version_hash, ReleaseOutcome.FAILED, error)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "release_id": self.release_id,
            "version": self.version,
            "version_hash": self.version_hash,
            "project": self.project,
            "outcome": self.outcome,
            "error": self.error,
            "recovered": self.recovered,
            "changes": self.changes,
            "steps": self.steps,
            "containers": self.containers,
        }
        for key in self.OPTIONAL:
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    def event(self, outcome: str | None = None) -> dict[str, Any]:
        return event_data(
            self.release_id,
            self.version_hash,
            outcome or self.outcome,
            self.error,
            self.containers,
        )


@dataclass(frozen=True)
class RecoveryResult:
    """What happened to an interrupted apply of ``release_id``: finished (``succeeded``) or
    rolled back (``failed``); ``message`` says it for the answer and the log."""

    release_id: Any
    version_hash: Any
    outcome: ReleaseOutcome
    error: str | None
    message: str

    def event(self) -> dict[str, Any]:
        return event_data(self.release_id, self.version_hash, self.outcome, self.error, None)
