"""The signing keys table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api.extensions import db
from api.types import UTCDateTime, utcnow


class SigningKey(db.Model):
    """A public key the account's images may be signed with (cosign, ``berth/signing.py``)."""

    __tablename__ = "signing_keys"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    public_key: Mapped[str] = mapped_column(Text)  # PEM SubjectPublicKeyInfo
    algorithm: Mapped[str] = mapped_column(String(16))  # ecdsa-p256 | ed25519
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 hex of the DER key
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
