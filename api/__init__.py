"""Berth fleet API: ``create_app(config=None)``."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from api.errors import ApiError, JsonErrorsFlask, NotFound, register_error_handlers
from api.extensions import db, migrate
from api.limits import MAX_DB_ID
from api.settings import base_config

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations")


# the account page, the console (api/console) and ``/`` (it opens the console when logged in)
SESSION_PATHS = ("/account/", "/ui/")


class AccountPageSessions(SecureCookieSessionInterface):
    """Cookie sessions for the account page and the console only: API requests carry a token,
    so they skip the cookie work."""

    def open_session(self, app, request):
        if not request.path.startswith(SESSION_PATHS) and request.path != "/":
            return self.make_null_session(app)
        return super().open_session(app, request)


def _refuse_impossible_url_values(endpoint, values) -> None:
    """Before authentication and any query: an ``<int:...>`` id a database id column cannot
    hold (0, or beyond 2^31-1) is 404 like any unknown id, for every method. (The range is
    checked here, not in the converter: werkzeug answers a converter's refusal with 405 when
    another rule has the same path.) PostgreSQL cannot store or compare NUL in text."""
    for value in (values or {}).values():
        if isinstance(value, int) and not 1 <= value <= MAX_DB_ID:
            raise NotFound()
        if isinstance(value, str) and "\x00" in value:
            raise NotFound()
    if any("\x00" in v for v in request.args.values()):
        raise ApiError({"detail": "Null characters are not allowed in query parameters."}, 400)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    config = dict(config or {})
    instance_path = config.pop("INSTANCE_PATH", None) or os.environ.get("BERTH_INSTANCE_PATH")
    app = JsonErrorsFlask(
        __name__,
        static_folder=None,
        instance_path=os.path.abspath(instance_path) if instance_path else None,
    )
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.update(base_config(app.instance_path, config))
    config.pop("DATABASE_URL", None)
    config.pop("BERTH_TRUSTED_PROXIES", None)  # base_config checked it
    app.config.update(config)
    if app.config["BERTH_TRUSTED_PROXIES"]:
        proxies = app.config["BERTH_TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]  # Flask's documented way
            app.wsgi_app, x_for=proxies, x_proto=proxies
        )
    if isinstance(app.json, DefaultJSONProvider):
        app.json.sort_keys = False
    app.session_interface = AccountPageSessions()
    app.url_map.strict_slashes = True
    app.url_value_preprocessor(_refuse_impossible_url_values)

    from api import table_registry  # noqa: F401  (imported for its effect: every table on db.metadata)

    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR)
    register_error_handlers(app)

    # Every blueprint and feature, by name: what the API serves is read here.
    from api import (
        account_page,
        audit,
        console,
        execute,
        logbook,
        master,
        openapi,
        rollouts,
        security,
        worker,
    )
    from api.devices import views as devices
    from api.projects import views as projects
    from api.registries import views as registries
    from api.releases import views as releases
    from api.signing_keys import views as signing_keys

    for blueprint in (
        registries.bp,
        signing_keys.bp,
        projects.bp,
        releases.bp,
        devices.bp,
        openapi.bp,
        account_page.bp,
    ):
        app.register_blueprint(blueprint)
    # each registers its blueprint, OpenAPI paths and CLI commands
    for feature in (master, execute, logbook, audit, security, worker, rollouts, console):
        feature.init_app(app)

    from api import schema_registry

    app.extensions[openapi.COMPONENTS] = schema_registry.openapi_components

    from api.cli import register_cli

    register_cli(app)
    if (
        not logging.root.handlers
    ):  # e.g. under gunicorn or flask run; pytest and embedders bring their own
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("api").setLevel(app.config.get("LOG_LEVEL", "INFO"))
    return app
