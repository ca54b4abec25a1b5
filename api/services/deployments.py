"""Queueing releases on devices. A device runs the newest release (highest id) that lists it."""

from __future__ import annotations

import logging
from typing import Iterable

from sqlalchemy import func, select, update

from api.extensions import db
from api.models import Deployment, Device, Release, release_devices
from api.outbox import enqueue_release_notification

log = logging.getLogger(__name__)

ACTIVE_STATUSES = ("queued", "applying")


def target_release_id(device: Device) -> int | None:
    """The release the device should run: the newest release that lists it."""
    return db.session.scalar(
        select(func.max(release_devices.c.release_id)).where(release_devices.c.device_id == device.id)
    )


def queue_release(release: Release, devices: Iterable[Device]) -> list[Deployment]:
    """Record a ``queued`` deployment of ``release`` on each device (the devices are already listed on it).

    The device's deployments of older releases that have not finished become
    ``superseded``. If a newer release already lists a device, this release will
    never run there and its deployment is recorded as ``superseded`` at once.
    Flushes, does not commit: the caller commits with the rest of its change.
    """
    db.session.flush()
    queued: list[Deployment] = []
    queued_unit_ids: list[str] = []
    for device in devices:
        deployment = db.session.scalars(
            select(Deployment).where(Deployment.release_id == release.id, Deployment.device_id == device.id)
        ).one_or_none()
        if deployment is None:
            deployment = Deployment(release_id=release.id, device_id=device.id)
            db.session.add(deployment)
        if (target_release_id(device) or 0) > release.id:
            if deployment.status in ACTIVE_STATUSES or deployment.id is None:
                deployment.status = "superseded"
            log.info("release %s on device %s: superseded by a newer release", release.id, device.unit_id)
            continue
        deployment.status = "queued"
        deployment.error = None
        deployment.started_at = None
        deployment.finished_at = None
        db.session.execute(
            update(Deployment)
            .where(
                Deployment.device_id == device.id,
                Deployment.release_id < release.id,
                Deployment.status.in_(ACTIVE_STATUSES),
            )
            .values(status="superseded")
            .execution_options(synchronize_session="fetch")
        )
        queued.append(deployment)
        queued_unit_ids.append(device.unit_id)
        log.info("release %s (%s) queued on device %s", release.id, release.version_hash, device.unit_id)
    db.session.flush()
    if queued:
        # Same transaction as the deployments: the worker tells Salt, retrying until delivered.
        enqueue_release_notification(release.id, queued_unit_ids)
    return queued


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
