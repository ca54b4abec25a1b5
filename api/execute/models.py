"""Remote command jobs and each account's execute settings (command allow-list, webhook secret)."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet
from flask import current_app
from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.crypto import derive_key
from api.execute.schemas import ExecuteResult
from api.extensions import db
from api.types import UTCDateTime, utcnow
from berth.contract import ExecuteJobState


class ExecuteJob(db.Model):
    """One command sent to one device through salt-api, and what came back."""

    __tablename__ = "execute_jobs"
    __table_args__ = (
        CheckConstraint(
            f"state IN ({', '.join(repr(s.value) for s in ExecuteJobState)})", name="state"
        ),
        Index("ix_execute_jobs_state_deadline", "state", "deadline"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    jid: Mapped[str] = mapped_column(String(32), unique=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[str] = mapped_column(String(255))
    fun: Mapped[str] = mapped_column(String(255))
    arg: Mapped[list[Any]] = mapped_column(JSON, default=list)
    kwarg: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default=ExecuteJobState.PENDING.value)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    callback_url: Mapped[str | None] = mapped_column(String(2048))
    callback_timeout: Mapped[int] = mapped_column(default=120)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def result(self) -> dict[str, Any]:
        """The poll/webhook body (its ``ExecuteResult`` response model). Until the minion returns,
        ``response`` echoes the request with no return; a forwarded return that does not name its
        function (``berth.master.forward``: none in the job cache) names the job's."""
        response = self.response
        if response is None:
            fun_args = list(self.arg or []) + (
                [dict(self.kwarg, __kwarg__=True)] if self.kwarg else []
            )
            response = {
                "fun": self.fun,
                "fun_args": fun_args,
                "return": None,
                "retcode": None,
                "success": False if self.state == ExecuteJobState.TIMEOUT else None,
            }
        elif response.get("fun") is None:
            response = {**response, "fun": self.fun}
        return ExecuteResult.body(self, response=response)


class ExecuteSettings(db.Model):
    """Per-account execute settings, managed by the admin CLI (``flask --app api accounts ...``).

    ``allowed_commands``: the account's execute allow-list (``berth.execpolicy`` entries such
    as ``docker.*`` or ``state.sls docker.release``; ``["*"]`` = every function); ``None``
    means the safe default (``berth.execpolicy.SAFE_DEFAULT``). ``allowed_kwargs``: keyword
    arguments an administrator allowed per function on top of the safe set. The webhook secret signs callbacks;
    it is stored encrypted (the API must know it to sign) and shown only when created.
    """

    __tablename__ = "execute_settings"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    allowed_commands: Mapped[list[str] | None] = mapped_column(JSON)
    # keyword names allowed per function beyond berth.execpolicy.SAFE_KWARGS: {"docker.logs": ["follow"]}
    allowed_kwargs: Mapped[dict[str, list[str]] | None] = mapped_column(JSON)
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    def new_webhook_secret(self) -> str:
        secret = "whsec_" + secrets.token_urlsafe(32)
        self.webhook_secret_encrypted = _fernet().encrypt(secret.encode()).decode()
        return secret

    def webhook_secret(self) -> str | None:
        if not self.webhook_secret_encrypted:
            return None
        return _fernet().decrypt(self.webhook_secret_encrypted.encode()).decode()


def _fernet() -> Fernet:
    key = derive_key(current_app.config["SECRET_KEY"], b"webhook-secret")
    return Fernet(base64.urlsafe_b64encode(key))


def settings_for(account_id: int) -> ExecuteSettings | None:
    return db.session.get(ExecuteSettings, account_id)


def settings_for_update(account_id: int) -> ExecuteSettings:
    settings = db.session.get(ExecuteSettings, account_id)
    if settings is None:
        settings = ExecuteSettings(account_id=account_id)
        db.session.add(settings)
    return settings
