"""``/dongle/devices/{device_id}/execute/``: run a Salt function on a device, asynchronously."""

from __future__ import annotations

from flask import Blueprint, jsonify
from sqlalchemy import select

from api.audit import audited, not_audited
from api.auth import require_token
from api.bodies import validate
from api.common import owned_or_404
from api.devices.models import Device
from api.errors import NotFound
from api.execute import service
from api.execute.command import Command, parse_raw, parse_structured
from api.execute.models import ExecuteJob
from api.execute.schemas import (
    ExecuteAccepted,
    ExecuteInput,
    ExecuteRawInput,
    ExecuteResult,
    ForwardedReturn,
    ForwardedReturnResult,
)
from api.extensions import db
from api.openapi import Response, operation
from api.payload import json_body
from api.security import tenancy

bp = Blueprint("execute", __name__)

_SUBMITTED = (
    "Publishes the command to the device's minion through salt-api (local_async) and returns "
    "at once; poll the job or receive the callback."
)
_SUBMIT_ERRORS = {
    403: "The token is not a user token, or the account may not execute this command.",
    404: "Unknown device, or a device of another account.",
    409: "The Salt master has no accepted key for the device's minion.",
    503: "salt-api is unreachable, refused the login, or is not configured; nothing was sent.",
}


def _submit(device_id: str, command: Command, raw: bool = False):
    job = service.start(owned_or_404(Device, device_id), command, raw=raw)
    return ExecuteAccepted.body(job, minions=[job.unit_id]), 202


@bp.post("/dongle/devices/<device_id>/execute/")
@operation(
    "execute",
    "Run a Salt function on the device",
    description=_SUBMITTED,
    body=ExecuteInput,
    responses={202: Response(ExecuteAccepted, "Sent.")},
    errors=_SUBMIT_ERRORS,
)
@audited("execute", "execute.refused")
@require_token("user")
def execute(device_id: str):
    return _submit(device_id, parse_structured(json_body()))


@bp.post("/dongle/devices/<device_id>/execute_raw/")
@operation(
    "execute",
    "Run a Salt command line on the device",
    description=_SUBMITTED,
    body=ExecuteRawInput,
    responses={202: Response(ExecuteAccepted, "Sent.")},
    errors=_SUBMIT_ERRORS,
)
@audited("execute", "execute.refused")
@require_token("user")
def execute_raw(device_id: str):
    return _submit(device_id, parse_raw(json_body()), raw=True)


@bp.get("/dongle/devices/<device_id>/execute/<jid>/")
@operation(
    "execute",
    "The state and return of an execute job",
    responses={200: Response(ExecuteResult, "The job.")},
    errors={404: "Unknown device, or a device of another account."},
)
@require_token("user")
def execute_result(device_id: str, jid: str):
    job = service.job_of(owned_or_404(Device, device_id), jid)
    return jsonify(job.result())


@bp.post("/master/execute/returns/")
@operation(
    "master",
    "A device's return of an execute job, forwarded by its lower master",
    description="Behind Salt syndics no return comes up to the top master's salt-api "
    '(docs/scale.md "The path up"): the lower master the device hangs off forwards the return '
    "of a job the API published (berth.forward_return). Accepted only from a master credential "
    "that serves the device and only for an execute job of that device; it finishes a PENDING "
    "job once (its webhook is queued then).",
    body=ForwardedReturn,
    responses={200: Response(ForwardedReturnResult, "The job now.")},
    errors={
        403: "Not a master or platform token.",
        404: "No such execute job for this device, or a device this credential does not serve "
        "(another tier's, another account's, pending, unknown).",
    },
)
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
    return ForwardedReturnResult.body(job, recorded=recorded)
