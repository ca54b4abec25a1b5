"""``Authorization: APIToken <token>`` authentication with scopes (DRF semantics)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps

from flask import g, request
from sqlalchemy import bindparam, select, update

from api.accounts.models import TOKEN_SCOPES, Account, ApiToken
from api.crypto import token_digest
from api.devices.models import Device
from api.errors import AuthenticationFailed, PermissionDenied
from api.extensions import db
from api.security import platform
from api.types import utcnow

KEYWORD = "apitoken"
# last_used is written at most this often per token so reads stay read-only.
LAST_USED_RESOLUTION = timedelta(seconds=60)


# Every authenticated request runs this: one statement built once at import, whose
# compiled form and result metadata SQLAlchemy caches (no ORM objects either).
_TOKEN_COLUMNS = (
    "id",
    "account_id",
    "user_id",
    "name",
    "scope",
    "device_id",
    "expires",
    "revoked",
    "last_used",
)
_TOKEN_QUERY = (
    select(
        *(ApiToken.__table__.c[c] for c in _TOKEN_COLUMNS),
        Account.__table__.c.name.label("account_name"),
    )
    .join_from(
        ApiToken.__table__,
        Account.__table__,
        ApiToken.__table__.c.account_id == Account.__table__.c.id,
    )
    .where(ApiToken.__table__.c.digest == bindparam("digest"))
)


@dataclass(frozen=True, slots=True)
class AuthAccount:
    """The authenticated account (``g.account``): a read-only snapshot, not a session object."""

    id: int
    name: str


@dataclass(frozen=True, slots=True)
class AuthToken:
    """The authenticated token (``g.token``): a read-only snapshot, not a session object."""

    id: int
    account_id: int | None  # None for a platform token (scope "platform")
    user_id: int | None
    name: str
    scope: str
    device_id: str | None
    expires: datetime | None
    revoked: bool
    last_used: datetime | None


def _load_token(digest: str) -> tuple[AuthToken, AuthAccount | None] | None:
    row = db.session.connection().execute(_TOKEN_QUERY, {"digest": digest}).one_or_none()
    if row is None:
        return None
    token = AuthToken(**{c: getattr(row, c) for c in _TOKEN_COLUMNS})
    return token, AuthAccount(row.account_id, row.account_name)


def _load_platform_token(digest: str) -> tuple[AuthToken, None] | None:
    row = platform.find(digest)
    if row is None:
        return None
    return AuthToken(
        row.id, None, None, row.name, platform.SCOPE, None, None, False, row.last_used
    ), None


def authenticate() -> tuple[AuthToken, AuthAccount | None]:
    """The request's valid token and its account (None for a platform token), or
    :class:`AuthenticationFailed`."""
    header = request.headers.get("Authorization", "")
    parts = header.split()
    if not parts or parts[0].lower() != KEYWORD:
        raise AuthenticationFailed("Authentication credentials were not provided.")
    if len(parts) == 1:
        raise AuthenticationFailed("Invalid token header. No credentials provided.")
    if len(parts) > 2:
        raise AuthenticationFailed("Invalid token header. Token string should not contain spaces.")
    digest = token_digest(parts[1])
    found = _load_token(digest)
    if found is None:
        found = _load_platform_token(digest)
        if found is not None:
            return found
    if found is None or found[0].revoked:
        raise AuthenticationFailed("Invalid token.")
    token, account = found
    now = utcnow()
    if token.expires is not None and token.expires <= now:
        raise AuthenticationFailed("Token expired.")
    if token.last_used is None or now - token.last_used >= LAST_USED_RESOLUTION:
        db.session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used=now))
        db.session.commit()
    return token, account


def require_token(*scopes: str) -> Callable:
    """Decorator: the request needs a valid token of one of ``scopes`` (default: ``user``).

    Sets ``g.token`` (:class:`AuthToken`), ``g.account`` (:class:`AuthAccount`; use
    ``g.account.id`` in queries; None for scope ``platform``, the operator's master
    credential for every account, docs/security.md) and, for device-scope tokens,
    ``g.device`` (the ORM :class:`~api.devices.models.Device`, else ``None``).
    """
    scopes = scopes or ("user",)
    unknown = set(scopes) - set(TOKEN_SCOPES) - {"platform"}
    if unknown:
        raise ValueError(f"unknown token scopes: {sorted(unknown)}")

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):
            token, account = authenticate()
            if token.scope not in scopes:
                raise PermissionDenied(
                    f"This endpoint needs a token with scope {' or '.join(scopes)}; this token has scope {token.scope}."
                )
            g.token = token
            g.account = account
            g.device = db.session.get(Device, token.device_id) if token.scope == "device" else None
            return view(*args, **kwargs)

        wrapper.required_scopes = scopes  # type: ignore[attr-defined]  # read by the OpenAPI check
        return wrapper

    return decorator
