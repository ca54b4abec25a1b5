"""Queueing releases on devices. A device runs the newest release (highest id) that lists it."""

from __future__ import annotations

import logging
from typing import Iterable

from sqlalchemy import func, insert, select, update

from api.extensions import db
from api.models import Deployment, Device, Release, release_devices
from api.models.types import utcnow
from api.outbox import enqueue_release_notification

log = logging.getLogger(__name__)

ACTIVE_STATUSES = ("queued", "applying")


def target_release_id(device: Device) -> int | None:
    """The release the device should run: the newest release that lists it."""
    return db.session.scalar(
        select(func.max(release_devices.c.release_id)).where(release_devices.c.device_id == device.id)
    )


# Rows per IN (...) list: below SQLite's and PostgreSQL's bind-parameter limits.
_CHUNK = 5000


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


def queue_release(release: Release, devices: Iterable[Device]) -> list[str]:
    """Record a ``queued`` deployment of ``release`` on each device (the devices are already listed on it).

    The device's deployments of older releases that have not finished become
    ``superseded``. If a newer release already lists a device, this release will
    never run there and its deployment is recorded as ``superseded`` at once.
    Set-based (a few statements whatever the number of devices), and writes the
    outbox rows that tell Salt. Flushes, does not commit: the caller commits with
    the rest of its change. Returns the ids of the devices it queued.
    """
    devices = list(devices)
    if not devices:
        return []
    db.session.flush()
    ids = [d.id for d in devices]
    newest: dict[str, int] = {}
    existing: dict[str, str] = {}
    for chunk in _chunks(ids):
        newest.update(
            db.session.execute(
                select(release_devices.c.device_id, func.max(release_devices.c.release_id))
                .where(release_devices.c.device_id.in_(chunk))
                .group_by(release_devices.c.device_id)
            ).all()
        )
        existing.update(
            db.session.execute(
                select(Deployment.device_id, Deployment.status).where(
                    Deployment.release_id == release.id, Deployment.device_id.in_(chunk)
                )
            ).all()
        )
    superseded = [d for d in devices if (newest.get(d.id) or 0) > release.id]
    queued = [d for d in devices if (newest.get(d.id) or 0) <= release.id]
    superseded_ids = {d.id for d in superseded}
    now = utcnow()

    new_rows = [
        {
            "release_id": release.id,
            "device_id": d.id,
            "status": "superseded" if d.id in superseded_ids else "queued",
            "attempts": 0,
            "created": now,
            "updated": now,
        }
        for d in devices
        if d.id not in existing
    ]
    if new_rows:
        db.session.execute(insert(Deployment), new_rows)
    stale = [d.id for d in superseded if existing.get(d.id) in ACTIVE_STATUSES]
    requeued = [d.id for d in queued if d.id in existing]
    queued_ids = [d.id for d in queued]
    for chunk in _chunks(stale):
        db.session.execute(
            update(Deployment)
            .where(Deployment.release_id == release.id, Deployment.device_id.in_(chunk))
            .values(status="superseded", updated=now)
        )
    for chunk in _chunks(requeued):
        db.session.execute(
            update(Deployment)
            .where(Deployment.release_id == release.id, Deployment.device_id.in_(chunk))
            .values(status="queued", error=None, started_at=None, finished_at=None, updated=now)
        )
    for chunk in _chunks(queued_ids):
        db.session.execute(
            update(Deployment)
            .where(
                Deployment.device_id.in_(chunk),
                Deployment.release_id < release.id,
                Deployment.status.in_(ACTIVE_STATUSES),
            )
            .values(status="superseded", updated=now)
        )
    if superseded:
        log.info(
            "release %s: superseded by a newer release on %d device(s): %s",
            release.id, len(superseded), _some(d.unit_id for d in superseded),
        )
    if queued:
        log.info(
            "release %s (%s) queued on %d device(s): %s",
            release.id, release.version_hash, len(queued), _some(d.unit_id for d in queued),
        )
        # Same transaction as the deployments: the worker tells Salt, retrying until delivered.
        enqueue_release_notification(release.id, [d.unit_id for d in queued])
    db.session.flush()
    return queued_ids


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
