"""``flask --app api worker``: drains the outbox and follows execute jobs.

Everything the worker does is read from the database on every pass, so it can be
stopped, restarted or run twice (PostgreSQL) without losing or duplicating work:

* salt outbox messages -> salt-api ``local_async`` (batched list targets), step by step,
  retried with backoff until delivered; each step under a jid committed before it is
  published, so a worker killed mid-publish is taken over without a second publish;
* execute jobs with a ``callback_url``, and any job past its deadline -> looked up via
  salt-api, marked COMMAND_EXECUTED / TIMEOUT, their webhook queued;
* webhook outbox messages -> signed POST, retried with backoff;
* rollouts: a timed-out wave may halt its rollout (every pass); every rollout's wave counters
  are checked against the rows (``BERTH_ROLLOUT_RECOUNT_INTERVAL`` seconds, default 3600; any
  drift is logged and corrected);
* SQLite: the query planner's statistics refreshed at start and hourly (:func:`analyze_sqlite`;
  PostgreSQL's autovacuum does that itself).

The salt messages, the purge and ``ANALYZE`` are the worker's own; everything else is a job a
feature registers from its ``init_app`` through :mod:`api.worker_jobs`, so this module and
:mod:`api.outbox` import no feature, and no feature imports this module.
"""

from __future__ import annotations

import logging
import signal
import time
from datetime import datetime, timedelta

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import delete, or_

from api.audit import not_audited
from api.extensions import db, rowcount
from api.outbox import OutboxMessage, backoff, due_messages
from api.salt_client import SaltApiClient, SaltApiError, current_client, new_jid
from api.types import utcnow
from api.worker_jobs import jobs

log = logging.getLogger(__name__)

# Between the steps of a salt message: how often to look at the previous step's job,
# and how long to wait at most for minions that do not return (offline ones never do).
STEP_POLL = timedelta(seconds=1)
DEFAULT_STEP_WAIT = 30


def _config_number(name: str, default: float) -> float:
    import os

    value = current_app.config.get(name) or os.environ.get(name)
    return float(value) if value not in (None, "") else default


def _client() -> SaltApiClient | None:
    try:
        return current_client()
    except SaltApiError as exc:
        log.warning("worker: %s", exc)
        return None


def _advance_salt(msg: OutboxMessage, client: SaltApiClient | None, now: datetime) -> None:
    """Send the message's next step, or wait for the previous one. Raises SaltApiError to retry."""
    if client is None:
        raise SaltApiError("salt-api is not configured (BERTH_SALT_API_URL/USER/PASSWORD)")
    payload = dict(msg.payload)
    steps, step = payload["steps"], payload["step"]
    if payload.get("jid"):
        sent_at = datetime.fromisoformat(payload["sent_at"])
        step_wait = timedelta(seconds=_config_number("BERTH_OUTBOX_STEP_WAIT", DEFAULT_STEP_WAIT))
        if now - sent_at < step_wait:
            info = client.job(payload["jid"])
            # A master of masters knows no minion below its syndics: its job names no targets,
            # so wait for the minions the message names (docs/scale.md "Salt syndic tiers").
            expected = set(info.minions) or set(payload["minions"])
            if info.found and not expected <= set(info.returns):
                msg.next_attempt_at = now + STEP_POLL
                return
        step, payload["jid"] = step + 1, None
    if step < len(steps):
        fun = steps[step][0]
        payload["step"] = step
        jid, minions = _publish_once(msg, payload, step, client, now)
        log.info(
            "outbox %s (%s): %s sent to %d of %d minion(s), jid %s",
            msg.id,
            msg.reason,
            fun,
            len(minions),
            len(payload["minions"]),
            jid,
        )
        if jid is None:
            # The master accepts none of these minions yet; they catch up on minion start.
            step = len(steps)
        else:
            payload.update(jid=jid, sent_at=now.isoformat(), jids=[*payload.get("jids", []), jid])
    payload["step"] = step
    msg.payload = payload
    last_step_sent = step >= len(steps) - 1
    if last_step_sent:
        msg.delivered_at = now
        log.info("outbox %s (%s): delivered", msg.id, msg.reason)
    else:
        msg.next_attempt_at = now + STEP_POLL


def _lease() -> timedelta:
    """How long a message stays claimed by the worker that is publishing its step: well past
    salt-api's answer time, so only a worker that died loses it."""
    timeout = _config_number("BERTH_SALT_API_TIMEOUT", 10)
    return timedelta(seconds=_config_number("BERTH_OUTBOX_LEASE", max(60, 5 * timeout)))


def _publish_once(
    msg: OutboxMessage, payload: dict, step: int, client: SaltApiClient, now: datetime
) -> tuple[str | None, list[str]]:
    """``local_async`` of ``step`` under a jid chosen and committed *before* it is published, so
    that a worker that dies (SIGKILL, power loss) between publishing and recording it does not
    cause a second publish: whoever takes the message over after the lease finds that jid in the
    master's job cache and goes on from there (docs/scale.md, "Several API hosts")."""
    fun, arg, kwarg = payload["steps"][step]
    claim = payload.get("publishing")
    if claim and claim.get("step") == step:
        info = client.job(claim["jid"])  # SaltApiError: retried with backoff, claim kept
        if info.found:
            log.warning(
                "outbox %s (%s): step %d was published as jid %s by a worker that stopped "
                "before recording it; not sent again",
                msg.id,
                msg.reason,
                step,
                claim["jid"],
            )
            return claim["jid"], list(info.minions)
        jid = claim["jid"]  # the master does not know it: publish it now, under the same jid
    else:
        jid = new_jid()
        payload["publishing"] = {"step": step, "jid": jid}
    msg.payload = dict(payload)
    # The row lock ends with this commit; the lease keeps other workers off the message.
    msg.next_attempt_at = now + _lease()
    db.session.commit()
    sent, minions = client.local_async(payload["minions"], fun, arg, kwarg, jid=jid)
    return sent, minions


def _process(msg: OutboxMessage, client: SaltApiClient | None, now: datetime) -> None:
    delivery = jobs().deliveries.get(msg.kind)
    failures: tuple[type[Exception], ...] = (SaltApiError,)
    if delivery is not None:
        failures += (delivery.failure,)
    try:
        if msg.kind == "salt":
            _advance_salt(msg, client, now)
        elif delivery is not None:
            shown = delivery.deliver(msg)
            msg.delivered_at = now
            log.info("outbox %s (%s): %s", msg.id, msg.reason, shown)
        else:
            msg.gave_up_at, msg.last_error = now, f"unknown outbox message kind {msg.kind!r}"
            log.error("outbox %s: %s", msg.id, msg.last_error)
    except failures as exc:
        msg.attempts += 1
        msg.last_error = str(exc)[:2000]
        if delivery is not None and msg.attempts >= _config_number(*delivery.max_attempts):
            msg.gave_up_at = now
            log.error(
                "outbox %s (%s): giving up after %d attempts: %s",
                msg.id,
                msg.reason,
                msg.attempts,
                exc,
            )
        else:
            msg.next_attempt_at = now + backoff(msg.attempts)
            log.warning(
                "outbox %s (%s): attempt %d failed, retrying at %s: %s",
                msg.id,
                msg.reason,
                msg.attempts,
                msg.next_attempt_at.isoformat(timespec="seconds"),
                exc,
            )


def drain_outbox(client: SaltApiClient | None, limit: int = 100) -> int:
    processed = 0
    while processed < limit:
        # One at a time, so a row lock (PostgreSQL) is held only while that message is handled.
        batch = due_messages(1)
        if not batch:
            break
        _process(batch[0], client, utcnow())
        db.session.commit()
        processed += 1
    db.session.commit()
    return processed


def analyze_sqlite() -> bool:
    """SQLite only: refresh the query planner's statistics (``ANALYZE``, sampled: bounded cost at
    any size). Without them SQLite's planner assumes an equality on ``account_id`` keeps a few
    rows, and reads a whole account's devices in page order to find a tag's or a search's few
    (the console's fleet page, docs/console.md). PostgreSQL's autovacuum analyzes by itself."""
    if db.engine.dialect.name != "sqlite":
        return False
    with db.engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA analysis_limit=1000")
        conn.exec_driver_sql("ANALYZE")
    return True


def purge_delivered(now: datetime | None = None) -> int:
    """Forget delivered (or abandoned) outbox rows after ``BERTH_OUTBOX_RETENTION_DAYS`` (default 7)."""
    cutoff = (now or utcnow()) - timedelta(days=_config_number("BERTH_OUTBOX_RETENTION_DAYS", 7))
    deleted = rowcount(
        db.session.execute(
            delete(OutboxMessage).where(
                or_(OutboxMessage.delivered_at < cutoff, OutboxMessage.gave_up_at < cutoff)
            )
        )
    )
    db.session.commit()
    if deleted:
        log.info(
            "outbox: purged %d delivered message(s) older than %s",
            deleted,
            cutoff.isoformat(timespec="seconds"),
        )
    return deleted


def run_once() -> int:
    """One pass; returns how much work was done (0 = idle)."""
    client = _client()
    work = 0
    for run in jobs().passes:  # e.g. execute jobs followed, timed-out rollout waves decided
        work += run(client)
    work += drain_outbox(client)
    return work


@click.command("worker")
@not_audited(
    "runs the outbox and the timers: it carries out what was audited when it was asked for"
)
@click.option("--once", is_flag=True, help="Run one pass and exit.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds to sleep when idle.")
@with_appcontext
def worker_command(once: bool, interval: float) -> None:
    """Deliver the outbox to salt-api and webhooks; follow execute jobs."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    log.info("worker started")
    last_purge = float("-inf")
    periodic = jobs().periodic
    last_run = [float("-inf")] * len(periodic)
    intervals = [_config_number(*job.interval) for job in periodic]
    while not stopping:
        try:
            if time.monotonic() - last_purge > 3600:
                purge_delivered()
                analyze_sqlite()
                last_purge = time.monotonic()
            for i, job in enumerate(periodic):
                if time.monotonic() - last_run[i] > intervals[i]:
                    last_run[i] = time.monotonic()
                    job.run()
            work = run_once()
        except Exception:  # a database hiccup must not kill the worker; the work stays in the DB
            log.exception("worker pass failed")
            db.session.rollback()
            work = 0
        if once:
            break
        if not work:
            time.sleep(interval)
        db.session.remove()
    log.info("worker stopped")


def init_app(app) -> None:
    """Register ``flask --app api worker``, the process that delivers the outbox."""
    app.cli.add_command(worker_command)
