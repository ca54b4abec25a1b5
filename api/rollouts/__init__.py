"""Rollouts: device tags, health-gated waves with automatic halt, operator actions,
rollout webhooks (docs/rollouts.md). The states are in ``berth.contract``."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    from api.rollouts import cli
    from api.rollouts.views import bp

    app.register_blueprint(bp)
    cli.register(app)
