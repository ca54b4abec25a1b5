"""Tables of device tags and rollouts (migrations ``0010_rollouts``, ``0015_rollout_wave_counts``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from api.extensions import db
from api.types import UTCDateTime, utcnow

device_tags = Table(
    "device_tags",
    db.metadata,
    Column("device_id", ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(64), primary_key=True),
    Index("ix_device_tags_tag_device_id", "tag", "device_id"),
)

# The tags a release targets (its body's ``device_tags``).
release_tags = Table(
    "release_tags",
    db.metadata,
    Column("release_id", ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(64), primary_key=True),
    Index("ix_release_tags_tag", "tag"),
)


class Rollout(db.Model):
    """A release's rollout policy and where it stands. No row: the release goes everywhere at once."""

    __tablename__ = "rollouts"

    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True
    )
    waves: Mapped[list[int]] = mapped_column(JSON)
    advance_at: Mapped[int]
    halt_at: Mapped[int]
    halt_min_finished: Mapped[int]
    wave_timeout: Mapped[int]
    state: Mapped[str] = mapped_column(String(16), index=True)
    wave: Mapped[int] = mapped_column(default=1)
    wave_started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    halt_reason: Mapped[str | None] = mapped_column(Text)
    # a wave whose halt the operator overrode (resume of a halted rollout): not halted again
    halt_overridden_wave: Mapped[int | None]
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def policy(self) -> dict:
        return {
            "waves": list(self.waves),
            "advance_at": self.advance_at,
            "halt_at": self.halt_at,
            "halt_min_finished": self.halt_min_finished,
            "wave_timeout": self.wave_timeout,
        }


# Per wave of a rollout release: how many targets it has (bucket ``targets``) and how many of
# them have a stored deployment in each status (bucket = the status); a target with no stored
# deployment is ``targets`` minus the rest. Kept by database triggers on ``deployments`` and
# ``release_devices`` (migration 0015, api/rollouts/counters.py), in the transaction of every
# change, so a report's wave decision reads a handful of rows instead of counting the wave.
rollout_wave_counts = Table(
    "rollout_wave_counts",
    db.metadata,
    Column("release_id", ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True),
    Column("wave", Integer, primary_key=True),
    Column("bucket", String(16), primary_key=True),
    # PostgreSQL: a device's changes go to shard hashtext(device_id) & 31 (migration 0022), so
    # reports of one wave change different rows; SQLite: 0. Readers sum the shards.
    Column("shard", Integer, primary_key=True, server_default="0"),
    Column("n", Integer, nullable=False),
)


class RolloutActionRecord(db.Model):
    """Operator actions on a rollout: who, when, and what it changed."""

    __tablename__ = "rollout_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(16))
    state_before: Mapped[str] = mapped_column(String(16))
    state_after: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # kept as text too: the history still says who after the user is deleted
    user_email: Mapped[str] = mapped_column(String(254), default="")
    token_id: Mapped[int | None]
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RolloutWebhook(db.Model):
    """A URL of the account that receives rollout events (signed like execute callbacks)."""

    __tablename__ = "rollout_webhooks"
    __table_args__ = (UniqueConstraint("account_id", "url"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    url: Mapped[str] = mapped_column(String(2048))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
