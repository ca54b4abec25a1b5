"""Who a console request is from: the account page's session (``api/account_page``), the same
login, lockout and session lifetimes. ``login_required`` sends an anonymous visitor to the
account login with ``next=`` the page, and sets ``g.user`` and ``g.account`` like a user token
does for the REST API, so the services and ``owned_or_404`` scope every object to the account
(another account's object is 404).

``login_required(touch=False)`` serves a page's automatic refresh (the release page's live
polling): valid only within the session's lifetimes, but it does not restart the idle time
(api/security/login.py), so an unattended open page lets the session end. :func:`auto_refresh`
tells a view whether its request is the no-JavaScript reload (``?auto=1``, the URL of the
page's ``<meta http-equiv="refresh">``), which is treated the same way."""

from __future__ import annotations

from functools import wraps

from flask import g, redirect, request, url_for

from api.account_page import session_user
from api.accounts.models import Account, User
from api.extensions import db


def current_user() -> User | None:
    return session_user()


def auto_refresh() -> bool:
    """This request is a page's no-JavaScript automatic reload (``?auto=1``)."""
    return request.args.get("auto") == "1"


def login_required(view=None, *, touch: bool = True):
    if view is None:
        return lambda v: login_required(v, touch=touch)

    @wraps(view)
    def wrapper(*args, **kwargs):
        user = session_user(touch=touch and not auto_refresh())
        if user is None:
            target = request.full_path if request.query_string else request.path
            return redirect(url_for("account_page.login", next=target))
        g.user = user
        g.account = db.session.get(Account, user.account_id)
        return view(*args, **kwargs)

    return wrapper
