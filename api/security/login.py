"""Login hardening for the account page (docs/security.md, "Login and sessions").

* Throttling: at most ``BERTH_LOGIN_MAX_FAILURES`` (10) failed logins per account (email) and
  ``BERTH_LOGIN_MAX_FAILURES_PER_ADDRESS`` (30) per client address within
  ``BERTH_LOGIN_WINDOW_SECONDS`` (900); beyond that the login is refused -- even with the right
  password -- with 429 and ``Retry-After`` until the oldest failure leaves the window. Counted in
  the database (table ``login_attempts``), so every API worker process sees the same counts.
* Server-side sessions: the signed cookie carries only a random session id; the row in
  ``account_sessions`` is what makes it valid. Logout deletes the row, a password change deletes
  every row of the user, so a copied cookie stops working at once.
* Session lifetimes: a session ends ``BERTH_SESSION_IDLE_SECONDS`` (30 min) after its last
  request and ``BERTH_SESSION_MAX_SECONDS`` (12 h) after the login, whatever the cookie says
  (``api/settings.py``); an ended session's row is deleted when it is next presented. A page's
  own automatic refresh (the console's live polling, its no-JavaScript reload) is not a request
  of the operator: it is served while the session is valid but does not restart the idle time
  (``touch=False``), so an unattended open page does not keep a session alive.
"""

from __future__ import annotations

import math
import os
import secrets
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import ForeignKey, Index, String, delete, func, or_, select
from sqlalchemy.orm import Mapped, mapped_column

from api.extensions import db
from api.types import UTCDateTime, utcnow

DEFAULTS = {
    "BERTH_LOGIN_MAX_FAILURES": 10,
    "BERTH_LOGIN_MAX_FAILURES_PER_ADDRESS": 30,
    "BERTH_LOGIN_WINDOW_SECONDS": 900,
}


class LoginAttempt(db.Model):
    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_email_at", "email", "at"),
        Index("ix_login_attempts_client_address_at", "client_address", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    email: Mapped[str] = mapped_column(String(254))
    client_address: Mapped[str] = mapped_column(String(64))
    succeeded: Mapped[bool] = mapped_column(default=False)


class AccountSession(db.Model):
    __tablename__ = "account_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def _setting(name: str) -> int:
    return int(current_app.config.get(name) or os.environ.get(name) or DEFAULTS[name])


def retry_after(email: str, address: str) -> int | None:
    """Seconds until a login for ``email`` from ``address`` may be tried again; None when it may now."""
    window = timedelta(seconds=_setting("BERTH_LOGIN_WINDOW_SECONDS"))
    now = utcnow()
    since = now - window
    waits: list[int] = []
    for column, value, limit in (
        (LoginAttempt.email, email, _setting("BERTH_LOGIN_MAX_FAILURES")),
        (LoginAttempt.client_address, address, _setting("BERTH_LOGIN_MAX_FAILURES_PER_ADDRESS")),
    ):
        failures = select(LoginAttempt.at).where(
            column == value, LoginAttempt.at > since, LoginAttempt.succeeded.is_(False)
        )
        count = db.session.scalar(select(func.count()).select_from(failures.subquery())) or 0
        if count >= limit:
            # the window frees up when the (count - limit + 1)-th oldest failure leaves it
            oldest = db.session.scalars(
                failures.order_by(LoginAttempt.at).offset(count - limit).limit(1)
            ).one()
            waits.append(max(1, math.ceil((oldest + window - now).total_seconds())))
    return max(waits) if waits else None


def note(email: str, address: str, succeeded: bool) -> None:
    db.session.add(
        LoginAttempt(
            at=utcnow(), email=email[:254], client_address=address[:64], succeeded=succeeded
        )
    )
    # keep the table small: attempts older than a day are of no use to the throttle
    db.session.execute(delete(LoginAttempt).where(LoginAttempt.at < utcnow() - timedelta(days=1)))


def _lifetimes() -> tuple[timedelta, timedelta]:
    return (
        timedelta(seconds=int(current_app.config["BERTH_SESSION_IDLE_SECONDS"])),
        timedelta(seconds=int(current_app.config["BERTH_SESSION_MAX_SECONDS"])),
    )


def start_session(user_id: int) -> str:
    now = utcnow()
    idle, absolute = _lifetimes()
    # keep the table small: sessions that ended by time are of no use any more
    db.session.execute(
        delete(AccountSession).where(
            or_(AccountSession.created < now - absolute, AccountSession.last_seen < now - idle)
        )
    )
    sid = secrets.token_urlsafe(32)
    db.session.add(AccountSession(id=sid, user_id=user_id, created=now, last_seen=now))
    return sid


def session_user_id(sid: str | None, touch: bool = True) -> int | None:
    """The user of session ``sid`` if it is still valid (and then, with ``touch``, it counts as
    used now), else None; a session past its idle or absolute lifetime is deleted. Commits."""
    if not sid or not isinstance(sid, str):
        return None
    row = db.session.get(AccountSession, sid)
    if row is None:
        return None
    now = utcnow()
    idle, absolute = _lifetimes()
    if now - row.last_seen > idle or now - row.created > absolute:
        db.session.delete(row)
        db.session.commit()
        return None
    if touch:
        row.last_seen = now
        db.session.commit()
    return row.user_id


def end_session(sid: str | None) -> None:
    if sid:
        db.session.execute(delete(AccountSession).where(AccountSession.id == sid))


def end_all_sessions(user_id: int) -> None:
    db.session.execute(delete(AccountSession).where(AccountSession.user_id == user_id))
