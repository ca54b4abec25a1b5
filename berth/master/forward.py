"""Master side: forward device release results to the API; spool them while it is unreachable."""

from __future__ import annotations

import logging

from berth.master.apiclient import ApiClient, ApiError
from berth.master.report_spool import Spool
from berth.results import SIGNATURE

log = logging.getLogger(__name__)

# the device's signature travels untouched: the API checks it (berth/results.py)
REPORT_FIELDS = (
    "release_id",
    "version_hash",
    "outcome",
    "error",
    "containers",
    "finished_at",
    SIGNATURE,
)


def build_report(minion_id: str, result: dict) -> dict:
    """The API's report body from a ``berth/release/result`` event's data (its ``signature``
    included: only the device's signature makes the API accept it)."""
    if not minion_id:
        raise ValueError("report: minion_id is required")
    if not isinstance(result, dict):
        raise ValueError(
            f"report from {minion_id}: result must be a mapping, got {type(result).__name__}"
        )
    missing = [field for field in ("release_id", "outcome") if result.get(field) in (None, "")]
    if missing:
        raise ValueError(f"report from {minion_id}: missing {', '.join(missing)}")
    report = {"unit_id": minion_id}
    for field in REPORT_FIELDS:
        report[field] = result.get(field)
    if report[SIGNATURE] is None:
        del report[SIGNATURE]  # unsigned: the API refuses it and says so
    if report["containers"] is None:
        report["containers"] = []
    return report


def describe(report: dict) -> str:
    return (
        f"device {report.get('unit_id')} release {report.get('release_id')} "
        f"({report.get('version_hash')}) {report.get('outcome')}"
    )


def deliver(client: ApiClient, spool: Spool, report: dict) -> str:
    """Send one report; ``"sent"``, ``"spooled"`` (retry later) or ``"rejected"`` (the API refused it)."""
    with spool.locked():
        # Keep reports in order: an older spooled result must not overwrite a newer one.
        if spool.entries():
            _flush(client, spool)
        if spool.entries():
            spool.put(report)
            log.warning("berth: API still unreachable; spooled report for %s", describe(report))
            return "spooled"
        try:
            client.report_deployment(report)
        except ApiError as exc:
            if exc.retryable:
                path = spool.put(report)
                log.warning(
                    "berth: could not report %s (%s); spooled as %s",
                    describe(report),
                    exc,
                    path.name,
                )
                return "spooled"
            log.error("berth: API refused report for %s: %s", describe(report), exc)
            spool.reject(spool.put(report))
            return "rejected"
    log.info("berth: reported %s to the API", describe(report))
    return "sent"


def flush(client: ApiClient, spool: Spool) -> dict:
    """Re-send spooled reports oldest first; stop at the first one the API cannot take yet."""
    with spool.locked():
        return _flush(client, spool)


def _flush(client: ApiClient, spool: Spool) -> dict:
    counts = {"sent": 0, "rejected": 0, "remaining": 0}
    entries = spool.entries()
    for index, path in enumerate(entries):
        try:
            report = spool.load(path)
        except (OSError, ValueError) as exc:
            log.error("berth: unreadable spooled report %s (%s); moved aside", path.name, exc)
            spool.reject(path)
            counts["rejected"] += 1
            continue
        try:
            client.report_deployment(report)
        except ApiError as exc:
            if exc.retryable:
                counts["remaining"] = len(entries) - index
                log.info(
                    "berth: API unavailable (%s); %d spooled report(s) kept",
                    exc,
                    counts["remaining"],
                )
                return counts
            log.error("berth: API refused spooled report for %s: %s", describe(report), exc)
            spool.reject(path)
            counts["rejected"] += 1
            continue
        path.unlink(missing_ok=True)
        counts["sent"] += 1
        log.info("berth: delivered spooled report for %s", describe(report))
    return counts
