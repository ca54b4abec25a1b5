"""Platform master tokens: the credential of a Salt tier that serves many accounts.

Made only by the operator's CLI (``flask --app api platform-token create --name NAME``); not
an account's user. A platform token may do what a master-scope token does (pillar, reports,
enrollment) for every account's *enrolled* devices, and nothing else.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from api.crypto import token_digest
from api.extensions import db
from api.types import UTCDateTime, utcnow

SCOPE = "platform"
PREFIX = "berth_platform_"


class PlatformToken(db.Model):
    __tablename__ = "platform_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    revoked: Mapped[bool] = mapped_column(default=False)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def create(name: str) -> tuple[PlatformToken, str]:
    import secrets

    plaintext = PREFIX + secrets.token_urlsafe(32)
    row = PlatformToken(name=name, digest=token_digest(plaintext))
    db.session.add(row)
    db.session.flush()
    return row, plaintext


def find(digest: str) -> PlatformToken | None:
    """The live platform token with this digest (``last_used`` updated at most once a minute)."""
    row = db.session.scalars(select(PlatformToken).where(PlatformToken.digest == digest)).first()
    if row is None or row.revoked:
        return None
    now = utcnow()
    if row.last_used is None or (now - row.last_used).total_seconds() >= 60:
        db.session.execute(
            update(PlatformToken).where(PlatformToken.id == row.id).values(last_used=now)
        )
        db.session.commit()
    return row
