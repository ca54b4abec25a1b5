"""``/dongle/devices/{device_id}/execute/``: run a Salt function on a device, asynchronously."""

from __future__ import annotations

from flask import Blueprint, g, jsonify
from sqlalchemy import select

from api import audit
from api.audit import audited, not_audited
from api.auth import require_token
from api.errors import ApiError, NotFound, ValidationError
from api.execute import service
from api.execute.command import Command, parse_raw, parse_structured
from api.execute.models import ExecuteJob, settings_for
from api.extensions import db
from api.models import Device
from api.payload import json_body
from api.policies import execute as execute_policy
from api.resources.common import owned_or_404
from api.salt_client import SaltApiError, current_client
from api.schemas.base import validate
from api.schemas.execute import ForwardedReturn
from api.security import ssrf, tenancy
from berth import execpolicy
from berth.contract import ExecuteJobState

bp = Blueprint("execute", __name__)


def _client():
    try:
        return current_client()
    except SaltApiError as exc:
        raise service.SaltUnavailable(
            f"Salt is unavailable, the command was not sent: {exc}"
        ) from None


def _submit(device_id: str, command: Command, raw: bool = False):
    device = owned_or_404(Device, device_id)
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
    job = service.submit(_client(), device, command)
    return jsonify({"jid": job.jid, "minions": [job.unit_id]}), 202


@bp.post("/dongle/devices/<device_id>/execute/")
@audited("execute", "execute.refused")
@require_token("user")
def execute(device_id: str):
    return _submit(device_id, parse_structured(json_body()))


@bp.post("/dongle/devices/<device_id>/execute_raw/")
@audited("execute", "execute.refused")
@require_token("user")
def execute_raw(device_id: str):
    return _submit(device_id, parse_raw(json_body()), raw=True)


@bp.get("/dongle/devices/<device_id>/execute/<jid>/")
@require_token("user")
def execute_result(device_id: str, jid: str):
    device = owned_or_404(Device, device_id)
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
        service.refresh(client, job)
    return jsonify(job.result())


@bp.post("/master/execute/returns/")
@not_audited(
    "a device's return of a command an operator ran (the execute itself is audited): device "
    "data, kept on the execute job"
)
@require_token("master", "platform")
def forwarded_return():
    """A device's return of an execute job, forwarded by the lower master it hangs off
    (``berth.forward_return``; docs/scale.md "The path up"). Accepted only from a master
    credential that serves that device (``tenancy.served_device``) and only for a jid the API
    published to that device; anything else is the 404 of an unknown job."""
    body = validate(ForwardedReturn, json_body())
    device = tenancy.served_device(body["unit_id"])
    job = db.session.scalars(
        select(ExecuteJob).where(
            ExecuteJob.jid == body["jid"],
            ExecuteJob.device_id == device.id,
            ExecuteJob.account_id == device.account_id,
        )
    ).one_or_none()
    if job is None:
        raise NotFound(f'No execute job {body["jid"]} for device "{body["unit_id"]}".')
    recorded = service.record_forwarded(job, body["response"])
    return jsonify({"jid": job.jid, "state": job.state, "recorded": recorded})
