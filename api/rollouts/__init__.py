"""Rollouts: device tags, health-gated waves with automatic halt, operator actions,
rollout webhooks (docs/rollouts.md). The states are in ``berth.contract``."""

from __future__ import annotations

from flask import Flask

from api import worker_jobs as worker

DEFAULT_RECOUNT_INTERVAL = 3600  # BERTH_ROLLOUT_RECOUNT_INTERVAL, seconds


def init_app(app: Flask) -> None:
    from api.rollouts import cli, counters, service
    from api.rollouts.views import bp

    app.register_blueprint(bp)
    cli.register(app)

    def tick(client: object) -> int:
        service.tick()  # a timed-out wave may halt its rollout (and queue outbox rows)
        return 0  # the outbox pass that follows does the work it queued

    worker.register_pass(app, tick)
    # every rollout's wave counters checked against the rows; drift logged and corrected
    worker.register_periodic(
        app, counters.check_all, ("BERTH_ROLLOUT_RECOUNT_INTERVAL", DEFAULT_RECOUNT_INTERVAL)
    )
