"""Enrollment tokens: an account's proof-of-belonging for its devices (docs/security.md).

Created by the account (``POST /enrollment-tokens/``) or the operator
(``flask --app api enrollment create ACCOUNT``), shown once, stored as a keyed digest, with
an optional expiry and use count. Configured on a device (minion grain
``berth_enrollment_token``) and presented through the master when the minion first connects.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import ForeignKey, String, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from api.crypto import token_digest
from api.extensions import db, rowcount
from api.types import UTCDateTime, isoformat, utcnow

PREFIX = "berth_enroll_"


class EnrollmentToken(db.Model):
    __tablename__ = "enrollment_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100), default="")
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    expires: Mapped[datetime | None] = mapped_column(UTCDateTime)
    max_uses: Mapped[int | None] = mapped_column()
    uses: Mapped[int] = mapped_column(default=0)
    revoked: Mapped[bool] = mapped_column(default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column()  # user id; None: the operator's CLI
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def state(self) -> str:
        if self.revoked:
            return "revoked"
        if self.expires is not None and self.expires <= utcnow():
            return "expired"
        if self.max_uses is not None and self.uses >= self.max_uses:
            return "used up"
        return "active"


def create(
    account_id: int,
    *,
    name: str = "",
    expires: datetime | None = None,
    max_uses: int | None = None,
    created_by: int | None = None,
) -> tuple[EnrollmentToken, str]:
    plaintext = PREFIX + secrets.token_urlsafe(32)
    row = EnrollmentToken(
        account_id=account_id,
        name=name,
        digest=token_digest(plaintext),
        expires=expires,
        max_uses=max_uses,
        created_by=created_by,
    )
    db.session.add(row)
    db.session.flush()
    return row, plaintext


def usable(plaintext: str) -> EnrollmentToken | None:
    """The active token with this plaintext, or None. Reading it reserves nothing: only
    :func:`consume` decides whether this request may use it."""
    if not isinstance(plaintext, str) or not plaintext.startswith(PREFIX):
        return None
    row = db.session.scalars(
        select(EnrollmentToken).where(EnrollmentToken.digest == token_digest(plaintext))
    ).first()
    if row is None or row.state != "active":
        return None
    return row


def consume(row: EnrollmentToken) -> bool:
    """Use the token once, if it is still active *in the database*: one conditional UPDATE,
    judged on the row as it is when this transaction gets to write it (PostgreSQL waits for a
    concurrent one and re-reads; SQLite serialises writers), checked by its rowcount. Twenty
    simultaneous enrollments with a single-use token: exactly one gets True. Call it before any
    other write of the transaction (on SQLite the first write is what takes the lock)."""
    now = utcnow()
    t = EnrollmentToken.__table__
    result = db.session.execute(
        update(t)
        .where(
            t.c.id == row.id,
            t.c.revoked.is_(False),
            or_(t.c.expires.is_(None), t.c.expires > now),
            or_(t.c.max_uses.is_(None), t.c.uses < t.c.max_uses),
        )
        .values(uses=t.c.uses + 1)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        return False
    db.session.expire(row, ["uses"])
    return True


def serialize(row: EnrollmentToken) -> dict:
    return {
        "id": row.id,
        "name": row.name,
        "expires": isoformat(row.expires),
        "max_uses": row.max_uses,
        "uses": row.uses,
        "state": row.state,
        "created": isoformat(row.created),
    }
