"""``/devices/``: the account's devices; ``unit_id`` is the Salt minion id."""

from __future__ import annotations

import logging

from flask import Blueprint, g, request
from sqlalchemy import bindparam, select

from api import audit
from api.audit import audited
from api.auth import require_token
from api.common import is_partial, no_content, owned_or_404
from api.deployments import targets as rollout_targets
from api.deployments.models import Deployment, docker_release_ids
from api.devices import service as device_service
from api.devices.models import Device
from api.devices.schemas import Device as DeviceBody
from api.devices.schemas import DeviceInput, LockOverride
from api.errors import NotFound
from api.extensions import db
from api.openapi import Response, operation, page_of, query_param
from api.outbox import REFRESH_PILLAR, enqueue_salt
from api.pagination import paginate
from api.payload import json_body
from api.rollouts.models import device_tags
from api.security import tenancy
from api.types import utcnow
from berth.contract import DeploymentState

bp = Blueprint("devices", __name__)
log = logging.getLogger(__name__)


def serialize_device(
    device: Device,
    docker_releases: list[int] | None = None,
    enrolled: bool | None = None,
    tags: list[str] | None = None,
) -> dict:
    return DeviceBody.body(
        device,
        enrolled=tenancy.is_enrolled(device) if enrolled is None else enrolled,
        docker_releases=docker_release_ids(device) if docker_releases is None else docker_releases,
        tags=rollout_targets.device_tags_of([device.id])[device.id] if tags is None else tags,
    )


def serialize_devices(devices: list[Device]) -> list[dict]:
    succeeded: dict[str, list[int]] = {d.id: [] for d in devices}
    if devices:
        rows = db.session.execute(
            select(Deployment.device_id, Deployment.release_id)
            .where(
                Deployment.device_id.in_(list(succeeded)),
                Deployment.status == DeploymentState.SUCCEEDED,
            )
            .order_by(Deployment.release_id)
        )
        for device_id, release_id in rows:
            succeeded[device_id].append(release_id)
    enrolled = (
        set(
            db.session.scalars(
                select(Device.id).where(Device.id.in_(list(succeeded)), tenancy.enrolled_clause())
            )
        )
        if devices
        else set()
    )
    tags = rollout_targets.device_tags_of(list(succeeded))
    return [serialize_device(d, succeeded[d.id], d.id in enrolled, tags[d.id]) for d in devices]


def _validate(data: dict, device: Device | None) -> dict:
    return device_service.validate(data, device, partial=is_partial())


@bp.get("/devices/")
@operation(
    "devices",
    "List devices",
    operation_id="listDevices",
    query=[
        query_param("unit_id", "Only the device with this Salt minion id."),
        query_param("tag", "Only devices with this tag."),
    ],
    responses={200: Response(page_of(DeviceBody), "A page of results.")},
)
@require_token("user", "master")
def list_devices():
    stmt = (
        select(Device).where(Device.account_id == g.account.id).order_by(Device.created, Device.id)
    )
    if "unit_id" in request.args:
        stmt = stmt.where(Device.unit_id == request.args["unit_id"])
    if "tag" in request.args:
        stmt = stmt.where(
            Device.id.in_(
                select(device_tags.c.device_id).where(device_tags.c.tag == request.args["tag"])
            )
        )
    return paginate(stmt, serialize_device, batch=serialize_devices)


@bp.post("/devices/")
@operation(
    "devices",
    "Create a Device",
    operation_id="createDevice",
    body=DeviceInput,
    responses={201: Response(DeviceBody, "Created.")},
)
@audited("device.create")
@require_token("user")
def create_device():
    values = _validate(json_body(), None)
    tags = values.pop("tags", [])
    device = Device(account_id=g.account.id, **values)
    db.session.add(device)
    db.session.flush()
    rollout_targets.set_device_tags(device, tags)
    audit.record("device.create", device_id=device.id, details={"unit_id": device.unit_id})
    db.session.commit()
    log.info("device %s (%s) created in account %s", device.unit_id, device.id, g.account.id)
    return serialize_device(device, [], tags=tags), 201


# The hottest read: one statement built once at import (compiled form and result
# metadata cached by SQLAlchemy) for the device and its successful releases.
_devices, _deployments = Device.__table__, Deployment.__table__
_DEVICE_WITH_RELEASES = (
    select(
        _devices.c.id,
        _devices.c.unit_id,
        _devices.c.display,
        _devices.c.created,
        tenancy.enrolled_clause(_devices).label("enrolled"),
        _deployments.c.release_id,
    )
    .join_from(
        _devices,
        _deployments,
        (_deployments.c.device_id == _devices.c.id)
        & (_deployments.c.status == DeploymentState.SUCCEEDED),
        isouter=True,
    )
    .where(
        _devices.c.id == bindparam("device_id"), _devices.c.account_id == bindparam("account_id")
    )
    .order_by(_deployments.c.release_id)
)


@bp.get("/devices/<device_id>/")
@operation("devices", "Get a Device", operation_id="getDevice", responses={200: DeviceBody})
@require_token("user", "master")
def get_device(device_id: str):
    rows = (
        db.session.connection()
        .execute(_DEVICE_WITH_RELEASES, {"device_id": device_id, "account_id": g.account.id})
        .all()
    )
    if not rows:
        raise NotFound()
    first = rows[0]
    return DeviceBody.body(
        first,
        enrolled=bool(first.enrolled),
        docker_releases=[r.release_id for r in rows if r.release_id is not None],
        tags=rollout_targets.device_tags_of([first.id])[first.id],
    )


@bp.route("/devices/<device_id>/", methods=["PUT", "PATCH"])
@operation(
    "devices",
    "Replace a Device",
    method="PUT",
    operation_id="replaceDevice",
    body=DeviceInput,
    responses={200: DeviceBody},
)
@operation(
    "devices",
    "Update some fields of a Device",
    method="PATCH",
    operation_id="updateDevice",
    body=DeviceInput,
    partial=True,
    responses={200: DeviceBody},
)
@audited("device.update")
@require_token("user")
def update_device(device_id: str):
    device = owned_or_404(Device, device_id)
    body = json_body()
    device_service.update(device, _validate(body, device), tags_given="tags" in body)
    db.session.commit()
    return serialize_device(device)


@bp.post("/devices/<device_id>/override-lock/")
@operation(
    "devices",
    "Ignore the device's update locks at its next apply (once)",
    description="The device's next apply stops and replaces containers even while they hold "
    "their update lock (docs/release.md); used up by the device's report of that apply. "
    "Audited (device.lock_override).",
    operation_id="overrideDeviceLock",
    responses={200: LockOverride},
)
@audited("device.lock_override")
@require_token("user")
def override_lock(device_id: str):
    """The device's next apply ignores the update locks of its containers (docs/release.md
    "Update locks"); used up by the device's report of that apply."""
    device = owned_or_404(Device, device_id)
    device.update_lock_override_at = utcnow()
    audit.record("device.lock_override", device_id=device.id, details={"unit_id": device.unit_id})
    # the override reaches the device in pillar
    enqueue_salt([device.unit_id], [REFRESH_PILLAR], f"update lock override for {device.unit_id}")
    db.session.commit()
    log.info(
        "device %s (%s): update locks overridden for the next apply", device.unit_id, device.id
    )
    return serialize_lock_override(device)


def serialize_lock_override(device: Device) -> dict:
    return LockOverride.body(
        device,
        device_id=device.id,
        update_lock_override=device.update_lock_override_at is not None,
        requested_at=device.update_lock_override_at,
    )


@bp.delete("/devices/<device_id>/")
@operation(
    "devices",
    "Delete a Device",
    operation_id="deleteDevice",
    responses={204: Response(None, "Deleted, no body.")},
)
@audited("device.delete")
@require_token("user")
def delete_device(device_id: str):
    device = owned_or_404(Device, device_id)
    db.session.delete(device)
    audit.record("device.delete", device_id=device.id, details={"unit_id": device.unit_id})
    db.session.commit()
    log.info("device %s (%s) deleted", device.unit_id, device.id)
    return no_content()
