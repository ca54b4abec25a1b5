"""Master side: forward device release results to the API; spool them while it is unreachable.
On a lower master of a syndic topology also the returns of the API's execute jobs."""

from __future__ import annotations

import json
import logging
import pathlib
import time
from collections.abc import Callable
from typing import Any

from berth.contract import MAX_FORWARDED_RETURN_CHARS, MAX_REPORT_BATCH
from berth.master.apiclient import ApiClient, ApiError
from berth.master.report_spool import Spool
from berth.results import SIGNATURE

log = logging.getLogger(__name__)

# Reports in one list unless ``berth_api: batch_size`` says otherwise (at most MAX_REPORT_BATCH): a
# list is one transaction whose time grows with its length (docs/rollouts.md: 4-9 ms a report on a
# loaded 2-core host), and it must be answered within ``berth_api: timeout`` or it is sent again.
DEFAULT_BATCH = 100

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


def build_report(minion_id: str, result: dict[str, Any]) -> dict[str, Any]:
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
    report: dict[str, Any] = {"unit_id": minion_id}
    for field in REPORT_FIELDS:
        report[field] = result.get(field)
    if report[SIGNATURE] is None:
        del report[SIGNATURE]  # unsigned: the API refuses it and says so
    if report["containers"] is None:
        report["containers"] = []
    return report


def describe(report: dict[str, Any]) -> str:
    return (
        f"device {report.get('unit_id')} release {report.get('release_id')} "
        f"({report.get('version_hash')}) {report.get('outcome')}"
    )


def batch_size(conf: dict[str, Any]) -> int:
    """``berth_api: batch_size`` (default DEFAULT_BATCH, at most the API's ``MAX_REPORT_BATCH``)."""
    value = conf.get("batch_size") or DEFAULT_BATCH
    try:
        size = int(value)
    except (TypeError, ValueError):
        log.warning("berth_api: batch_size %.40r is not a number; using %d", value, DEFAULT_BATCH)
        size = DEFAULT_BATCH
    return max(1, min(size, MAX_REPORT_BATCH))


def deliver(
    client: ApiClient, spool: Spool, report: dict[str, Any], size: int = DEFAULT_BATCH
) -> str:
    """Send one report (the reactor's ``berth.report``). ``"sent"``, ``"spooled"`` (the API
    cannot take it now: retried later), ``"rejected"`` (the API refused it: moved aside) or
    ``"batched"`` (put in the spool while another ``berth.report``/``berth.flush`` held it: that
    one sends it, in a list with the others that arrived meanwhile).

    Quiet (spool empty, not busy): sent at once, alone, as it comes. In a burst, one caller holds
    the spool and sends what piles up there in lists, so N results cost a few requests
    (docs/fleet.md "Runners")."""
    status = None
    with spool.locked(blocking=False) as held:
        if held and not spool.entries():
            status = _send_alone(client, spool, report)
    if status is not None:
        if status != "spooled" and spool.entries():
            _drain(client, spool, size, blocking=False)  # reports put while this one was sent
        return status
    # Behind spooled reports (kept in order: an older result must not overwrite a newer one),
    # or the spool is busy: put it there first, then send the spool unless another holds it.
    path = spool.put(report)
    if _drain(client, spool, size, blocking=False) is None:
        log.info("berth: report for %s left to the spool's sender", describe(report))
        return "batched"
    return spool.status(path)


def submit(
    client: ApiClient, spool: Spool, reports: list[dict[str, Any]], size: int = DEFAULT_BATCH
) -> list[str]:
    """Send many reports (``berth.resync``) through the spool, in lists; their statuses."""
    paths = [spool.put(report) for report in reports]
    _drain(client, spool, size, blocking=True)
    return [spool.status(path) for path in paths]


def flush(client: ApiClient, spool: Spool, size: int = DEFAULT_BATCH) -> dict[str, Any]:
    """Re-send spooled reports oldest first, in lists of up to ``size``; stop at the first
    request the API cannot take yet."""
    return _drain(client, spool, size, blocking=True) or {}  # blocking: never None


def _send_alone(client: ApiClient, spool: Spool, report: dict[str, Any]) -> str:
    try:
        client.report_deployment(report)
    except ApiError as exc:
        if exc.retryable:
            path = spool.put(report)
            log.warning(
                "berth: could not report %s (%s); spooled as %s", describe(report), exc, path.name
            )
            return "spooled"
        log.error("berth: API refused report for %s: %s", describe(report), exc)
        spool.reject(spool.put(report))
        return "rejected"
    log.info("berth: reported %s to the API", describe(report))
    return "sent"


def _drain(client: ApiClient, spool: Spool, size: int, blocking: bool) -> dict[str, Any] | None:
    """Send the spool while holding it; None when another holds it. After letting it go, look
    again: a caller that put a report while this one held the spool left it to this one (it
    found the spool busy), so it is sent now rather than by the next scheduled flush."""
    counts: dict[str, Any] | None = None
    while True:
        with spool.locked(blocking) as held:
            if not held:
                return counts
            done = _flush(client, spool, size)
        counts = {k: (counts or {}).get(k, 0) + v for k, v in done.items()}
        counts["remaining"] = done["remaining"]
        if done["remaining"] or not spool.entries():
            return counts
        blocking = False


def _flush(client: ApiClient, spool: Spool, size: int) -> dict[str, Any]:
    counts = {"sent": 0, "rejected": 0, "remaining": 0}
    entries = spool.entries()
    for start in range(0, len(entries), size):
        batch = []
        for path in entries[start : start + size]:
            try:
                batch.append((path, spool.load(path)))
            except (OSError, ValueError) as exc:
                log.error("berth: unreadable spooled report %s (%s); moved aside", path.name, exc)
                spool.reject(path)
                counts["rejected"] += 1
        if batch and not _send_batch(client, spool, batch, counts):
            counts["remaining"] = len(spool.entries())
            log.info("berth: API unavailable; %d spooled report(s) kept", counts["remaining"])
            return counts
    return counts


def _send_batch(client: ApiClient, spool: Spool, batch: list[Any], counts: dict[str, Any]) -> bool:
    """Send ``batch`` (``[(path, report)]``) and settle each: sent -> removed, refused -> moved
    aside, as the report alone would be. False: the API cannot take them now (all kept)."""
    if len(batch) == 1:
        path, report = batch[0]
        return _settle(spool, path, report, _answer(client.report_deployment, report), counts)
    try:
        answers = client.report_deployments([report for _, report in batch])
    except ApiError as exc:
        if exc.retryable:
            log.info("berth: API unavailable (%s)", exc)
            return False
        named = refused_items(exc.body, len(batch))
        if named is None:
            # not an answer about the items (an API that takes no lists, a body too large):
            # each is sent alone, as before lists
            log.warning(
                "berth: API refused a list of %d reports (%s); sending each", len(batch), exc
            )
            return all(_send_batch(client, spool, [item], counts) for item in batch)
        for index in named:
            path, report = batch[index]
            _settle(spool, path, report, exc.status, counts, exc.body.get(str(index)))
        rest = [item for index, item in enumerate(batch) if index not in named]
        return _send_batch(client, spool, rest, counts) if rest else True
    statuses = item_statuses(answers, len(batch))
    if statuses is None:
        # recorded or not, the answer does not say: keep them all (reports are idempotent)
        log.error("berth: unexpected answer to a list of %d reports; kept", len(batch))
        return False
    kept = False
    for (path, report), (status, errors) in zip(batch, statuses, strict=True):
        kept |= not _settle(spool, path, report, status, counts, errors)
    return not kept


def _answer(send: Callable[[dict[str, Any]], object], report: dict[str, Any]) -> int | ApiError:
    try:
        send(report)
    except ApiError as exc:
        return exc
    return 200


def _settle(
    spool: Spool,
    path: pathlib.Path,
    report: dict[str, Any],
    outcome: int | ApiError | None,
    counts: dict[str, Any],
    errors: object = None,
) -> bool:
    """Apply one report's ``outcome`` (an HTTP status or the ApiError) to its spool file.
    False when it is kept for a retry."""
    status = outcome.status if isinstance(outcome, ApiError) else outcome
    if status is not None and 200 <= status < 300:
        spool.ack(path)
        counts["sent"] += 1
        log.info("berth: delivered spooled report for %s", describe(report))
        return True
    error = outcome if isinstance(outcome, ApiError) else ApiError(f"{status}: {errors}", status)
    if error.retryable:
        return False
    log.error("berth: API refused spooled report for %s: %s", describe(report), error)
    spool.reject(path)
    counts["rejected"] += 1
    return True


def refused_items(body: object, count: int) -> set[int] | None:
    """The items a whole-list 400 names (``{"3": {...}}``: they break the schema), or None when
    the error is not about items."""
    if not isinstance(body, dict) or not body:
        return None
    named = set()
    for key in body:
        if not (isinstance(key, str) and key.isdigit() and int(key) < count):
            return None
        named.add(int(key))
    return named


def item_statuses(answers: object, count: int) -> list[tuple[int, object]] | None:
    """``[(status, errors)]`` of a list's answer, in the order sent; None when the answer is not
    one well-formed result per report."""
    if not isinstance(answers, list) or len(answers) != count:
        return None
    statuses = []
    for index, answer in enumerate(answers):
        if not (
            isinstance(answer, dict)
            and answer.get("index") == index
            and isinstance(answer.get("status"), int)
            and not isinstance(answer.get("status"), bool)
        ):
            return None
        statuses.append((answer["status"], answer.get("errors")))
    return statuses


# -- the return path of a syndic topology (docs/scale.md "The path up") ---------------------------

RETURN_FIELDS = ("fun", "fun_args", "return", "retcode", "success")

# How long ``cached_return`` waits for the job cache: Salt fires ``salt/job/<jid>/ret/<id>``
# before it writes the return to the master job cache (salt/utils/job.py ``_store_job``).
CACHE_WAIT = 5.0
CACHE_POLL = 0.2


def cached_return(
    get_jid: Callable[[str], Any],
    get_load: Callable[[str], Any],
    jid: str,
    minion_id: str,
    wait: float | None = None,
) -> dict[str, Any] | None:
    """The return of job ``jid`` from ``minion_id`` as this master's job cache holds it
    (``get_jid``/``get_load``: the ``master_job_cache`` returner's functions), or None when the
    cache has none within ``wait`` seconds (``CACHE_WAIT``).

    Never the ``salt/job/<jid>/ret/<id>`` event's data: any minion can fire that event with
    another device's id and jid (the nested ``events`` form of ``_minion_event``); Salt writes a
    return to the cache only from the return request itself (``AESFuncs._return``), whose ``id``
    the transport checked (docs/security.md "2. A device reports only for itself")."""
    deadline = time.monotonic() + (CACHE_WAIT if wait is None else wait)
    while True:
        try:
            returns = get_jid(jid)
        except OSError as exc:  # read again until the deadline
            log.warning("berth: job cache unreadable for %s (%s)", jid, exc)
            returns = None
        entry = returns.get(minion_id) if isinstance(returns, dict) else None
        if isinstance(entry, dict):
            break
        if time.monotonic() >= deadline:
            return None
        time.sleep(CACHE_POLL)
    ret = {field: entry.get(field) for field in ("return", "retcode", "success")}
    load = get_load(jid)
    load = load if isinstance(load, dict) else {}
    ret["fun"] = load.get("fun") if isinstance(load.get("fun"), str) else None
    ret["fun_args"] = load.get("arg") if isinstance(load.get("arg"), list) else []
    return ret


def build_return(minion_id: str, jid: str, ret: dict[str, Any]) -> dict[str, Any]:
    """The body of ``POST /master/execute/returns/`` from the return ``ret`` of ``minion_id``
    read from the job cache (``cached_return``). A ``return`` larger than the API takes
    (``berth.contract.MAX_FORWARDED_RETURN_CHARS`` as JSON) is replaced by a note saying so."""
    check_return_ids(minion_id, jid)
    if not isinstance(ret, dict):
        raise ValueError(f"forward_return from {minion_id}: not a mapping")
    response = {field: ret.get(field) for field in RETURN_FIELDS}
    if not isinstance(response["fun_args"], list):
        response["fun_args"] = []
    if not isinstance(response["retcode"], int) or isinstance(response["retcode"], bool):
        response["retcode"] = None
    if not isinstance(response["success"], bool):
        response["success"] = None
    size = len(json.dumps(response, separators=(",", ":"), default=str))
    if size > MAX_FORWARDED_RETURN_CHARS:
        response["return"] = (
            f"(a return of {size} characters as JSON: more than the API takes, "
            f"{MAX_FORWARDED_RETURN_CHARS}; not forwarded)"
        )
        response["fun_args"] = []
    return {"unit_id": minion_id, "jid": jid, "response": response}


def check_return_ids(minion_id: object, jid: object) -> None:
    if not minion_id or not isinstance(minion_id, str) or not isinstance(jid, str):
        raise ValueError(f"forward_return: a minion id and a jid are required ({jid!r})")
    if not jid.isdigit() or len(jid) > 64 or len(minion_id) > 255:
        raise ValueError(f"forward_return: not a jid and minion id ({jid!r}, {minion_id!r:.80})")


def forward_return(client: ApiClient, body: dict[str, Any]) -> str:
    """Send one return (the reactor's ``berth.forward_return``): ``"recorded"`` (it finished the
    job), ``"finished"`` (the job had finished), ``"unknown"`` (the API published no such job to
    that device through this master: an outbox step, a job of someone else; 404) or
    ``"not_delivered"`` (the API did not answer or refused: a return is not spooled, the job ends in TIMEOUT)."""
    try:
        answer = client.forward_return(body)
    except ApiError as exc:
        if exc.status == 404:
            log.debug(
                "berth: return of %s from %s is no execute job of the API's",
                body["jid"],
                body["unit_id"],
            )
            return "unknown"
        log.warning(
            "berth: could not forward the return of %s from %s: %s",
            body["jid"],
            body["unit_id"],
            exc,
        )
        return "not_delivered"
    log.info("berth: forwarded the return of %s from %s", body["jid"], body["unit_id"])
    return "recorded" if answer.get("recorded") else "finished"
