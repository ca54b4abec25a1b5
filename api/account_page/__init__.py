"""Account page (server-rendered HTML): log in with email/password, list, create and revoke API tokens.

Every form carries a CSRF token (Flask-WTF). A new token is shown once, in the
response to the form that created it.
"""

from __future__ import annotations

import logging
from datetime import UTC
from functools import wraps

from flask import Blueprint, g, redirect, render_template, request, session, url_for
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms.fields.choices import SelectChoice

from api import audit
from api.account_page.forms import (
    CreateTokenForm,
    LoginForm,
    LogoutForm,
    PasswordForm,
    RevokeTokenForm,
)
from api.accounts.models import ApiToken, User
from api.audit import audited
from api.devices.models import Device
from api.extensions import db
from api.security import login as login_guard
from api.tokens import create_token
from api.types import utcnow

bp = Blueprint("account_page", __name__, url_prefix="/account", template_folder="templates")
log = logging.getLogger(__name__)

# Compared against when the email is unknown, so a wrong email costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("berth-no-such-user")


def session_user(touch: bool = True) -> User | None:
    """The logged-in user of this request's session cookie, or None (and the cookie is cleared).
    The server-side session row is what makes the cookie valid (logout, password change,
    idle and absolute lifetimes); the console (api/console/auth.py) uses the same check.
    ``touch=False``: a page's automatic refresh, which does not restart the idle time."""
    user_id = login_guard.session_user_id(session.get("sid"), touch=touch)
    user = db.session.get(User, user_id) if user_id is not None else None
    if user is None or user.id != session.get("user_id"):
        session.clear()
        return None
    return user


def safe_next(target: str | None) -> str | None:
    """``next`` after a login: only a path of the console (``/ui/...``), never another site."""
    if (
        target
        and target.startswith("/ui/")
        and "//" not in target
        and "\\" not in target
        # no control character: a newline cannot be in Location, a tab is dropped from it
        and not any(ord(c) < 0x20 or ord(c) == 0x7F for c in target)
    ):
        return target
    return None


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        user = session_user()
        if user is None:
            return redirect(url_for("account_page.login"))
        g.user = user
        return view(*args, **kwargs)

    return wrapper


def _page(create_form=None, new_token=None, new_token_row=None, status=200, password_form=None):
    user = g.user
    form = token_form(create_form)
    tokens = account_tokens()
    return (
        render_template(
            "account/index.html",
            user=user,
            tokens=tokens,
            create_form=form,
            revoke_form=RevokeTokenForm(),
            logout_form=LogoutForm(),
            password_form=password_form or PasswordForm(),
            new_token=new_token,
            new_token_row=new_token_row,
            now=utcnow(),
        ),
        status,
    )


@bp.route("/login/", methods=["GET", "POST"])
@audited("login", "login.failed", "login.locked")
def login():
    form = LoginForm()
    error = None
    next_url = safe_next(request.args.get("next"))
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        address = request.remote_addr or ""
        user = db.session.scalar(select(User).where(User.email == email))
        wait = login_guard.retry_after(email, address)
        if wait is not None:
            # refused without looking at the password: even the right one does not get in now
            audit.record(
                "login.locked",
                account_id=user.account_id if user is not None else None,
                user_id=user.id if user is not None else None,
                details={"email": email, "retry_after": wait},
            )
            db.session.commit()
            log.warning("account page: login refused (throttled) for %s from %s", email, address)
            minutes = -(-wait // 60)
            page = render_template(
                "account/login.html",
                form=form,
                next_url=next_url,
                error="Too many failed logins for this account or from this address. "
                f"Try again in {minutes} minute{'s' if minutes != 1 else ''}.",
            )
            return page, 429, {"Retry-After": str(wait)}
        if user is not None and user.check_password(form.password.data):
            login_guard.note(email, address, True)
            session.clear()
            session["sid"] = login_guard.start_session(user.id)
            session["user_id"] = user.id
            audit.record(
                "login", account_id=user.account_id, user_id=user.id, user_email=user.email
            )
            db.session.commit()
            log.info("account page: user %s logged in", user.id)
            return redirect(next_url or url_for("account_page.index"))
        if user is None:
            check_password_hash(_DUMMY_HASH, form.password.data)
        login_guard.note(email, address, False)
        audit.record(
            "login.failed",
            account_id=user.account_id if user is not None else None,
            user_id=user.id if user is not None else None,
            details={"email": email[:254]},
        )
        db.session.commit()
        log.info("account page: failed login")
        error = "Wrong email or password."
    status = 400 if form.is_submitted() else 200
    page = render_template("account/login.html", form=form, error=error, next_url=next_url)
    return page, status


@bp.post("/logout/")
@audited("logout")
@login_required
def logout():
    if LogoutForm().validate_on_submit():
        login_guard.end_session(session.get("sid"))
        audit.record("logout", account_id=g.user.account_id)
        db.session.commit()
        session.clear()
    return redirect(url_for("account_page.login"))


@bp.post("/password/")
@audited("password.change")
@login_required
def change_password():
    form = PasswordForm()
    valid = form.validate_on_submit()
    if valid and not g.user.check_password(form.current_password.data):
        form.current_password.errors = ["Wrong password."]
        valid = False
    if not valid:
        return _page(password_form=form, status=400)
    g.user.set_password(form.new_password.data)
    # every session of the user ends (a stolen cookie too); this browser gets a new one
    login_guard.end_all_sessions(g.user.id)
    session.clear()
    session["sid"] = login_guard.start_session(g.user.id)
    session["user_id"] = g.user.id
    audit.record("password.change", account_id=g.user.account_id)
    db.session.commit()
    return redirect(url_for("account_page.index"))


@bp.get("/")
@login_required
def index():
    return _page()


def token_form(form: CreateTokenForm | None = None) -> CreateTokenForm:
    """The create-token form with the account's devices to choose from."""
    form = form or CreateTokenForm()
    devices = db.session.scalars(
        select(Device).where(Device.account_id == g.user.account_id).order_by(Device.unit_id)
    ).all()
    form.device.choices = [SelectChoice("", "—")] + [
        SelectChoice(d.id, f"{d.unit_id} {d.display}".strip()) for d in devices
    ]
    return form


def account_tokens() -> list[ApiToken]:
    return list(
        db.session.scalars(
            select(ApiToken)
            .where(ApiToken.account_id == g.user.account_id)
            .order_by(ApiToken.id.desc())
        )
    )


def issue_token(form: CreateTokenForm) -> tuple[ApiToken, str] | None:
    """Create the API token a submitted form asks for (audited, committed); None when the
    form is invalid (its fields carry the messages). The account page and the console call it."""
    if not form.validate_on_submit():
        return None
    device = db.session.get(Device, form.device.data) if form.device.data else None
    expires = form.expires.data.replace(tzinfo=UTC) if form.expires.data else None
    try:
        row, plaintext = create_token(
            g.user, scope=form.scope.data, device=device, expires=expires, name=form.name.data or ""
        )
    except ValueError as exc:
        form.scope.errors = [str(exc)]
        db.session.rollback()
        return None
    audit.record(
        "token.create",
        account_id=g.user.account_id,
        target=f"token:{row.id}",
        details={"scope": row.scope, "name": row.name, "device": row.device_id},
    )
    db.session.commit()
    log.info("user %s created token %s (scope %s)", g.user.id, row.id, row.scope)
    return row, plaintext


def revoke_token(token_id: int) -> bool:
    """Revoke the account's API token ``token_id`` (audited, committed); False: no such token."""
    token = db.session.scalar(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.account_id == g.user.account_id)
    )
    if token is None:
        return False
    token.revoke()
    audit.record("token.revoke", account_id=g.user.account_id, target=f"token:{token.id}")
    db.session.commit()
    log.info("user %s revoked token %s", g.user.id, token.id)
    return True


@bp.post("/tokens/")
@audited("token.create")
@login_required
def create():
    form = token_form()
    created = issue_token(form)
    if created is None:
        return _page(create_form=form, status=400)
    return _page(new_token=created[1], new_token_row=created[0], status=201)


@bp.post("/tokens/<int:token_id>/revoke/")
@audited("token.revoke")
@login_required
def revoke(token_id: int):
    if not RevokeTokenForm().validate_on_submit():
        return _page(status=400)
    if not revoke_token(token_id):
        return _page(status=404)
    return redirect(url_for("account_page.index"))
