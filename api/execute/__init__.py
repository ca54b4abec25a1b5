"""Remote commands on devices through salt-api (docs/fleet-api.md "Execute")."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from api.execute import cli
    from api.execute.views import bp

    app.register_blueprint(bp)
    cli.register(app)
