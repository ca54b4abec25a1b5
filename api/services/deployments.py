"""Queueing releases on devices. A device runs the newest release (highest id) that lists it."""

from __future__ import annotations

import logging
from typing import Iterable

from sqlalchemy import case, func, insert, literal, select, update

from api.bulk import id_select
from api.extensions import db
from api.models import Deployment, Device, Release, release_devices
from api.models.types import UTCDateTime, utcnow
from api.outbox import enqueue_release_notification

log = logging.getLogger(__name__)

ACTIVE_STATUSES = ("queued", "applying")


def target_release_id(device: Device) -> int | None:
    """The release the device should run: the newest release that lists it."""
    return db.session.scalar(
        select(func.max(release_devices.c.release_id)).where(release_devices.c.device_id == device.id)
    )


def queue_release(release: Release, devices: Iterable[Device] | None = None) -> list[str]:
    """Record a ``queued`` deployment of ``release`` on each device (the devices are already listed on it;
    ``None``: every device the release lists).

    The device's deployments of older releases that have not finished become
    ``superseded``. If a newer release already lists a device, this release will
    never run there and its deployment is recorded as ``superseded`` at once.
    Set-based: a handful of INSERT ... SELECT / UPDATE statements whatever the
    number of devices (10,000 devices must not cost 10,000 round trips). Writes the
    outbox rows that tell Salt. Flushes, does not commit: the caller commits with
    the rest of its change. Returns the ids of the devices it queued.
    """
    db.session.flush()
    if devices is None:
        device_set = select(release_devices.c.device_id).where(release_devices.c.release_id == release.id)
    else:
        ids = [d.id for d in devices]
        if not ids:
            return []
        device_set = id_select(ids)

    def device_filter(column):
        return column.in_(device_set)

    now = utcnow()
    queued, superseded = _queue_set(release, device_filter, now, all_listed=devices is None)
    # The statements above bypass the ORM: reload any deployment the session holds.
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, Deployment):
            db.session.expire(obj)
    if superseded:
        log.info(
            "release %s: superseded by a newer release on %d device(s): %s",
            release.id, len(superseded), _some(superseded),
        )
    if queued:
        log.info(
            "release %s (%s) queued on %d device(s): %s",
            release.id, release.version_hash, len(queued), _some(unit for _, unit in queued),
        )
        # Same transaction as the deployments: the worker tells Salt, retrying until delivered.
        enqueue_release_notification(release.id, [unit for _, unit in queued])
        db.session.flush()
    return [device_id for device_id, _ in queued]


def _queue_set(release: Release, device_filter, now, all_listed: bool) -> tuple[list[tuple[str, str]], list[str]]:
    """Queue ``release`` on the devices ``device_filter(column)`` selects (``all_listed``: every device
    the release lists); returns ``([(device id, unit_id) queued], [unit_id superseded])``."""
    deployments = Deployment.__table__
    rd_newer = release_devices.alias("rd_newer")

    def has_newer(device_id_column):
        """A release newer than this one lists the device: this one will never run there."""
        return (
            select(rd_newer.c.device_id)
            .where(rd_newer.c.device_id == device_id_column, rd_newer.c.release_id > release.id)
            .exists()
        )

    rows = db.session.execute(
        select(Device.id, Device.unit_id, has_newer(Device.id).label("newer")).where(device_filter(Device.id))
    ).all()
    queued = [(r.id, r.unit_id) for r in rows if not r.newer]
    superseded = [r.unit_id for r in rows if r.newer]

    this_release = (deployments.c.release_id == release.id, device_filter(deployments.c.device_id))
    db.session.execute(
        update(deployments)
        .where(*this_release, deployments.c.status.in_(ACTIVE_STATUSES), has_newer(deployments.c.device_id))
        .values(status="superseded", updated=now)
    )
    db.session.execute(
        update(deployments)
        .where(*this_release, ~has_newer(deployments.c.device_id))
        .values(status="queued", error=None, started_at=None, finished_at=None, updated=now)
    )
    db.session.execute(
        update(deployments)
        .where(
            deployments.c.release_id < release.id,
            deployments.c.status.in_(ACTIVE_STATUSES),
            device_filter(deployments.c.device_id),
            ~has_newer(deployments.c.device_id),
        )
        .values(status="superseded", updated=now)
    )
    existing = (
        select(deployments.c.id)
        .where(deployments.c.release_id == release.id, deployments.c.device_id == release_devices.c.device_id)
        .exists()
    )
    new_rows = select(
        literal(release.id),
        release_devices.c.device_id,
        case((has_newer(release_devices.c.device_id), literal("superseded")), else_=literal("queued")),
        literal(0),
        literal(now, UTCDateTime),
        literal(now, UTCDateTime),
    ).where(release_devices.c.release_id == release.id, ~existing)
    if not all_listed:
        # Not a self-join when it would select every listed device: PostgreSQL, whose statistics
        # do not know the new release yet, would plan it as a 10,000 x 10,000 nested loop.
        new_rows = new_rows.where(device_filter(release_devices.c.device_id))
    db.session.execute(
        insert(deployments).from_select(
            ["release_id", "device_id", "status", "attempts", "created", "updated"], new_rows
        )
    )
    return queued, superseded


def _some(names: Iterable[str], limit: int = 50) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def unqueue_device(release: Release, device: Device) -> None:
    """``device`` was removed from ``release``: forget its pending deployment and re-target the device.

    Call after the device is unlinked from the release.
    """
    db.session.flush()
    deployment = db.session.scalars(
        select(Deployment).where(Deployment.release_id == release.id, Deployment.device_id == device.id)
    ).one_or_none()
    device_may_run_it = deployment is not None and deployment.status in ("applying", "succeeded", "failed")
    if deployment is not None and deployment.status in ACTIVE_STATUSES:
        if deployment.status == "queued":
            db.session.delete(deployment)
        else:
            deployment.status = "superseded"
    log.info("release %s removed from device %s", release.id, device.unit_id)
    target_id = target_release_id(device)
    if target_id is None:
        return
    target = db.session.get(Release, target_id)
    current = db.session.scalars(
        select(Deployment).where(Deployment.release_id == target_id, Deployment.device_id == device.id)
    ).one_or_none()
    if current is not None and current.status in ACTIVE_STATUSES:
        return
    if current is not None and current.status == "succeeded" and not device_may_run_it:
        return
    queue_release(target, [device])


def retarget_devices_of_deleted_releases(releases: Iterable[Release]) -> None:
    """``releases`` are about to be deleted: unlink their devices and queue each device's new target."""
    removed = []
    for release in releases:
        for device in list(release.devices):
            release.devices.remove(device)
            removed.append((release, device))
    db.session.flush()
    for release, device in removed:
        unqueue_device(release, device)
