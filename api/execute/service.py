"""Sending a command to a device through salt-api and following the job to its result."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import g
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from api import audit
from api.devices.models import Device
from api.errors import ApiError, Conflict, NotFound, PermissionDenied, ValidationError
from api.execute.command import Command
from api.execute.models import ExecuteJob, settings_for
from api.extensions import db, rowcount
from api.outbox import enqueue_webhook
from api.policies import execute as execute_policy
from api.salt_client import (
    SaltApiClient,
    SaltApiError,
    SaltApiRefused,
    SaltApiTimeout,
    current_client,
    new_jid,
)
from api.security import ssrf, tenancy
from api.types import utcnow
from berth import execpolicy
from berth.contract import ExecuteJobState

log = logging.getLogger(__name__)


class SaltUnavailable(ApiError):
    status_code = 503

    def __init__(self, detail: str):
        super().__init__({"detail": detail})


def submit(client: SaltApiClient, device: Device, command: Command) -> ExecuteJob:
    """Publish the command to the device's minion; never waits for the device.

    The job is recorded under a jid chosen here *before* it is published, so a
    publish that times out (salt-api slow, the job may well run) is still followed
    to its result or TIMEOUT instead of running untracked. The caller has checked
    the account's execute policy (``api.policies.execute.check``).
    """
    now = utcnow()
    values = dict(
        account_id=device.account_id,
        device_id=device.id,
        unit_id=device.unit_id,
        fun=command.fun,
        arg=command.arg,
        kwarg=command.kwarg,
        callback_url=command.callback_url,
        callback_timeout=command.timeout,
        deadline=now + timedelta(seconds=command.timeout),
        created=now,
    )
    for attempt in range(5):
        job = ExecuteJob(jid=new_jid(), **values)
        db.session.add(job)
        audit.record(
            "execute",
            account_id=device.account_id,
            device_id=device.id,
            target=f"job:{job.jid}",
            details=execpolicy.audit_summary(command.fun, command.arg, command.kwarg),
        )
        try:
            db.session.commit()
            break
        except IntegrityError:  # another request took the same microsecond
            db.session.rollback()
            if attempt == 4:
                raise
    try:
        jid, _ = client.local_async(
            [device.unit_id], command.fun, command.arg, command.kwarg, jid=job.jid
        )
    except SaltApiTimeout as exc:
        log.warning(
            "execute %s on device %s (jid %s): %s; following the job anyway",
            command.fun,
            device.unit_id,
            job.jid,
            exc,
        )
        return job
    except SaltApiRefused as exc:
        _forget(job)
        log.warning("execute %s on device %s: %s", command.fun, device.unit_id, exc)
        raise PermissionDenied(
            f'salt-api does not permit "{command.fun}" with these arguments for the API: an '
            "account allowed more than the safe default needs the same functions in salt-api's "
            'external_auth (docs/fleet-api.md "salt-api permissions"). Nothing was sent.'
        ) from None
    except SaltApiError as exc:
        _forget(job)
        log.warning("execute %s on device %s: %s", command.fun, device.unit_id, exc)
        raise SaltUnavailable(f"Salt is unavailable, the command was not sent: {exc}") from None
    if not jid:
        _forget(job)
        raise Conflict(
            f'Device {device.id} (unit_id "{device.unit_id}") is not known to the Salt master: '
            "its minion key is not accepted."
        )
    if jid != job.jid:  # a master that ignores the requested jid
        job.jid = jid
        db.session.commit()
    log.info(
        "execute %s sent to device %s (jid %s, timeout %ss)",
        command.fun,
        device.unit_id,
        jid,
        command.timeout,
    )
    return job


def _forget(job: ExecuteJob) -> None:
    db.session.delete(job)
    db.session.commit()


def _finish(job: ExecuteJob, state: ExecuteJobState, response: dict | None) -> bool:
    """Move a PENDING job to ``state`` once, even if a poll and the worker race; queue its webhook."""
    now = utcnow()
    changed = rowcount(
        db.session.execute(
            update(ExecuteJob)
            .where(ExecuteJob.id == job.id, ExecuteJob.state == ExecuteJobState.PENDING)
            .values(state=state, response=response, finished_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    if changed:
        db.session.refresh(job)
        if job.callback_url:
            enqueue_webhook(
                job.callback_url, job.account_id, job.result(), f"execute {job.jid} {state}"
            )
        log.info("execute job %s on device %s: %s", job.jid, job.unit_id, state)
    db.session.commit()
    if not changed:
        db.session.refresh(job)
    return bool(changed)


def refresh(client: SaltApiClient | None, job: ExecuteJob) -> ExecuteJob:
    """Ask salt-api for a PENDING job's return; mark it TIMEOUT after its deadline.

    If salt-api cannot be asked the job simply stays PENDING (and is asked again later).
    """
    if job.state != ExecuteJobState.PENDING:
        return job
    try:
        if client is None:
            raise SaltApiError("salt-api is not configured")
        info = client.job(job.jid)
    except SaltApiError as exc:
        log.warning("execute job %s on device %s: cannot look it up: %s", job.jid, job.unit_id, exc)
        info = None
    ret = info.returns.get(job.unit_id) if info is not None else None
    if ret is not None:
        _finish(job, ExecuteJobState.COMMAND_EXECUTED, ret.as_response())
    elif utcnow() >= job.deadline:
        _finish(job, ExecuteJobState.TIMEOUT, None)
    return job


def record_forwarded(job: ExecuteJob, response: dict) -> bool:
    """A return of ``job`` forwarded by the lower master its device hangs off (docs/scale.md
    "The path up"): what salt-api's lookup gives on a single master, where a syndic carries no
    return up. Finishes a PENDING job (webhook queued once); a finished job is left as it is."""
    return _finish(job, ExecuteJobState.COMMAND_EXECUTED, response)


def _client():
    try:
        return current_client()
    except SaltApiError as exc:
        raise SaltUnavailable(f"Salt is unavailable, the command was not sent: {exc}") from None


def start(device: Device, command: Command, raw: bool = False) -> ExecuteJob:
    """Run ``command`` on the account's ``device`` (``g.account``), as ``POST .../execute/``
    (``raw``: ``execute_raw``) and the console do: the callback checks, the account's execute
    policy (400/403, audited ``execute.refused``), the enrollment, then :func:`submit`."""
    if command.callback_url:
        settings = settings_for(g.account.id)
        if settings is None or not settings.webhook_secret_encrypted:
            raise ValidationError(
                {
                    "callback_url": [
                        "This account has no webhook secret to sign callbacks with; an administrator "
                        "creates it with `flask --app api accounts webhook-secret ACCOUNT`."
                    ]
                }
            )
    if command.callback_url:
        try:
            ssrf.resolve(command.callback_url)  # checked again at every delivery
        except ssrf.UnsafeTarget as exc:
            raise ValidationError({"callback_url": [f"Refused: {exc}."]}) from None
    # before asking for a client: 400/403 even when Salt is down
    try:
        execute_policy.check(g.account.id, command.fun, command.arg, command.kwarg, raw=raw)
        tenancy.require_enrolled(device)
    except ApiError as exc:
        # a refused attempt is worth an auditor's eye too (e.g. pillar= injection)
        audit.record(
            "execute.refused",
            device_id=device.id,
            details={
                **execpolicy.audit_summary(command.fun, command.arg, command.kwarg),
                "status": exc.status_code,
            },
        )
        db.session.commit()
        raise
    return submit(_client(), device, command)


def job_of(device: Device, jid: str) -> ExecuteJob:
    """The account's execute job ``jid`` on ``device`` (404 otherwise), asked of salt-api once
    more while it is pending."""
    job = db.session.scalars(
        select(ExecuteJob).where(
            ExecuteJob.jid == jid,
            ExecuteJob.device_id == device.id,
            ExecuteJob.account_id == g.account.id,
        )
    ).one_or_none()
    if job is None:
        raise NotFound()
    if job.state == ExecuteJobState.PENDING:
        try:
            client = current_client()
        except SaltApiError:
            client = None
        refresh(client, job)
    return job


def follow_jobs(client: SaltApiClient | None, limit: int = 200) -> int:
    """The worker, every pass: jobs someone waits for (a callback) or that ran out of time;
    returns how many finished."""
    now = utcnow()
    jobs = db.session.scalars(
        select(ExecuteJob)
        .where(
            ExecuteJob.state == ExecuteJobState.PENDING,
            or_(ExecuteJob.callback_url.is_not(None), ExecuteJob.deadline <= now),
        )
        .order_by(ExecuteJob.id)
        .limit(limit)
    ).all()
    finished = 0
    for job in jobs:
        refresh(client, job)
        finished += job.state != ExecuteJobState.PENDING
    return finished
