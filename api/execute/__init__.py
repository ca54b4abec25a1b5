"""Remote commands on devices through salt-api (docs/fleet-api.md "Execute")."""

from __future__ import annotations

from flask import Flask

from api import worker_jobs as worker


def init_app(app: Flask) -> None:
    from api.execute import cli, service, webhooks
    from api.execute.views import bp

    app.register_blueprint(bp)
    cli.register(app)
    worker.register_pass(app, service.follow_jobs)
    worker.register_delivery(
        app,
        "webhook",
        worker.Delivery(
            deliver=webhooks.deliver_message,
            failure=webhooks.WebhookFailed,
            max_attempts=("BERTH_WEBHOOK_MAX_ATTEMPTS", webhooks.DEFAULT_MAX_ATTEMPTS),
        ),
    )
