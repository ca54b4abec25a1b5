"""Per-device report keys: a device's release result reaches the API only as that device.

The key of a device is derived from the server secret and the device's identity (its row id and
minion id), so the API stores nothing and a device re-created (another row) gets a new key. It
leaves the API only in that minion's pillar (``GET /master/minions/{unit_id}/pillar/``, which
Salt serves to that minion alone); the device signs each result with it (``berth/results.py``)
and ``POST /master/deployments/report/`` verifies the signature for the device the report names.
docs/security.md "Trust beyond the REST API", 2.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import current_app

from api import audit
from api.crypto import derive_key
from api.devices.models import Device
from api.errors import ValidationError
from api.extensions import db
from berth import results


def derive(secret_key: str, device_id, unit_id: str) -> str:
    """The report key (64 hex digits) of device ``device_id`` (minion ``unit_id``) under the
    server secret ``secret_key``."""
    identity = f"{device_id}\0{unit_id}".encode()
    return hmac.new(derive_key(secret_key, b"device-report"), identity, hashlib.sha256).hexdigest()


def report_key(device: Device) -> str:
    """The device's report key."""
    return derive(current_app.config["SECRET_KEY"], device.id, device.unit_id)


def check(device: Device, body: dict, *, batch: bool = False) -> None:
    """Refuse a report ``body`` (as sent, before any normalisation) that the device did not sign:
    400 naming ``signature``, an audit row ``report.refused`` in the device's account, and
    nothing else changes.

    Alone (``batch`` false) the refusal is the request's whole outcome: its audit row is committed
    here. An item of a list (``batch``) is refused alone: its audit row is added to the list's
    transaction and committed with the other items' work, none of which is rolled back."""
    signature = body.get(results.SIGNATURE)
    if signature is None:
        reason = "This field is required: the device signs its result with its report key."
    elif results.verify(report_key(device), device.unit_id, body, signature):
        return
    else:
        reason = f"Not signed with the report key of device {device.unit_id}."
    if not batch:
        db.session.rollback()  # nothing of this request is kept but the audit row
    audit.record(
        "report.refused",
        account_id=device.account_id,
        device_id=device.id,
        target=f"release:{body.get('release_id')}"[:255],
        details={
            "unit_id": device.unit_id,
            "release_id": str(body.get("release_id"))[:32],
            "outcome": str(body.get("outcome"))[:32],
            "reason": "unsigned" if signature is None else "bad signature",
        },
    )
    if not batch:
        db.session.commit()
    raise ValidationError({results.SIGNATURE: [reason]})
