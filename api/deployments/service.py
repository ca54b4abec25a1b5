"""Queueing releases on devices. A device runs the newest release (highest id) that lists it.

A deployment is stored only once something happened to it: the device reported
(``applying``, ``succeeded``, ``failed``), or a stored deployment was superseded or
queued again. A device a release lists with no stored deployment is ``queued``
there -- or ``superseded`` when a newer release lists the device too. That part is
derived on read (:func:`deployments_of`), so creating a release for 10,000 devices
writes their ``release_devices`` rows and no deployment rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import timedelta

from sqlalchemy import (
    case,
    delete,
    exists,
    func,
    literal,
    null,
    select,
    union_all,
    update,
)

from api.bulk import id_select
from api.deployments.models import Deployment
from api.devices.models import Device
from api.extensions import db
from api.outbox import REFRESH_PILLAR, RELEASE_PULL, OutboxMessage, enqueue_salt
from api.releases.models import Project, Release, release_devices
from api.rollouts.models import Rollout
from api.security.tenancy import MinionEnrollment, enrolled_unit_ids
from api.types import utcnow
from berth.contract import (
    ACTIVE_DEPLOYMENT_STATES,
    DeploymentState,
    DerivedDeploymentState,
    RolloutState,
)

log = logging.getLogger(__name__)

_deployments = Deployment.__table__


def _listed_by_newer(release_id: int, device_id_column):
    """A release newer than ``release_id`` lists the device: ``release_id`` will never run there."""
    newer = release_devices.alias("rd_newer")
    return exists().where(newer.c.device_id == device_id_column, newer.c.release_id > release_id)


def deployments_of(release_id: int, now=None, refused: str | None = None, devices=None):
    """Every deployment of a release, stored or derived, as one subquery with the columns
    ``device_id, status, error, attempts, started_at, finished_at, wave``; with ``devices`` (device
    ids, or a select of them) only those devices' (a page of the console: read through the
    indexes on ``(release_id, device_id)``, whatever the release's size).

    Derived (no stored row): ``superseded`` when a newer release targets the device, else under
    a rollout ``waiting`` (its wave has not started), ``timed_out`` (current wave, past
    ``wave_timeout``) or ``cancelled`` (halted before the device's turn, aborted, reverted),
    else ``queued``. With ``refused`` (why the account's current release policy refuses the
    release, ``api.policies.release.refusal``) a deployment the device has not started
    (``queued``, ``waiting``, ``timed_out``) is ``refused_by_policy`` with that reason as its error."""
    rd = release_devices
    stored = (
        select(
            _deployments.c.device_id,
            _deployments.c.status,
            _deployments.c.error,
            _deployments.c.attempts,
            _deployments.c.started_at,
            _deployments.c.finished_at,
            rd.c.wave,
        )
        .select_from(
            _deployments.outerjoin(
                rd, (rd.c.release_id == release_id) & (rd.c.device_id == _deployments.c.device_id)
            )
        )
        .where(_deployments.c.release_id == release_id)
    )
    if devices is not None:
        stored = stored.where(_deployments.c.device_id.in_(devices))
    has_row = exists().where(
        _deployments.c.release_id == release_id, _deployments.c.device_id == rd.c.device_id
    )
    whens = [
        (_listed_by_newer(release_id, rd.c.device_id), literal(DeploymentState.SUPERSEDED.value))
    ]
    rollout = db.session.get(Rollout, release_id)
    if rollout is not None:
        if rollout.state in (RolloutState.ABORTED, RolloutState.REVERTING, RolloutState.REVERTED):
            whens.append((literal(True), literal(DerivedDeploymentState.CANCELLED.value)))
        elif rollout.state != RolloutState.COMPLETED:
            whens.append((rd.c.wave > rollout.wave, literal(DerivedDeploymentState.WAITING.value)))
            if rollout.state == RolloutState.HALTED:
                whens.append((literal(True), literal(DerivedDeploymentState.CANCELLED.value)))
            elif (now or utcnow()) >= rollout.wave_started_at + timedelta(
                seconds=rollout.wave_timeout
            ):
                whens.append(
                    (rd.c.wave == rollout.wave, literal(DerivedDeploymentState.TIMED_OUT.value))
                )
    derived = select(
        rd.c.device_id,
        case(*whens, else_=literal(DeploymentState.QUEUED.value)),
        null(),
        literal(0),
        null(),
        null(),
        rd.c.wave,
    ).where(rd.c.release_id == release_id, ~has_row)
    if devices is not None:
        derived = derived.where(rd.c.device_id.in_(devices))
    both = union_all(stored, derived)
    if refused is None:
        return both.subquery("deployments_of")
    rows = both.subquery("deployments_unchecked")
    not_started = rows.c.status.in_(
        [
            DeploymentState.QUEUED.value,
            DerivedDeploymentState.WAITING.value,
            DerivedDeploymentState.TIMED_OUT.value,
        ]
    )
    return select(
        rows.c.device_id,
        case(
            (not_started, literal(DerivedDeploymentState.REFUSED_BY_POLICY.value)),
            else_=rows.c.status,
        ).label("status"),
        case((not_started, literal(refused)), else_=rows.c.error).label("error"),
        rows.c.attempts,
        rows.c.started_at,
        rows.c.finished_at,
        rows.c.wave,
    ).subquery("deployments_of")


def enqueue_release_notification(release_id: int, unit_ids: Iterable[str]) -> list[OutboxMessage]:
    """Tell the minions a release is queued for them: refresh their pillar, then pre-pull its images.

    Only minions enrolled in the release's account are told: a pending device's unit_id may be
    another account's minion (docs/security.md)."""
    unit_ids = list(unit_ids)
    account_id = db.session.scalar(
        select(Project.account_id).join(Release).where(Release.id == release_id)
    )
    if account_id is not None:
        unit_ids = enrolled_unit_ids(account_id, unit_ids)
    else:  # no such release (yet): still never a minion nobody enrolled
        enrolled = set(
            db.session.scalars(
                select(MinionEnrollment.unit_id).where(MinionEnrollment.unit_id.in_(unit_ids))
            )
        )
        unit_ids = [u for u in unit_ids if u in enrolled]
    return enqueue_salt(unit_ids, [REFRESH_PILLAR, RELEASE_PULL], f"release {release_id} queued")


def queue_release(release: Release, devices: Sequence[Sequence[str]]) -> list[str]:
    """Queue ``release`` on ``devices``, ``(device id, unit_id)`` pairs (tuples or rows) of devices
    the release already lists.

    Older releases' stored deployments on those devices that have not finished become
    ``superseded``; this release's stored deployments there (a device listed again) are
    ``queued`` again, or ``superseded`` if a newer release already lists the device.
    Set-based: a handful of statements whatever the number of devices. Writes the outbox
    rows that tell Salt. Flushes, does not commit: the caller commits with the rest of its
    change. Returns the ids of the devices it queued.
    """
    if not devices:
        return []
    db.session.flush()
    device_set = id_select([d[0] for d in devices])
    newer = set()
    if db.session.scalar(select(exists().where(release_devices.c.release_id > release.id))):
        newer = set(
            db.session.scalars(
                select(release_devices.c.device_id).where(
                    release_devices.c.release_id > release.id,
                    release_devices.c.device_id.in_(device_set),
                )
            )
        )
    queued = [d for d in devices if d[0] not in newer] if newer else devices
    _update_stored(release, device_set, utcnow())
    if newer:
        superseded = [d[1] for d in devices if d[0] in newer]
        log.info(
            "release %s: superseded by a newer release on %d device(s): %s",
            release.id,
            len(superseded),
            _some(superseded),
        )
    if queued:
        unit_ids = [d[1] for d in queued]
        log.info(
            "release %s (%s) queued on %d device(s): %s",
            release.id,
            release.version_hash,
            len(queued),
            _some(unit_ids),
        )
        # Same transaction as the release: the worker tells Salt, retrying until delivered.
        enqueue_release_notification(release.id, unit_ids)
        db.session.flush()
    return [d[0] for d in queued]


def _update_stored(release: Release, device_set, now) -> None:
    """The stored deployments that queueing ``release`` on ``device_set`` changes."""
    in_set = _deployments.c.device_id.in_(device_set)
    newer = _listed_by_newer(release.id, _deployments.c.device_id)
    this_release = (_deployments.c.release_id == release.id, in_set)
    if db.session.scalar(select(exists().where(_deployments.c.release_id == release.id))):
        db.session.execute(
            update(_deployments)
            .where(*this_release, _deployments.c.status.in_(ACTIVE_DEPLOYMENT_STATES), newer)
            .values(status=DeploymentState.SUPERSEDED, updated=now)
        )
        db.session.execute(
            update(_deployments)
            .where(*this_release, ~newer)
            .values(
                status=DeploymentState.QUEUED,
                error=None,
                started_at=None,
                finished_at=None,
                updated=now,
            )
        )
    # Only unfinished deployments are touched: found through the status index, they are few
    # (devices applying right now, or queued again), whatever the size of the fleet.
    db.session.execute(
        update(_deployments)
        .where(
            _deployments.c.status.in_(ACTIVE_DEPLOYMENT_STATES),
            _deployments.c.release_id < release.id,
            in_set,
            ~newer,
        )
        .values(status=DeploymentState.SUPERSEDED, updated=now)
    )
    # The statements above bypass the ORM: reload any deployment the session holds.
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, Deployment):
            db.session.expire(obj)


def _some(names: Iterable[str], limit: int = 50) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def unlist_devices(release_ids: Sequence[int], device_ids: Sequence[str] | None = None) -> None:
    """Take devices off releases (``None``: every device they list, as when they are deleted) and
    queue, on each device whose target was one of them, the older release it falls back to.

    The releases' unfinished stored deployments on those devices end: ``queued`` ones are
    forgotten, ``applying`` ones become ``superseded``. A fallback release the device already
    runs (``succeeded``, and it never started one of these) is not queued again. Set-based: a
    fixed number of statements for any number of devices. Flushes, does not commit.
    """
    rd, dep = release_devices, _deployments
    taken = [rd.c.release_id.in_(release_ids)]
    if device_ids is not None:
        if not device_ids:
            return
        taken.append(rd.c.device_id.in_(id_select(device_ids)))
    db.session.flush()
    unlisted = {
        row.device_id: row
        for row in db.session.execute(
            select(rd.c.device_id, Device.unit_id, func.max(rd.c.release_id).label("newest"))
            .join(Device, Device.id == rd.c.device_id)
            .where(*taken)
            .group_by(rd.c.device_id, Device.unit_id)
        )
    }
    if not unlisted:
        return
    db.session.execute(delete(rd).where(*taken))
    devices = id_select(list(unlisted))
    theirs = (dep.c.release_id.in_(release_ids), dep.c.device_id.in_(devices))
    started = set(
        db.session.scalars(
            select(dep.c.device_id).where(
                *theirs,
                dep.c.status.in_(
                    (DeploymentState.APPLYING, DeploymentState.SUCCEEDED, DeploymentState.FAILED)
                ),
            )
        )
    )
    db.session.execute(delete(dep).where(*theirs, dep.c.status == DeploymentState.QUEUED))
    db.session.execute(
        update(dep)
        .where(*theirs, dep.c.status == DeploymentState.APPLYING)
        .values(status=DeploymentState.SUPERSEDED, updated=utcnow())
    )
    log.info(
        "release(s) %s: %d device(s) taken off: %s",
        ", ".join(map(str, release_ids)),
        len(unlisted),
        _some(row.unit_id for row in unlisted.values()),
    )

    fallback = db.session.execute(
        select(rd.c.device_id, func.max(rd.c.release_id))
        .where(rd.c.device_id.in_(devices))
        .group_by(rd.c.device_id)
    ).all()
    # devices whose target was one of these releases (not those a newer release still targets)
    moving = {
        device_id: target for device_id, target in fallback if target < unlisted[device_id].newest
    }
    if not moving:
        return
    stored = {
        device_id: status
        for device_id, release_id, status in db.session.execute(
            select(dep.c.device_id, dep.c.release_id, dep.c.status).where(
                dep.c.release_id.in_(set(moving.values())),
                dep.c.device_id.in_(id_select(list(moving))),
            )
        )
        if moving[device_id] == release_id
    }
    requeue: dict[int, list[tuple[str, str]]] = {}
    for device_id, target in moving.items():
        status = stored.get(device_id)
        if status in ACTIVE_DEPLOYMENT_STATES or (
            status == DeploymentState.SUCCEEDED and device_id not in started
        ):
            continue
        requeue.setdefault(target, []).append((device_id, unlisted[device_id].unit_id))
    for target, devices_of_target in sorted(requeue.items()):
        queue_release(db.session.get_one(Release, target), devices_of_target)
