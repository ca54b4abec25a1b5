"""Remote commands on devices through salt-api (SPEC §2 Execute), and the outbox worker."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    import api.outbox  # noqa: F401  (registers the outbox table)
    from api.execute import cli, models  # noqa: F401
    from api.execute.views import bp
    from api.worker import worker_command

    app.register_blueprint(bp)
    from api import openapi
    from api.execute.openapi import PATHS, SCHEMAS

    openapi.add_paths(app, PATHS, SCHEMAS)
    cli.register(app)
    app.cli.add_command(worker_command)
