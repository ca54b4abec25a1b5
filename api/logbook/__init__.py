"""Logbook: device telemetry storage with aggregated reads (docs/logbook.md)."""


def init_app(app):
    from . import tables  # noqa: F401  (registers the tables on db.metadata)
    from .views import bp

    app.register_blueprint(bp)
