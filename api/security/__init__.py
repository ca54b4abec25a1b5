"""Security features (docs/security.md): the tenancy model (device enrollment, enrollment
tokens, platform master tokens), login hardening and HTML security headers."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from api.security import cli, headers
    from api.security.enrollment_views import bp

    app.register_blueprint(bp)
    headers.init_app(app)
    from api.security import logsafe

    logsafe.install()
    cli.register(app)
