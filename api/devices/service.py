"""A device's fields and tags changed: what ``PUT/PATCH /devices/{id}/`` and the console's tag
form do, with the same validation, messages and audit row."""

from __future__ import annotations

import logging

from flask import g
from sqlalchemy import select

from api import audit
from api.bodies import parse
from api.deployments import targets as rollout_targets
from api.devices.models import Device
from api.devices.schemas import DeviceInput
from api.extensions import db

log = logging.getLogger(__name__)


def validate(data: dict, device: Device | None, partial: bool) -> dict:
    """The body's values, or ``ValidationError`` with DRF's messages (the account: ``g.account``)."""
    parsed = parse(DeviceInput, data, partial=partial)
    new_unit_id = parsed.get("unit_id")
    if new_unit_id is not None and (device is None or new_unit_id != device.unit_id):
        # unique per account: another account's device of this unit_id is neither refused nor revealed
        taken = select(Device.id).where(
            Device.unit_id == new_unit_id, Device.account_id == g.account.id
        )
        if db.session.scalar(taken) is not None:
            parsed.error("unit_id", "device with this unit id already exists.")
    parsed.raise_if_errors()
    return parsed.values


def update(device: Device, values: dict, tags_given: bool) -> None:
    """Apply validated ``values``; with ``tags_given`` the tags are replaced (a PUT without tags
    leaves them, docs/rollouts.md) and retarget releases. Records ``device.update``; the caller
    commits."""
    values = dict(values)
    tags = values.pop("tags", None)
    for key, value in values.items():
        setattr(device, key, value)
    details: dict = {"fields": sorted(values)}
    if tags_given:
        # tags retarget releases (device_tags): the row keeps what they were
        before = rollout_targets.device_tags_of([device.id])[device.id]
        db.session.flush()
        rollout_targets.set_device_tags(device, tags)
        values["tags"] = tags
        details["fields"] = sorted(values)
        details["tags"] = {"before": before, "after": sorted(set(tags or []))}
    audit.record("device.update", device_id=device.id, details=details)
    log.info(
        "device %s (%s) updated: %s",
        device.unit_id,
        device.id,
        ", ".join(sorted(values)) or "nothing",
    )
