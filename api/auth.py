"""``Authorization: APIToken <token>`` authentication with scopes (DRF semantics)."""

from __future__ import annotations

from datetime import timedelta
from functools import wraps
from typing import Callable

from flask import g, request
from sqlalchemy import select, update
from sqlalchemy.orm import joinedload

from api.crypto import token_digest
from api.errors import AuthenticationFailed, PermissionDenied
from api.extensions import db
from api.models import TOKEN_SCOPES, ApiToken
from api.models.types import utcnow

KEYWORD = "apitoken"
# last_used is written at most this often per token so reads stay read-only.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def authenticate() -> ApiToken:
    header = request.headers.get("Authorization", "")
    parts = header.split()
    if not parts or parts[0].lower() != KEYWORD:
        raise AuthenticationFailed("Authentication credentials were not provided.")
    if len(parts) == 1:
        raise AuthenticationFailed("Invalid token header. No credentials provided.")
    if len(parts) > 2:
        raise AuthenticationFailed("Invalid token header. Token string should not contain spaces.")
    token = db.session.scalars(
        select(ApiToken).options(joinedload(ApiToken.account)).where(ApiToken.digest == token_digest(parts[1]))
    ).one_or_none()
    if token is None or token.revoked:
        raise AuthenticationFailed("Invalid token.")
    now = utcnow()
    if token.expires is not None and token.expires <= now:
        raise AuthenticationFailed("Token expired.")
    if token.last_used is None or now - token.last_used >= LAST_USED_RESOLUTION:
        db.session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used=now))
        db.session.commit()
    return token


def require_token(*scopes: str) -> Callable:
    """Decorator: the request needs a valid token of one of ``scopes`` (default: ``user``).

    Sets ``g.token``, ``g.account`` and, for device-scope tokens, ``g.device``.
    """
    scopes = scopes or ("user",)
    unknown = set(scopes) - set(TOKEN_SCOPES)
    if unknown:
        raise ValueError(f"unknown token scopes: {sorted(unknown)}")

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(*args, **kwargs):
            token = authenticate()
            if token.scope not in scopes:
                raise PermissionDenied(
                    f"This endpoint needs a token with scope {' or '.join(scopes)}; this token has scope {token.scope}."
                )
            g.token = token
            g.account = token.account
            g.device = token.device if token.scope == "device" else None
            return view(*args, **kwargs)

        wrapper.required_scopes = scopes
        return wrapper

    return decorator
