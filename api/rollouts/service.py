"""Rollout decisions: waves start, halt, complete; operator actions; revert progress.

Decisions are made in the transaction of whatever changed the counts: the report that
reaches a wave's ``advance_at`` starts the next wave (its devices' pillar changes at that
commit) and the report that crosses ``halt_at`` halts the rollout. Only the worker's
timeout check (:func:`tick`) is time-based. A wave's counts are its counters
(:mod:`api.rollouts.counters`, kept by database triggers in the same statement as the rows),
so a decision reads a few rows at any fleet size. The rollout row is locked (``FOR UPDATE`` on
PostgreSQL) before the report's deployment is written and the counters are read, so two
concurrent reports cannot both miss the threshold nor both act on it.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, exists, func, select, text, update

from api import audit
from api.accounts.models import User
from api.deployments.models import Deployment
from api.deployments.service import queue_release
from api.deployments.targets import APPLIED, REVERTS, last_success_before
from api.devices.models import Device
from api.errors import Conflict
from api.extensions import db
from api.outbox import REFRESH_PILLAR, RELEASE_PULL, enqueue_salt, enqueue_webhook
from api.releases.models import Project, Release, release_devices
from api.rollouts import counters
from api.rollouts.models import Rollout, RolloutActionRecord, RolloutWebhook
from api.rollouts.schemas import Rollout as RolloutBody
from api.rollouts.schemas import RolloutActionEntry
from api.types import isoformat, utcnow
from berth.contract import DeploymentState as S
from berth.contract import RolloutAction as A
from berth.contract import RolloutEvent as E
from berth.contract import RolloutState as R
from berth.contract import WaveState as W

log = logging.getLogger(__name__)

_rd, _dep = release_devices, Deployment.__table__
UNREPORTED = (None, S.QUEUED, S.SUPERSEDED)


def lock(release_id: int) -> Rollout | None:
    """The release's rollout, locked for this transaction; None without one.

    PostgreSQL: ``SELECT ... FOR UPDATE``. SQLite has no row locks and reads outside a write
    transaction: a write that changes nothing takes the database's write lock first, so the row
    read is the last committed one and no other writer commits before this transaction ends
    (without it two reports could both read wave 1 and both start wave 2)."""
    if db.session.get_bind().dialect.name == "sqlite":
        db.session.execute(_SQLITE_WRITE_LOCK)
    return db.session.scalars(_LOCK, {"release_id": release_id}).one_or_none()


# a report's statements are built once (their construction and cache key cost more CPU than
# running them); the values are bound per call
_SQLITE_WRITE_LOCK = text("UPDATE rollouts SET wave = wave WHERE 0")
_LOCK = (
    select(Rollout)
    .where(Rollout.release_id == bindparam("release_id"))
    .with_for_update()
    .execution_options(populate_existing=True)
)


def _due(release_id: int, now: datetime) -> bool:
    """The running rollout's counters (read unlocked) cross a threshold."""
    rollout = db.session.get(Rollout, release_id)
    if rollout is None or rollout.state != R.RUNNING:
        return False
    counts = wave_counts(rollout, rollout.wave, now)
    return bool(_halts(rollout, counts)) or _advances(rollout, counts)


# -- counting ------------------------------------------------------------------


def _timed_out_applies(rollout: Rollout, wave: int, now: datetime) -> bool:
    return (
        wave == rollout.wave
        and rollout.state in (R.RUNNING, R.PAUSED, R.HALTED)
        and now >= rollout.wave_started_at + timedelta(seconds=rollout.wave_timeout)
    )


@dataclass(frozen=True)
class WaveCounts:
    """One wave's own devices (not cumulative) by what they did."""

    targets: int
    succeeded: int
    failed: int
    timed_out: int
    pending: int


def _classify(rollout: Rollout, wave: int, statuses: Counter, now: datetime) -> WaveCounts:
    targets = sum(statuses.values())
    succeeded = sum(statuses[s] for s in APPLIED)
    failed = statuses[S.FAILED]
    unreported = sum(statuses[s] for s in UNREPORTED)
    timed_out = unreported if _timed_out_applies(rollout, wave, now) else 0
    return WaveCounts(
        targets=targets,
        succeeded=succeeded,
        failed=failed,
        timed_out=timed_out,
        pending=targets - succeeded - failed - timed_out,
    )


def wave_counts(rollout: Rollout, wave: int, now: datetime | None = None) -> WaveCounts:
    """The wave's counts from its counters (a few rows, whatever the wave's size)."""
    statuses = counters.statuses(rollout.release_id, wave).get(wave, Counter())
    return _classify(rollout, wave, statuses, now or utcnow())


def _halts(rollout: Rollout, counts: WaveCounts) -> str | None:
    if rollout.halt_overridden_wave == rollout.wave:
        return None
    bad = counts.failed + counts.timed_out
    finished = counts.succeeded + bad
    if finished < rollout.halt_min_finished or bad * 100 <= rollout.halt_at * finished:
        return None
    return (
        f"wave {rollout.wave}: {bad} of {finished} finished device(s) failed or timed out "
        f"({counts.failed} failed, {counts.timed_out} timed out; "
        f"{bad * 100 / finished:.1f}% > halt_at {rollout.halt_at}%)"
    )


def _advances(rollout: Rollout, counts: WaveCounts) -> bool:
    return counts.succeeded * 100 >= rollout.advance_at * counts.targets


class Watch:
    """A list of reports followed in memory (api.deployments.reports.record_many): the
    current wave's counts of each locked running rollout, moved item by item, to find the item
    that makes a decision."""

    def __init__(self, locked: dict, devices: dict[int, set[str]]):
        self.now = utcnow()
        self.rollouts = {
            release_id: r
            for release_id, r in locked.items()
            if r is not None and r.state == R.RUNNING and release_id in devices
        }
        self.counts = {
            release_id: counters.statuses(release_id, r.wave).get(r.wave, Counter())
            for release_id, r in self.rollouts.items()
        }
        self.members: dict[int, set[str]] = {}
        for release_id, r in self.rollouts.items():
            self.members[release_id] = set(
                db.session.scalars(
                    select(_rd.c.device_id).where(
                        _rd.c.release_id == release_id,
                        _rd.c.wave == r.wave,
                        _rd.c.device_id.in_(sorted(devices[release_id])),
                    )
                )
            )

    def moved(self, release_id: int, device_id: str, before, after) -> bool:
        """A report moved the device's deployment from ``before`` (None: no row) to ``after``;
        True when the rollout now decides something (halt, next wave, completion)."""
        rollout = self.rollouts.get(release_id)
        if rollout is None or device_id not in self.members[release_id]:
            return False
        counts = self.counts[release_id]
        counts[before] -= 1
        counts[after] += 1
        wave = _classify(rollout, rollout.wave, counts, self.now)
        return bool(_halts(rollout, wave)) or _advances(rollout, wave)


# -- decisions -----------------------------------------------------------------


def evaluate(rollout: Rollout, now: datetime | None = None) -> None:
    """Halt, start the next wave(s) or complete, as the current wave's counts say. The caller
    holds the rollout's lock and commits."""
    now = now or utcnow()
    db.session.flush()
    while rollout.state == R.RUNNING:
        counts = wave_counts(rollout, rollout.wave, now)
        reason = _halts(rollout, counts)
        if reason:
            _stop(rollout, R.HALTED, now, reason)
            return
        if not _advances(rollout, counts):
            return
        if rollout.wave >= len(rollout.waves):
            rollout.state = R.COMPLETED
            log.info("rollout of release %s completed", rollout.release_id)
            emit(rollout, E.COMPLETED, now)
            return
        _start_wave(rollout, rollout.wave + 1, now)


def _start_wave(rollout: Rollout, wave: int, now: datetime) -> None:
    rollout.wave, rollout.wave_started_at = wave, now
    devices = Device.__table__
    members = db.session.execute(
        select(devices.c.id, devices.c.unit_id)
        .join(_rd, _rd.c.device_id == devices.c.id)
        .where(_rd.c.release_id == rollout.release_id, _rd.c.wave == wave)
    ).all()
    log.info(
        "rollout of release %s: wave %d of %d started (%d device(s))",
        rollout.release_id,
        wave,
        len(rollout.waves),
        len(members),
    )
    queue_release(db.session.get_one(Release, rollout.release_id), members)
    emit(rollout, E.WAVE_STARTED, now, targets=len(members))


def _unapplied_started(rollout: Rollout) -> list[str]:
    """Unit ids of devices of started waves that have not applied the release and that no newer
    release lists: their target goes back to what they had."""
    devices = Device.__table__
    newer = release_devices.alias("rd_newer")
    return list(
        db.session.scalars(
            select(devices.c.unit_id)
            .join(_rd, _rd.c.device_id == devices.c.id)
            .outerjoin(
                _dep,
                and_(_dep.c.release_id == _rd.c.release_id, _dep.c.device_id == _rd.c.device_id),
            )
            .where(
                _rd.c.release_id == rollout.release_id,
                _rd.c.wave <= rollout.wave,
                (_dep.c.status.is_(None)) | _dep.c.status.in_((S.QUEUED, S.SUPERSEDED)),
                ~exists().where(
                    newer.c.device_id == _rd.c.device_id, newer.c.release_id > rollout.release_id
                ),
            )
        )
    )


def _stop(rollout: Rollout, state: R, now: datetime, reason: str | None = None) -> None:
    """Halt or abort: hand the release to no further device and tell the devices that had it
    as target and not applied it yet (refresh pillar: their previous target is back)."""
    rollout.state = state
    if reason:
        rollout.halt_reason = reason
    log.warning(
        "rollout of release %s %s%s", rollout.release_id, state, f": {reason}" if reason else ""
    )
    unit_ids = _unapplied_started(rollout)
    enqueue_salt(
        unit_ids, [REFRESH_PILLAR, RELEASE_PULL], f"rollout of release {rollout.release_id} {state}"
    )
    emit(rollout, E.HALTED if state == R.HALTED else E.ABORTED, now)


def _revert(rollout: Rollout, now: datetime) -> None:
    """Every device that applied the release (and no newer one since) goes back to the last
    release it ran successfully before it."""
    release_id = rollout.release_id
    newer = Deployment.__table__.alias("dep_newer")
    moved_on = exists().where(
        newer.c.device_id == _dep.c.device_id,
        newer.c.release_id > release_id,
        newer.c.status.in_((S.SUCCEEDED, S.APPLYING)),
    )
    earlier = Deployment.__table__.alias("dep_earlier")
    last_success = (
        select(func.max(earlier.c.release_id))
        .where(
            earlier.c.device_id == _dep.c.device_id,
            earlier.c.release_id < release_id,
            earlier.c.status == S.SUCCEEDED,
        )
        .scalar_subquery()
    )
    db.session.execute(
        update(_dep)
        .where(_dep.c.release_id == release_id, _dep.c.status == S.SUCCEEDED, ~moved_on)
        .values(status=S.REVERTING, revert_to=last_success, updated=now)
    )
    db.session.execute(
        update(_dep)
        .where(
            _dep.c.release_id == release_id,
            _dep.c.status == S.REVERTING,
            _dep.c.revert_to.is_(None),
        )
        .values(
            status=S.REVERT_FAILED, error="no earlier successful release to go back to", updated=now
        )
    )
    _expire_deployments()
    devices = Device.__table__
    reverting = list(
        db.session.scalars(
            select(devices.c.unit_id)
            .join(_dep, _dep.c.device_id == devices.c.id)
            .where(_dep.c.release_id == release_id, _dep.c.status == S.REVERTING)
        )
    )
    rollout.state = R.REVERTING
    log.warning("rollout of release %s reverting on %d device(s)", release_id, len(reverting))
    # the previous release's images are still on the device: nothing to pull
    enqueue_salt(reverting, [REFRESH_PILLAR], f"release {release_id} reverted")
    enqueue_salt(
        _unapplied_started(rollout),
        [REFRESH_PILLAR, RELEASE_PULL],
        f"rollout of release {release_id} reverting",
    )
    if not reverting:
        _reverted(rollout, now)


def _reverted(rollout: Rollout, now: datetime) -> None:
    rollout.state = R.REVERTED
    log.info("rollout of release %s reverted", rollout.release_id)
    emit(rollout, E.REVERTED, now)


def _expire_deployments() -> None:
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, Deployment):
            db.session.expire(obj)


# -- hooks ---------------------------------------------------------------------


def on_report(
    rollout: Rollout | None, deployment: Deployment, outcome: str, wave: int | None
) -> None:
    """A device reported on ``deployment`` (flushed, not committed); ``rollout`` is its
    release's locked rollout or None, ``wave`` the device's wave in it. Decides what the report
    decides."""
    now = utcnow()
    if outcome in (S.SUCCEEDED, S.FAILED):
        _revert_progress(
            deployment.device_id, deployment.release_id, outcome, deployment.error, now
        )
    if rollout is None:
        return
    if rollout.state in REVERTS:
        if deployment.status == S.SUCCEEDED:  # applied after the revert began: it goes back too
            deployment.status = S.REVERTING
            deployment.revert_to = last_success_before(deployment.device_id, deployment.release_id)
            if rollout.state == R.REVERTED:
                rollout.state = R.REVERTING
            enqueue_salt(
                [deployment.device.unit_id],
                [REFRESH_PILLAR],
                f"release {rollout.release_id} reverted",
            )
        return
    if rollout.state != R.RUNNING:
        return
    if wave == rollout.wave:
        evaluate(rollout, now)


def _revert_progress(device_id: str, release_id: int, outcome: str, error: str | None, now) -> None:
    """A device reporting on an older release finishes its revert of newer ones."""
    db.session.flush()
    pending = db.session.execute(
        _REVERTS_PENDING, {"device_id": device_id, "release_id": release_id}
    ).all()
    if not pending:
        return
    status = S.REVERTED if outcome == S.SUCCEEDED else S.REVERT_FAILED
    db.session.execute(
        update(_dep)
        .where(_dep.c.id.in_([p.id for p in pending]))
        .values(status=status, error=None if status == S.REVERTED else error, updated=now)
    )
    _expire_deployments()
    for release_id_ in sorted({p.release_id for p in pending}):
        rollout = lock(release_id_)
        if rollout is None or rollout.state != R.REVERTING:
            continue
        left = db.session.scalar(
            select(exists().where(_dep.c.release_id == release_id_, _dep.c.status == S.REVERTING))
        )
        if not left:
            _reverted(rollout, now)


_REVERTS_PENDING = select(_dep.c.id, _dep.c.release_id).where(
    _dep.c.device_id == bindparam("device_id"),
    _dep.c.status.in_((S.REVERTING, S.REVERT_FAILED)),
    _dep.c.release_id > bindparam("release_id"),
)


def tick(now: datetime | None = None) -> int:
    """Worker: decide running rollouts whose current wave timed out, or whose counters crossed a
    threshold without a decision (a safety net: a report decides in its own transaction).
    Returns how many changed."""
    now = now or utcnow()
    changed = 0
    for release_id, started, timeout in db.session.execute(
        select(Rollout.release_id, Rollout.wave_started_at, Rollout.wave_timeout).where(
            Rollout.state == R.RUNNING
        )
    ).all():
        if now < started + timedelta(seconds=timeout) and not _due(release_id, now):
            continue
        rollout = lock(release_id)
        if rollout is None or rollout.state != R.RUNNING:
            db.session.rollback()
            continue
        evaluate(rollout, now)
        changed += rollout.state != R.RUNNING
        db.session.commit()
    return changed


# -- operator actions ----------------------------------------------------------

ALLOWED: dict[A, dict[str, R | None]] = {
    A.PAUSE: {R.RUNNING: R.PAUSED, R.PAUSED: None},
    A.RESUME: {R.PAUSED: R.RUNNING, R.HALTED: R.RUNNING, R.RUNNING: None},
    A.ABORT: {R.RUNNING: R.ABORTED, R.PAUSED: R.ABORTED, R.HALTED: R.ABORTED, R.ABORTED: None},
    A.REVERT: {
        R.RUNNING: R.REVERTING,
        R.PAUSED: R.REVERTING,
        R.HALTED: R.REVERTING,
        R.COMPLETED: R.REVERTING,
        R.ABORTED: R.REVERTING,
        R.REVERTING: None,
        R.REVERTED: None,
    },
}


def act(release: Release, action: A, user_id: int | None, token_id: int | None) -> Rollout:
    """Apply an operator action: idempotent (repeating it changes nothing and is not recorded
    again), 409 where it makes no sense. The caller commits."""
    rollout = lock(release.id)
    if rollout is None:
        raise Conflict(f"Cannot {action}: this release has no rollout.")
    now = utcnow()
    if rollout.state not in ALLOWED[action]:
        raise Conflict(f"Cannot {action} a rollout that is {rollout.state}.")
    target = ALLOWED[action][rollout.state]
    if target is None:
        return rollout
    before = rollout.state
    if action == A.PAUSE:
        rollout.state = R.PAUSED
    elif action == A.RESUME:
        if before == R.HALTED:
            rollout.halt_overridden_wave = rollout.wave
        rollout.state = R.RUNNING
        if before == R.HALTED:
            # the devices the halt sent back get the release again
            devices = Device.__table__
            members = db.session.execute(
                select(devices.c.id, devices.c.unit_id)
                .join(_rd, _rd.c.device_id == devices.c.id)
                .outerjoin(
                    _dep,
                    and_(
                        _dep.c.release_id == _rd.c.release_id, _dep.c.device_id == _rd.c.device_id
                    ),
                )
                .where(
                    _rd.c.release_id == release.id,
                    _rd.c.wave <= rollout.wave,
                    (_dep.c.status.is_(None)) | _dep.c.status.in_((S.QUEUED, S.SUPERSEDED)),
                )
            ).all()
            queue_release(release, members)
        evaluate(rollout, now)
    elif action == A.ABORT:
        _stop(rollout, R.ABORTED, now)
    elif action == A.REVERT:
        _revert(rollout, now)
    user = db.session.get(User, user_id) if user_id is not None else None
    db.session.add(
        RolloutActionRecord(
            release_id=release.id,
            action=action,
            state_before=before,
            state_after=rollout.state,
            user_id=user_id,
            user_email=user.email if user else "",
            token_id=token_id,
            at=now,
        )
    )
    audit.record(
        "rollout.action",
        target=f"release:{release.id}",
        details={"action": str(action), "state_before": before, "state_after": rollout.state},
    )
    log.info(
        "rollout of release %s: %s by %s: %s -> %s",
        release.id,
        action,
        user.email if user else f"token {token_id}",
        before,
        rollout.state,
    )
    return rollout


# -- webhooks ------------------------------------------------------------------


def emit(rollout: Rollout, event: E, now: datetime, **extra) -> None:
    """Queue a signed POST of the event to every rollout webhook of the release's account."""
    release = db.session.get_one(Release, rollout.release_id)
    account_id = db.session.scalars(
        select(Project.account_id).where(Project.id == release.project_id)
    ).one()
    urls = db.session.scalars(
        select(RolloutWebhook.url)
        .where(RolloutWebhook.account_id == account_id)
        .order_by(RolloutWebhook.id)
    ).all()
    body = {
        "event": str(event),
        "release": release.id,
        "project": release.project_id,
        "version": release.version,
        "version_hash": release.version_hash,
        "state": str(rollout.state),
        "wave": rollout.wave,
        "waves": len(rollout.waves),
        "halt_reason": rollout.halt_reason if event == E.HALTED else None,
        "at": isoformat(now),
        **extra,
    }
    for url in urls:
        enqueue_webhook(url, account_id, body, f"{event} release {release.id}")


# -- the rollout body ----------------------------------------------------------


def _wave_state(rollout: Rollout, index: int) -> W:
    state = rollout.state
    if state == R.COMPLETED:
        return W.DONE
    if state in REVERTS:
        return W.REVERTED if index <= rollout.wave else W.CANCELLED
    if index < rollout.wave:
        return W.DONE
    if index > rollout.wave:
        return W.CANCELLED if state == R.ABORTED else W.WAITING
    return {R.RUNNING: W.RUNNING, R.PAUSED: W.PAUSED, R.HALTED: W.HALTED, R.ABORTED: W.ABORTED}[
        R(state)
    ]


def serialize(rollout: Rollout, now: datetime | None = None) -> dict:
    """The ``Rollout`` body (its response model, :class:`api.rollouts.schemas.Rollout`)."""
    now = now or utcnow()
    counts = counters.statuses(rollout.release_id)
    waves = [
        {
            "index": index,
            "percent": percent,
            **asdict(_classify(rollout, index, counts.get(index, Counter()), now)),
            "state": _wave_state(rollout, index),
        }
        for index, percent in enumerate(rollout.waves, start=1)
    ]
    revert = None
    if rollout.state in REVERTS:
        statuses: Counter[str] = Counter()
        for c in counts.values():
            statuses.update(c)
        revert = dict(
            devices=statuses[S.REVERTING] + statuses[S.REVERTED] + statuses[S.REVERT_FAILED],
            reverted=statuses[S.REVERTED],
            failed=statuses[S.REVERT_FAILED],
            pending=statuses[S.REVERTING],
        )
    history = db.session.scalars(
        select(RolloutActionRecord)
        .where(RolloutActionRecord.release_id == rollout.release_id)
        .order_by(RolloutActionRecord.id)
    ).all()
    return RolloutBody.body(
        rollout,
        release=rollout.release_id,
        waves=waves,
        policy=rollout.policy(),
        **dict(revert=revert),  # a keyword: the field is named like the action word (test_contract)
        history=[RolloutActionEntry.body(h, user=h.user_id) for h in history],
    )
