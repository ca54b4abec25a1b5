"""Creating API tokens. A token is shown once; only its keyed digest is stored."""

from __future__ import annotations

import secrets
from datetime import datetime

from api.accounts.models import TOKEN_SCOPES, ApiToken, User
from api.crypto import token_digest
from api.devices.models import Device
from api.extensions import db

TOKEN_PREFIX = "berth_"


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)  # 256 random bits


def create_token(
    user: User,
    *,
    scope: str = "user",
    device: Device | None = None,
    expires: datetime | None = None,
    name: str = "",
) -> tuple[ApiToken, str]:
    """Create (and flush, not commit) a token for ``user``; returns the row and the plaintext token."""
    if scope not in TOKEN_SCOPES:
        raise ValueError(f"scope must be one of {', '.join(TOKEN_SCOPES)}, not {scope!r}")
    if scope == "device" and device is None:
        raise ValueError("a device-scope token needs a device")
    if scope != "device" and device is not None:
        raise ValueError("only device-scope tokens name a device")
    if device is not None and device.account_id != user.account_id:
        raise ValueError("the device belongs to another account")
    if expires is not None and expires.tzinfo is None:
        raise ValueError("expires must be timezone-aware")
    plaintext = generate_token()
    token = ApiToken(
        account_id=user.account_id,
        user_id=user.id,
        name=name,
        scope=scope,
        device_id=device.id if device is not None else None,
        digest=token_digest(plaintext),
        expires=expires,
    )
    db.session.add(token)
    db.session.flush()
    return token, plaintext
