"""
On-device local API: ``GET /`` answers the unit id, ``POST
/dongle/<unit_id>/execute/`` runs a command through this minion's execution
modules (see :mod:`berth.localapi` and ``docs/device.md``).

Minion configuration:

.. code-block:: yaml

    engines:
      - berth_localapi:
          host: 127.0.0.1   # bind address; default 127.0.0.1
          port: 9000        # default 9000
          commands: [...]   # allow-list entries (docs/security.md); default: the safe set
                            # plus what the sleep hook needs. ["*"] = every command (risky)
          token_file: /etc/salt/berth-local.token   # default: berth-local.token next to the
                            # minion config, made (mode 0600) at first start. Commands beyond
                            # reading (state runs, failure reports, the salt-minion's logs, ...)
                            # need its content in header X-Berth-Local-Token
          retry_seconds: 30 # pause before a retry when it cannot listen
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from berth import localapi

if TYPE_CHECKING:  # injected by Salt's loader when it loads this module
    __opts__: dict[str, Any]
    __salt__: dict[str, Callable[..., Any]]

log = logging.getLogger(__name__)


def start(
    host: str = localapi.DEFAULT_HOST,
    port: int = localapi.DEFAULT_PORT,
    commands: list[str] | None = None,
    retry_seconds: float = 30,
    token_file: str | None = None,
) -> None:
    unit_id = __opts__["id"]
    try:
        localapi.ensure_minion_id_file(localapi.minion_id_path(__opts__), unit_id)
    except OSError as exc:
        log.warning("berth_localapi on %s: cannot write the minion_id file: %s", unit_id, exc)
    try:
        # A loader of its own rather than __salt__: the engine's opts were
        # copied before the minion connected and lack the master's address
        # that state.sls needs (and __salt__, a loader-context proxy, does not
        # resolve in the HTTP server's worker threads).
        functions, opts = localapi.minion_functions(__opts__)
        app = localapi.LocalAPI(
            unit_id,
            functions,
            opts=opts,
            commands=commands,
            token=localapi.read_local_token(token_file or localapi.default_token_file(__opts__)),
        )
        httpd = localapi.server(app, host, port)
    except (ValueError, OSError) as exc:
        # Returning ends the engine process and the minion's process manager
        # starts it again (e.g. once the port is free); the pause keeps that
        # from filling the log.
        log.error(
            "berth_localapi on %s: cannot serve on %s:%s: %s (trying again in %ss)",
            unit_id,
            host,
            port,
            exc,
            retry_seconds,
        )
        try:
            time.sleep(max(0.0, float(retry_seconds)))
        except (TypeError, ValueError):
            log.error(
                "berth_localapi on %s: retry_seconds %r is not a number; using 30",
                unit_id,
                retry_seconds,
            )
            time.sleep(30)
        return
    log.info("berth_localapi on %s: listening on http://%s:%s/", unit_id, host, httpd.port)
    # sign in with the master now, not at the first state run (the sleep hook's apply)
    threading.Thread(
        target=localapi.sign_in, args=(opts,), name="berth-localapi-sign-in", daemon=True
    ).start()
    if "*" in app.commands:
        log.warning(
            "berth_localapi on %s: every command allowed on %s; any process that can read the "
            "token_file can run any command as root (docs/security.md)",
            unit_id,
            host,
        )
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()
