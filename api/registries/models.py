"""The registries table: private Docker registries an account's devices log in to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from api import crypto
from api.extensions import db
from api.types import UTCDateTime, utcnow


class Registry(db.Model):
    __tablename__ = "registries"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(String(255))
    username: Mapped[str] = mapped_column(String(255))
    password_encrypted: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def set_password(self, password: str) -> None:
        self.password_encrypted = crypto.encrypt(password)

    def get_password(self) -> str:
        """The decrypted password, for the master pillar only; never part of an API response."""
        return crypto.decrypt(self.password_encrypted)

    def __repr__(self) -> str:  # never include the password
        return f"<Registry {self.id} {self.name!r} {self.url!r}>"
