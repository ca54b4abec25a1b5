"""Operator console (docs/console.md): server-rendered pages under ``/ui/``.

Behind the account page's email/password session (``api/console/auth.py``), CSRF on every
POST (Flask-WTF's token, checked for every ``/ui/`` POST in :func:`_csrf`), built on the same service
functions as the REST API. Assets (htmx, uPlot, ``console.js``, ``console.css``) are vendored
in ``static/``; every page works without JavaScript.

A page module registers its views on :data:`bp` and is listed in :data:`PAGES`.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime

from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from wtforms.validators import ValidationError as CsrfValidationError

from api.errors import ApiError, NotFound
from api.openapi import Response, operation
from berth import contract

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/ui",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)

# the page modules, each adds its views to ``bp``
PAGES = ("api.console.home", "api.console.devices", "api.console.releases", "api.console.account")

# a forged POST (no or a wrong CSRF token) is refused before any view runs
CSRF_REFUSED = "The form's CSRF token is missing or wrong: reload the page and try again."


# the navigation's sections: the page each opens (a section whose page module is not there yet
# still links to its agreed path)
SECTIONS = {
    "fleet": "/ui/devices/",
    "releases": "/ui/releases/",
    "account": "/ui/account/",
    "audit": "/ui/audit/",
}


@bp.app_context_processor
def _helpers():
    # state words in templates come from berth.contract too (contract.ExecuteJobState.PENDING)
    return {"nav_url": SECTIONS.__getitem__, "csrf_token": generate_csrf, "contract": contract}


@bp.app_template_filter("isotime")
def _isotime(value: datetime) -> str:
    """``<time datetime=...>``: the instant in UTC, ISO 8601 (console.js shows it in the
    viewer's zone)."""
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@bp.app_template_filter("utctime")
def _utctime(value: datetime) -> str:
    """The instant as the server renders it, and the ``title`` on hover: UTC."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _csrf():
    """Every POST under ``/ui/`` (checked before routing's outcome, so an unknown path too)."""
    if request.path.startswith("/ui/") and request.method not in ("GET", "HEAD", "OPTIONS"):
        try:
            validate_csrf(request.form.get("csrf_token") or request.headers.get("X-CSRFToken"))
        except (CsrfValidationError, CSRFError):
            return render_template("console/error.html", status=400, message=CSRF_REFUSED), 400
    return None


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    """A service's refusal (404 for another account's object, 403/400 with the API's message)
    as a console page."""
    detail = exc.body.get("detail") if isinstance(exc.body, dict) else None
    message = detail if isinstance(detail, str) else "Not found."
    if exc.status_code != 404 and detail is None:
        message = str(exc.body)
    return render_template(
        "console/error.html", status=exc.status_code, message=message
    ), exc.status_code


def init_app(app: Flask) -> None:
    for name in PAGES:
        importlib.import_module(name)
    app.register_blueprint(bp)
    app.before_request(_csrf)

    @app.get("/")
    @operation(
        "root",
        "``/`` opens the console when logged in; otherwise it stays what it was (404)",
        responses={302: Response(None, "To the console (a logged-in session).")},
        errors={404: "Without a logged-in session."},
    )
    def root():
        """``/`` opens the console when logged in; otherwise it stays what it was (404)."""
        from api.console.auth import current_user

        if current_user() is None:
            raise NotFound()
        return redirect(url_for("console.home"))
