"""Result delivery: which results a device reports, and how they reach the master.

Every result event (:mod:`berth.release.result`) is first queued on disk
(:func:`berth.release.commands.queue_result`), then the queue is sent oldest first; an event
leaves the queue only when the master's request channel took it (``event.fire_master`` with a
preload is a synchronous request, where ``event.send`` reports success even when the minion
drops the event). With the master away nothing is sent: the queue waits for the next flush
(the pre-pull schedule, the next apply, minion start). Each event is signed with the device's
report key (:mod:`berth.results`) as it is sent.

:func:`select` decides which results of an apply are reported (report selection): a no-op
apply reports nothing, a deferral once per release and holders, a recovered apply of another
release its own outcome.

``salt`` is the loader's ``__salt__`` of the caller (the ``docker`` execution module).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from berth import results
from berth.contract import EventTag, ReleaseOutcome
from berth.release import commands
from berth.release import pillar as release_pillar
from berth.release.result import ApplyResult, RecoveryResult
from berth.release.statefiles import read_json, write_json

log = logging.getLogger(__name__)

Salt = Mapping[str, Callable[..., Any]]
Opts = dict[str, Any]

RESULT_EVENT_TAG = EventTag.RELEASE_RESULT
# The deferral last reported ({release_id, holders}): not reported again while it lasts.
DEFERRED = "deferred-release.json"


def masterless(opts: Opts) -> bool:
    return opts.get("file_client") == "local" or not opts.get("master_uri")


def master_reachable(opts: Opts, salt: Salt) -> bool:
    """Whether results can be handed over now (masterless: to the local event bus)."""
    return masterless(opts) or bool(salt["minionutil.master_reachable"]())


def state_path(opts: Opts, name: str) -> Path:
    return Path(commands.state_dir(opts)) / name


def report_key(opts: Opts, salt: Salt) -> str | None:
    """The device's report key: pillar ``berth:report_key`` (kept on the device for the paths
    without the master), else the kept one; None when the device never had one."""
    key = release_pillar.get(salt, "berth:report_key", None)
    if results.valid_key(key):
        try:
            commands.keep_report_key(opts, key)
        except OSError as exc:
            log.warning("berth release: cannot keep the report key: %s", exc)
        return str(key)
    kept: str | None = commands.kept_report_key(opts)
    return kept


def fire(opts: Opts, salt: Salt, event: dict[str, Any], send: bool = True) -> bool:
    """Queue the result event on disk, then (``send``) send everything queued (oldest first).
    Returns whether the event was queued."""
    queued = True
    try:
        commands.queue_result(opts, event)
    except OSError as exc:
        queued = False
        log.warning(
            "berth release %s: cannot queue the result event: %s", event.get("release_id"), exc
        )
    if send:
        flush(opts, salt)
    return queued


def flush(opts: Opts, salt: Salt) -> int:
    """Send the queued result events (see the module's text); returns how many were sent."""
    if not master_reachable(opts, salt):
        log.info("berth release: master unreachable, queued result events kept for later")
        return 0
    key = report_key(opts, salt)
    if key is None:
        log.warning(
            "berth release: no report key (pillar berth:report_key) yet: results are sent "
            "unsigned and the API refuses them"
        )
    try:
        sent: int = commands.flush_results(opts, lambda data: _send(opts, salt, key, data))
    except OSError as exc:
        log.warning("berth release: cannot send queued result events: %s", exc)
        return 0
    return sent


def _send(opts: Opts, salt: Salt, key: str | None, data: dict[str, Any]) -> bool:
    """Hand one event over; never raises (reporting must not break the apply)."""
    if key is not None:
        data = results.signed(key, opts["id"], data)
    try:
        if masterless(opts):
            sent = salt["event.send"](RESULT_EVENT_TAG, data)
        else:
            sent = salt["event.fire_master"](
                data, RESULT_EVENT_TAG, preload={"berth": "acknowledged"}
            )
    except Exception as exc:  # noqa: BLE001 - never let reporting break the apply
        log.warning(
            "berth release %s: cannot fire %s: %s", data.get("release_id"), RESULT_EVENT_TAG, exc
        )
        return False
    if not sent:
        log.warning(
            "berth release %s: result event %s was not sent, kept for the next run",
            data.get("release_id"),
            RESULT_EVENT_TAG,
        )
    return bool(sent)


def select(
    opts: Opts, result: ApplyResult, recovered: RecoveryResult | None
) -> list[dict[str, Any]]:
    """The result events an apply reports, in order: an interrupted apply of another release
    that it finished or rolled back first, then its own result when it did something (a
    deferral once per release and holders); an interrupted apply of this very release that
    ended with it running is a success even when this apply had nothing left to do."""
    events = []
    same = recovered is not None and str(recovered.release_id) == str(result.release_id)
    if recovered is not None and not same:
        events.append(recovered.event())
    if result.outcome != ReleaseOutcome.UNCHANGED and _news(opts, result):
        events.append(result.event())
    elif same:
        events.append(result.event(ReleaseOutcome.SUCCEEDED))
    return events


def _news(opts: Opts, result: ApplyResult) -> bool:
    """Whether ``result`` is worth a report: a deferral is reported once per release and
    holders (the sleep hook asks again and again while it waits for the lock)."""
    path = state_path(opts, DEFERRED)
    if result.outcome != ReleaseOutcome.DEFERRED:
        path.unlink(missing_ok=True)
        return True
    seen = {"release_id": str(result.release_id), "holders": result.holders}
    if read_json(path) == seen:
        return False
    write_json(path, seen)
    return True
