"""``/dongle/devices/{device_id}/execute/``: run a Salt function on a device, asynchronously."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import select

from api.audit import audited, not_audited
from api.auth import require_token
from api.common import owned_or_404
from api.errors import NotFound
from api.execute import service
from api.execute.command import Command, parse_raw, parse_structured
from api.execute.models import ExecuteJob
from api.extensions import db
from api.models import Device
from api.payload import json_body
from api.schemas.base import validate
from api.schemas.execute import ForwardedReturn
from api.security import tenancy

bp = Blueprint("execute", __name__)


def _submit(device_id: str, command: Command, raw: bool = False):
    job = service.start(owned_or_404(Device, device_id), command, raw=raw)
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
    job = service.job_of(owned_or_404(Device, device_id), jid)
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
