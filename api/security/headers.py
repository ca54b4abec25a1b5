"""Security headers (docs/security.md): on every response ``X-Content-Type-Options: nosniff``;
on HTML pages a strict Content-Security-Policy (no scripts, inline styles only, no framing),
``X-Frame-Options: DENY`` and ``Referrer-Policy: no-referrer``; pages under ``/account/``
(they show new tokens) and the console's ``/ui/`` (its own CSP: its vendored scripts and
stylesheet, fetches to itself) are ``Cache-Control: no-store``. The session cookie is ``Secure`` when
the public URL is https, or when ``BERTH_SESSION_COOKIE_SECURE`` says so."""

from __future__ import annotations

import os

from flask import Flask, request

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


# the console (api/console) runs its own vendored scripts and stylesheet, and fetches from itself
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)


def _truthy(value) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def cookie_secure(app: Flask) -> bool:
    forced = app.config.get(
        "BERTH_SESSION_COOKIE_SECURE", os.environ.get("BERTH_SESSION_COOKIE_SECURE")
    )
    if forced not in (None, ""):
        return _truthy(forced)
    public = app.config.get("BERTH_PUBLIC_URL") or os.environ.get("BERTH_PUBLIC_URL") or ""
    return public.lower().startswith("https://")


def init_app(app: Flask) -> None:
    app.config["SESSION_COOKIE_SECURE"] = cookie_secure(app)

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if response.mimetype == "text/html":
            console = request.path.startswith("/ui/")
            response.headers.setdefault("Content-Security-Policy", CONSOLE_CSP if console else CSP)
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.path.startswith(("/account/", "/ui/")) and not request.path.startswith(
            "/ui/static/"
        ):
            response.headers["Cache-Control"] = "no-store"
        return response
