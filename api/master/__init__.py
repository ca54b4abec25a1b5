"""Master-scope API: pillar per minion, deployment reports, device sync (docs/architecture.md)."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    import api.master.logbook_settings  # noqa: F401  (registers the logbook_shipper_tokens table)
    import api.outbox  # noqa: F401  (registers the outbox table)
    from api.master.views import bp

    app.register_blueprint(bp)
