"""The durable outbox: what the API must tell Salt or a webhook receiver, written in the
same transaction as the change that needs it, and delivered by ``flask --app api worker``.

Two kinds of message:

* ``salt``: a list of Salt calls (``steps``) for a list of minions, sent through
  salt-api one after the other. A step after the first is sent once every
  targeted minion returned the previous one or ``BERTH_OUTBOX_STEP_WAIT``
  seconds passed (offline minions never return; they catch up on minion start).
  Salt messages are retried with backoff until delivered.
* ``webhook``: a signed POST of an execute result to the caller's
  ``callback_url``, retried with backoff up to ``BERTH_WEBHOOK_MAX_ATTEMPTS``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Index, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from api.extensions import db
from api.types import UTCDateTime, utcnow

log = logging.getLogger(__name__)

# One salt message targets at most this many minions (one local_async each step).
SALT_BATCH_SIZE = 1000
MAX_BACKOFF_SECONDS = 300

REFRESH_PILLAR = ["saltutil.refresh_pillar", [], {"wait": True}]
RELEASE_PULL = ["docker.release_pull", [], {}]
REGISTRIES_LOGIN = ["state.sls", ["docker.registries"], {}]


class OutboxMessage(db.Model):
    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "delivered_at", "gave_up_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    # Human-readable reason, for logs: "release 7 queued on 3 device(s)".
    reason: Mapped[str] = mapped_column(String(255), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    gave_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def __repr__(self) -> str:
        return f"<OutboxMessage {self.id} {self.kind} {self.reason!r}>"


def backoff(attempts: int) -> timedelta:
    """1, 2, 4, ... seconds (capped), with jitter so a fleet of retries does not align."""
    base = min(2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)
    return timedelta(seconds=base * random.uniform(0.8, 1.2))


def _batches(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def enqueue_salt(minions: Iterable[str], steps: list[list], reason: str) -> list[OutboxMessage]:
    """Queue Salt ``steps`` (``[fun, arg, kwarg]``) for ``minions``: one row per batch, not per minion.

    Adds to the current session; the caller commits with the change that needs it.
    """
    minions = sorted(set(minions))
    rows = []
    for batch in _batches(minions, SALT_BATCH_SIZE):
        row = OutboxMessage(
            kind="salt",
            reason=reason[:255],
            payload={"minions": batch, "steps": steps, "step": 0, "jid": None, "sent_at": None},
            next_attempt_at=utcnow(),
        )
        db.session.add(row)
        rows.append(row)
    if rows:
        log.info(
            "outbox: queued %s for %d minion(s) in %d message(s)", reason, len(minions), len(rows)
        )
    return rows


def enqueue_webhook(url: str, account_id: int, body: dict[str, Any], reason: str) -> OutboxMessage:
    row = OutboxMessage(
        kind="webhook",
        reason=reason[:255],
        payload={"url": url, "account_id": account_id, "body": body},
        next_attempt_at=utcnow(),
    )
    db.session.add(row)
    return row


def due_messages(limit: int, now: datetime | None = None) -> list[OutboxMessage]:
    """Undelivered messages whose next attempt is due, oldest first, locked for this worker.

    On PostgreSQL ``SKIP LOCKED`` lets several workers drain the outbox side by side.
    """
    now = now or utcnow()
    stmt = (
        select(OutboxMessage)
        .where(
            OutboxMessage.delivered_at.is_(None),
            OutboxMessage.gave_up_at.is_(None),
            OutboxMessage.next_attempt_at <= now,
        )
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    if db.session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list(db.session.scalars(stmt))
