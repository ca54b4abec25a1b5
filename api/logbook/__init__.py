"""Logbook: device telemetry storage with aggregated reads (docs/logbook.md)."""


def init_app(app):
    from api import openapi

    from .openapi import PATHS, SCHEMAS
    from .views import bp

    app.register_blueprint(bp)
    openapi.add_paths(app, PATHS, SCHEMAS)
