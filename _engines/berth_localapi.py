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
"""

import logging

from berth import localapi

log = logging.getLogger(__name__)


def start(host=localapi.DEFAULT_HOST, port=localapi.DEFAULT_PORT):
    unit_id = __opts__["id"]
    try:
        localapi.ensure_minion_id_file(localapi.minion_id_path(__opts__), unit_id)
    except OSError as exc:
        log.warning("berth_localapi on %s: cannot write the minion_id file: %s", unit_id, exc)
    # __salt__ is a loader-context proxy that resolves only in this thread;
    # the HTTP server's worker threads need the loader object itself.
    functions = __salt__.value() if hasattr(__salt__, "value") else __salt__
    app = localapi.LocalAPI(unit_id, functions, opts=dict(__opts__))
    try:
        httpd = localapi.server(app, host, port)
    except (ValueError, OSError) as exc:
        # Returning ends the engine process; the minion's process manager
        # starts it again later (e.g. once the port is free).
        log.error("berth_localapi on %s: cannot serve on %s:%s: %s", unit_id, host, port, exc)
        return
    log.info("berth_localapi on %s: listening on http://%s:%s/", unit_id, host, httpd.server_port)
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()
