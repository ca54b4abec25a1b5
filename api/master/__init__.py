"""Master-scope API: pillar per minion, deployment reports, device sync (docs/architecture.md)."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from api.master.views import bp

    app.register_blueprint(bp)
