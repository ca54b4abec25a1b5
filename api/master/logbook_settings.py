"""The ``berth:logbook`` pillar of a device: API base URL, device id and the shipper's token.

Tokens are stored only as a keyed digest, so the one token the device's logbook
shipper uses is kept here as well, encrypted (``api.crypto.encrypt``), to be served
again on every pillar request. It is minted on first need and re-minted when it
was revoked or has expired. It leaves the API only through the master pillar.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime

from flask import current_app, request
from sqlalchemy import ForeignKey, Text, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api import crypto
from api.accounts.models import ApiToken, User
from api.devices.models import Device
from api.extensions import db, rowcount
from api.tokens import create_token
from api.types import UTCDateTime, utcnow
from berth.release.pillar import LogbookPillar

log = logging.getLogger(__name__)

TOKEN_NAME = "logbook shipper"


class LogbookShipperToken(db.Model):
    """The device-scope token a device's logbook shipper is given, encrypted at rest."""

    __tablename__ = "logbook_shipper_tokens"

    device_id: Mapped[str] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    token_id: Mapped[int] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), unique=True
    )
    token_encrypted: Mapped[str] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    token: Mapped[ApiToken] = relationship()

    def __repr__(self) -> str:  # never include the token
        return f"<LogbookShipperToken device={self.device_id} token_id={self.token_id}>"


def public_url() -> str:
    """Base URL devices reach the API at: ``BERTH_PUBLIC_URL`` (config or env), else this request's root."""
    url = (
        current_app.config.get("BERTH_PUBLIC_URL")
        or os.environ.get("BERTH_PUBLIC_URL")
        or request.url_root
    )
    return url.rstrip("/")


def logbook_pillar(device: Device, owner_id: int | None) -> LogbookPillar | None:
    """``{"url", "token", "device_id"}`` for ``device``; None when no token can be minted (no user in the account)."""
    token = shipper_token(device, owner_id)
    if token is None:
        return None
    return {"url": public_url(), "token": token, "device_id": device.id}


def _usable(token: ApiToken | None) -> bool:
    return (
        token is not None
        and not token.revoked
        and (token.expires is None or token.expires > utcnow())
    )


def shipper_token(device: Device, owner_id: int | None) -> str | None:
    """The device's shipper token (plaintext), minting one when it has none or it no longer works."""
    for _ in range(3):  # a concurrent request minting the same device's token wins; read its result
        row = db.session.get(LogbookShipperToken, device.id, populate_existing=True)
        if row is not None and _usable(row.token):
            try:
                return crypto.decrypt(row.token_encrypted)
            except ValueError:
                log.warning(
                    "device %s: its logbook shipper token cannot be decrypted (secret key changed); minting a new one",
                    device.unit_id,
                )
        owner = _owner(device, owner_id)
        if owner is None:
            log.warning(
                "device %s: no user in account %s to own a logbook shipper token",
                device.unit_id,
                device.account_id,
            )
            return None
        token, plaintext = create_token(owner, scope="device", device=device, name=TOKEN_NAME)
        if row is None:
            db.session.add(
                LogbookShipperToken(
                    device_id=device.id,
                    token_id=token.id,
                    token_encrypted=crypto.encrypt(plaintext),
                )
            )
            try:
                db.session.commit()
            except IntegrityError:
                db.session.rollback()
                continue
        else:
            old_id = row.token_id
            if row.token is not None:
                row.token.revoke()  # expired or undecryptable: make sure it is dead too
            result = db.session.execute(
                update(LogbookShipperToken)
                .where(
                    LogbookShipperToken.device_id == device.id,
                    LogbookShipperToken.token_id == old_id,
                )
                .values(
                    token_id=token.id, token_encrypted=crypto.encrypt(plaintext), created=utcnow()
                )
                .execution_options(synchronize_session=False)
            )
            swapped = rowcount(result)
            if swapped != 1:
                db.session.rollback()
                continue
            db.session.commit()
        log.info("device %s: minted logbook shipper token %s", device.unit_id, token.id)
        return plaintext
    raise RuntimeError(f"device {device.unit_id}: could not settle its logbook shipper token")


def _owner(device: Device, owner_id: int | None) -> User | None:
    """The user the minted token belongs to: the master token's user, else the account's first user."""
    owner = db.session.get(User, owner_id) if owner_id is not None else None
    if owner is not None and owner.account_id == device.account_id:
        return owner
    return db.session.scalars(
        select(User).where(User.account_id == device.account_id).order_by(User.id).limit(1)
    ).first()
