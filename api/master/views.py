"""Master-scope API (token scope ``master``): what the Salt master needs from the fleet API.

* ``GET /master/minions/{unit_id}/pillar/`` -- the device's target release, registries
  (with decrypted passwords), logbook settings (with the device's shipper token) and the
  device's report key: this is the only place those secrets leave the API;
* ``POST /master/deployments/report/`` -- a device's apply result, signed by the device
  (idempotent), or a list of them (one transaction, answered item by item);
* ``POST /master/devices/sync/`` -- register accepted minion keys as devices.
"""

from __future__ import annotations

import logging

from flask import Blueprint, g, jsonify
from sqlalchemy import select

from api import audit
from api.audit import audited, not_audited
from api.auth import require_token
from api.bodies import parse, validate
from api.deployments import reports as deployment_reports
from api.devices.models import Device
from api.errors import ApiError, PermissionDenied, ValidationError
from api.extensions import db
from api.limits import MAX_REPORT_BATCH
from api.master.logbook_settings import logbook_pillar
from api.master.schemas import (
    DeploymentReport,
    DeploymentReportResult,
    DeviceSync,
    DeviceSyncResult,
)
from api.openapi import Response, operation
from api.payload import json_body
from api.policies import release as release_policy
from api.registries.models import Registry
from api.releases import signatures
from api.releases.models import Release
from api.releases.schemas import Deployment
from api.releases.serializers import release_for_device, serialize_deployment
from api.security import report_keys, tenancy
from berth.release.pillar import MinionPillar

bp = Blueprint("master", __name__)
log = logging.getLogger(__name__)


def _device_by_unit_id(unit_id: str) -> Device:
    """The enrolled device of minion ``unit_id`` this master may be served (api.security.tenancy)."""
    return tenancy.served_device(unit_id)


@bp.get("/master/minions/<unit_id>/pillar/")
@operation(
    "master",
    "The minion's target release, its account's registries (passwords decrypted) and its "
    "logbook settings",
    description="For the ext_pillar: the release the device should run (null for none), the "
    "account's registries with their passwords, the logbook settings (API URL, device id, the "
    "device's shipper token), the device's report key and whether its update locks are "
    "overridden once.",
    responses={200: Response({"type": "object"}, "The minion's pillar data.")},
)
@require_token("master", "platform")
def minion_pillar(unit_id: str):
    """The minion's target release, its account's registries (passwords decrypted) and its logbook
    settings (API URL, device id, the device's shipper token), for the ext_pillar."""
    device = _device_by_unit_id(unit_id)
    release = release_policy.served_release(device)  # never one the current policy refuses
    registries = db.session.scalars(
        select(Registry).where(Registry.account_id == device.account_id).order_by(Registry.id)
    ).all()
    answer: MinionPillar = {
        "release": release_for_device(
            release,
            release_policy.pillar_prefixes(release_policy.policy_for(device.account_id)),
            signatures.pillar(device.account_id),
        )
        if release is not None
        else None,
        "registries": {
            str(r.id): {"url": r.url, "username": r.username, "password": r.get_password()}
            for r in registries
        },
        "logbook": logbook_pillar(device, g.token.user_id),
        # the key this device signs its results with; served for this minion only
        "report_key": report_keys.report_key(device),
        # the operator's one-time override of the update locks (docs/release.md)
        "update_lock_override": device.update_lock_override_at is not None,
    }
    return jsonify(answer)


@bp.post("/master/deployments/report/")
@operation(
    "master",
    "Record a device's release result, or a list of them",
    description="Idempotent; an older result never overwrites a newer one. A list (at most "
    f"{MAX_REPORT_BATCH:,} reports, each the single report's body) is applied in one "
    "transaction and answered item by item, in the order sent; a list with an item that breaks "
    "the schema is a 400 keyed by the item's index, and nothing is recorded.",
    body={
        "oneOf": [
            DeploymentReport,
            {"type": "array", "maxItems": MAX_REPORT_BATCH, "items": DeploymentReport},
        ]
    },
    responses={
        200: Response(
            {"oneOf": [Deployment, {"type": "array", "items": DeploymentReportResult}]},
            "The deployment now; for a list, one result per report.",
        )
    },
    errors={404: "A single report of a device this credential does not serve, or no such device."},
)
@not_audited(
    "a device's report of its own apply result: device data (kept on its deployment row), "
    "not an operator action; a refused report is audited (report.refused)"
)
@require_token("master", "platform")
def deployment_report():
    """Record a device's release result (idempotent; an older result never overwrites a newer one),
    or a list of them in one transaction, answered item by item.

    Accepted only with the device's ``signature`` (berth/results.py); a report it did not sign
    changes nothing and is recorded as ``report.refused`` in the audit log."""
    body = json_body(allow_list=True)
    if isinstance(body, list):
        return jsonify(_report_batch(body))
    report = deployment_reports.Report.from_body(validate(DeploymentReport, body).values)
    device = _device_by_unit_id(report.unit_id)
    report_keys.check(device, body)  # only the device's own signature: 400 + audit row otherwise
    return jsonify(deployment_reports.apply(device.account_id, device, report))


def _report_batch(items: list) -> list[dict]:
    """A list of reports: each checked as it alone would be; the schema-valid ones that its
    master may report are recorded in one transaction. A list with an item that breaks the schema
    is a 400 keyed by index, and nothing is recorded (the list is malformed, not the device)."""
    if len(items) > MAX_REPORT_BATCH:
        raise ValidationError(
            {
                "non_field_errors": [
                    f"Ensure this list has no more than {MAX_REPORT_BATCH} elements."
                ]
            }
        )
    reports, errors = [], {}  # reports: (the item as sent, for its signature; its clean values)
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors[str(index)] = {
                "non_field_errors": [
                    f"Invalid data. Expected a dictionary, but got {type(item).__name__}."
                ]
            }
            continue
        parsed = parse(DeploymentReport, item)
        if parsed.errors:
            errors[str(index)] = parsed.errors
        else:
            reports.append((item, deployment_reports.Report.from_body(parsed.values)))
    if errors:
        raise ValidationError(errors)
    results: list[dict] = [{} for _ in reports]
    ready = []
    for index, checked in enumerate(_checked(reports)):
        if isinstance(checked, ApiError):
            results[index] = _item(index, checked.status_code, errors=checked.body)
        else:
            ready.append((index, *checked))
    locked = deployment_reports.lock_rollouts([(r, report) for _, _, r, report in ready])
    recorded = deployment_reports.record_many([(r, d, report) for _, d, r, report in ready], locked)
    changed = []
    for (index, device, release, report), (deployment, did_change) in zip(
        ready, recorded, strict=True
    ):
        results[index] = _item(
            index, 200, deployment=serialize_deployment(deployment, release.id, device.unit_id)
        )
        if did_change:
            changed.append((device.unit_id, release.id, release.version_hash, report))
    db.session.commit()
    for unit_id, release_id, version_hash, report in changed:
        deployment_reports.log_change(unit_id, release_id, version_hash, report)
    return results


def _checked(reports: list) -> list:
    """Per item of a list: ``(device, release, report)``, or the ApiError that answers it. The
    devices are read in one query, each release once."""
    served = tenancy.served_devices(report.unit_id for _, report in reports)
    resolved: dict[tuple, Release | ApiError] = {}
    checked: list = []
    for item, report in reports:
        try:
            device = served.get(report.unit_id) or _device_by_unit_id(report.unit_id)
            # only the device's own signature, item by item: a refused item's audit row is
            # committed with the list, the other items' work is kept
            report_keys.check(device, item, batch=True)
            key = (device.account_id, report.release_id, report.version_hash)
            if key not in resolved:
                try:
                    resolved[key] = deployment_reports.resolve(device.account_id, report)
                except ApiError as exc:
                    resolved[key] = exc
            release = resolved[key]
            if isinstance(release, ApiError):
                raise release
        except ApiError as exc:
            checked.append(exc)
            continue
        checked.append((device, release, report))
    return checked


def _item(index: int, status: int, deployment: dict | None = None, errors=None) -> dict:
    return {"index": index, "status": status, "deployment": deployment, "errors": errors}


@bp.post("/master/devices/sync/")
@operation(
    "master",
    "Register accepted minion keys as devices of the token's account",
    body=DeviceSync,
    responses={200: DeviceSyncResult},
)
@audited("device.enroll")
@require_token("master", "platform")
def devices_sync():
    """Register the minion keys an account's own master accepted as that account's enrolled devices.

    Never moves a minion enrolled in another account, nor enrolls a unit_id another account has
    a device for: such ids are listed as ``pending``, like any id this request cannot enroll, and
    audited (docs/security.md)."""
    if g.account is None:
        raise PermissionDenied(
            "A platform master serves many accounts: its minions enroll with an enrollment token "
            "of their account (docs/security.md), not by sync."
        )
    unit_ids = validate(DeviceSync, json_body())["unit_ids"]
    master = tenancy.credential(g.token)
    result = tenancy.sync(g.account.id, unit_ids, master)
    if result["created"]:
        audit.record(
            "device.enroll",
            details={
                "method": "master_sync",
                "master": master,
                "unit_ids": result["created"][:100],
            },
        )
    if result["pending"]:
        audit.record(
            "device.enrollment_conflict",
            details={
                "method": "master_sync",
                "outcome": "refused",
                "master": master,
                "unit_ids": result["pending"][:100],
            },
        )
    db.session.commit()
    if result["created"]:  # one line, not 10,000
        log.info(
            "registered %d minion(s) as devices of account %s: %s%s",
            len(result["created"]),
            g.account.name,
            ", ".join(result["created"][:20]),
            " ..." if len(result["created"]) > 20 else "",
        )
    if result["pending"]:
        log.warning(
            "minions not enrolled by this sync (they stay pending until they enroll): %s",
            ", ".join(result["pending"][:20]),
        )
    return DeviceSyncResult.body(None, **result)
