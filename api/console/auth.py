"""Who a console request is from: the account page's session (``api/account_page``), the same
login, lockout and session lifetimes. ``login_required`` sends an anonymous visitor to the
account login with ``next=`` the page, and sets ``g.user`` and ``g.account`` like a user token
does for the REST API, so the services and ``owned_or_404`` scope every object to the account
(another account's object is 404)."""

from __future__ import annotations

from functools import wraps

from flask import g, redirect, request, url_for

from api.account_page import session_user
from api.extensions import db
from api.models import Account, User


def current_user() -> User | None:
    return session_user()


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        user = session_user()
        if user is None:
            target = request.full_path if request.query_string else request.path
            return redirect(url_for("account_page.login", next=target))
        g.user = user
        g.account = db.session.get(Account, user.account_id)
        return view(*args, **kwargs)

    return wrapper
