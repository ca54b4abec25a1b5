"""The ``audit_log`` table and :func:`record`."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import g, has_request_context, request
from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from api.accounts.models import User
from api.extensions import db
from api.types import UTCDateTime, utcnow

# The actions Berth records: what docs/security.md documents and what GET /audit/?action= is
# usually given; a view or command declares its action from this list (api/audit/declarations.py).
ACTIONS = (
    "account.create",
    "user.create",
    "login",
    "login.failed",
    "login.locked",
    "logout",
    "password.change",
    "token.create",
    "token.revoke",
    "enrollment_token.create",
    "enrollment_token.revoke",
    "device.enroll",
    "device.enrollment_conflict",
    "device.master_adopt",
    "device.create",
    "device.update",
    "device.delete",
    "device.lock_override",
    "project.create",
    "project.update",
    "project.delete",
    "release.create",
    "release.update",
    "release.delete",
    "rollout.action",
    "rollout_webhook.create",
    "rollout_webhook.delete",
    "webhook_secret.rotate",
    "rollout.recount",
    "execute",
    "execute.refused",
    "registry.create",
    "registry.update",
    "registry.delete",
    "signing_key.create",
    "signing_key.delete",
    "policy.change",
    "report.refused",
)

_SECRET_KEY = re.compile(r"pass|secret|token|key|credential|auth", re.IGNORECASE)
REDACTED = "***"


class AuditEntry(db.Model):
    """One audited action. No foreign keys on purpose: the row outlives the device, user or
    token it names. Never updated or deleted by Berth (a database trigger refuses UPDATE)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_account_id_at", "account_id", "at"),
        Index("ix_audit_log_account_id_action", "account_id", "action"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    account_id: Mapped[int | None] = mapped_column()
    action: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column()
    user_email: Mapped[str | None] = mapped_column(String(254))
    token_id: Mapped[int | None] = mapped_column()
    client_address: Mapped[str | None] = mapped_column(String(64))
    device_id: Mapped[str | None] = mapped_column(String(36))
    target: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


def redact(value: Any) -> Any:
    """``value`` with every mapping entry whose key looks like a secret replaced by ``"***"``."""
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def _request_actor() -> dict[str, Any]:
    if not has_request_context():
        return {}
    actor: dict[str, Any] = {"client_address": request.remote_addr}
    token = getattr(g, "token", None)
    if token is not None:
        actor["token_id"] = token.id if getattr(token, "scope", None) != "platform" else None
        actor["user_id"] = getattr(token, "user_id", None)
    user = getattr(g, "user", None)
    if user is not None:
        actor["user_id"] = user.id
        actor["user_email"] = user.email
    return actor


def record(
    action: str,
    *,
    account_id: int | None = None,
    target: str | None = None,
    device_id: str | None = None,
    details: dict[str, Any] | None = None,
    user_id: int | None = None,
    user_email: str | None = None,
    token_id: int | None = None,
    client_address: str | None = None,
) -> AuditEntry:
    """Add an audit row to the current session (committed with the caller's change).

    ``account_id`` defaults to the request's account (``g.account``); who (user, token) and
    from where (client address) default to the request's. Outside a request (CLI) give them,
    or they stay empty (the CLI is the operator).
    """
    actor = _request_actor()
    if account_id is None and has_request_context() and getattr(g, "account", None) is not None:
        account_id = g.account.id
    if user_email is None and user_id is not None and "user_email" not in actor:
        user = db.session.get(User, user_id)
        user_email = user.email if user is not None else None
    entry = AuditEntry(
        at=utcnow(),
        account_id=account_id,
        action=action[:64],
        user_id=user_id if user_id is not None else actor.get("user_id"),
        user_email=user_email or actor.get("user_email"),
        token_id=token_id if token_id is not None else actor.get("token_id"),
        client_address=(client_address or actor.get("client_address") or None),
        device_id=device_id,
        target=target[:255] if target else None,
        details=redact(details or {}),
    )
    db.session.add(entry)
    return entry
