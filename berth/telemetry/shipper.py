"""The shipper loop run by the ``berth_shipper`` engine on the device.

It spools every sample that arrives on the minion's event bus (tag
``berth/logbook/record``) and drains the spool to the API every ``interval``
seconds. Offline, the spool simply grows; the next successful drain sends it
oldest first.
"""

import logging
import time
from collections.abc import Callable
from typing import Any

from berth.contract import EventTag

from .sender import Sender, drain
from .spool import Spool, SpoolError

log = logging.getLogger(__name__)

RECORD_TAG = EventTag.LOGBOOK_RECORD.value
CONFIG_KEYS = ("url", "token", "device_id")


def records_of(data: object) -> list[Any]:
    """Event data -> records: ``{"records": [...]}`` or a single record mapping."""
    if isinstance(data, dict) and isinstance(data.get("records"), list):
        records: list[Any] = data["records"]
        return records
    if isinstance(data, dict) and "field" in data:
        return [{key: data[key] for key in ("ts", "field", "field_type", "value") if key in data}]
    raise SpoolError("event data holds neither 'records' nor a single record")


class RefreshingConfig:
    """``fetch()`` -> {url, token, device_id}, called again after ``max_age`` seconds,
    or after ``retry`` seconds while incomplete (engines start before the minion
    has its pillar, and never see a pillar refresh otherwise)."""

    def __init__(
        self,
        fetch: Callable[[], dict[str, Any] | None],
        max_age: float = 300.0,
        retry: float = 10.0,
    ) -> None:
        self.fetch, self.max_age, self.retry = fetch, max_age, retry
        self.value: dict[str, Any] = {}
        self.fetched = float("-inf")

    def __call__(self) -> dict[str, Any]:
        age = time.monotonic() - self.fetched
        if age >= self.max_age or (missing_config(self.value) and age >= self.retry):
            self.fetched = time.monotonic()
            try:
                self.value = self.fetch() or {}
            except Exception as exc:  # noqa: BLE001 - a master hiccup must not end the engine
                log.warning("logbook: cannot read the pillar berth:logbook: %s", exc)
        return self.value


def missing_config(config: dict[str, Any] | None) -> list[str]:
    return [key for key in CONFIG_KEYS if not (config or {}).get(key)]


def run(
    spool: Spool,
    unit_id: str,
    get_config: Callable[[], dict[str, Any] | None],
    next_event: Callable[[float], object],
    interval: float = 10.0,
    batch_size: int = 1000,
    keep_running: Callable[[], bool] = lambda: True,
) -> None:
    """``next_event(timeout)`` -> event data or None; ``get_config()`` -> {url, token, device_id}."""
    last_drain = float("-inf")
    warned = False
    while keep_running():
        wait = max(0.0, last_drain + interval - time.monotonic())
        data = next_event(wait)
        if data is not None:
            try:
                count = spool.add(records_of(data))
                log.debug("logbook on %s: spooled %d records", unit_id, count)
            except SpoolError as exc:
                log.warning("logbook on %s: dropped a malformed record event: %s", unit_id, exc)
        if time.monotonic() - last_drain < interval:
            continue
        last_drain = time.monotonic()
        config = get_config() or {}
        missing = missing_config(config)
        if missing:
            if not warned:
                log.warning(
                    "logbook on %s: not sending, pillar berth:logbook lacks %s",
                    unit_id,
                    ", ".join(missing),
                )
                warned = True
            continue
        warned = False
        sent = drain(spool, Sender(config["url"], config["token"], config["device_id"]), batch_size)
        if sent:
            log.info("logbook on %s: sent %d records to %s", unit_id, sent, config["url"])
