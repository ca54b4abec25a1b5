"""
Logbook shipper: spools telemetry samples on the device and sends them to the
Berth API (see :mod:`berth.telemetry` and ``docs/logbook.md``).

Samples arrive on the minion event bus::

    salt-call event.fire '{"records": [{"field": "obd.bat.voltage", "field_type": "float", "value": 13.5}]}' berth/logbook/record

Connection settings come from pillar ``berth:logbook`` (``url``, ``token`` --
a device-scope API token -- and ``device_id``), fetched fresh from the master
at start and every 5 minutes; engine options of the same names override the pillar. Minion configuration:

.. code-block:: yaml

    engines:
      - berth_shipper:
          interval: 10        # seconds between drains; default 10
          batch_size: 1000    # records per POST; default 1000
          spool: /var/cache/salt/minion/berth_logbook_spool   # default under cachedir (a directory)
"""

import logging
import os
from typing import TYPE_CHECKING, Any

import salt.minion
import salt.pillar
import salt.utils.event

from berth.telemetry import shipper
from berth.telemetry.spool import Spool

if TYPE_CHECKING:  # injected by Salt's loader when it loads this module
    __opts__: dict[str, Any]

log = logging.getLogger(__name__)


def start(
    interval: float = 10,
    batch_size: int = 1000,
    spool: str | None = None,
    url: str | None = None,
    token: str | None = None,
    device_id: int | None = None,
) -> None:
    unit_id = __opts__["id"]
    path = spool or os.path.join(__opts__["cachedir"], "berth_logbook_spool")
    overrides = {
        key: value
        for key, value in (("url", url), ("token", token), ("device_id", device_id))
        if value
    }

    def fresh_pillar_config() -> dict[str, Any]:
        # The engine process starts before the minion has connected (its opts lack
        # master_uri and its pillar may be empty) and never sees a pillar refresh,
        # so it asks the master for this minion's pillar itself.
        opts = dict(__opts__)
        opts.update(salt.minion.resolve_dns(opts))
        remote = salt.pillar.get_pillar(
            opts, opts.get("grains", {}), opts["id"], pillarenv=opts.get("pillarenv")
        )
        try:
            pillar = remote.compile_pillar()
        finally:
            remote.destroy()
        logbook = (pillar.get("berth") or {}).get("logbook") or {}
        return dict(logbook, **overrides)

    get_config = shipper.RefreshingConfig(fresh_pillar_config)

    bus = salt.utils.event.get_event("minion", opts=__opts__, listen=True)
    bus.subscribe(shipper.RECORD_TAG)

    def next_event(timeout: float) -> dict[str, Any] | None:
        event = bus.get_event(wait=timeout, tag=shipper.RECORD_TAG, full=True)
        return event["data"] if event else None

    log.info("berth_shipper on %s: spooling to %s, draining every %ss", unit_id, path, interval)
    try:
        shipper.run(Spool(path), unit_id, get_config, next_event, float(interval), int(batch_size))
    finally:
        bus.destroy()
