"""Logbook: device telemetry storage with aggregated reads (docs/logbook.md)."""


def init_app(app):
    from .views import bp

    app.register_blueprint(bp)
