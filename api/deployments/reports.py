"""Applying a device's release report to its deployment.

Idempotent: the same report twice changes nothing (also two copies arriving at once), and a
report older than what is recorded (``finished_at`` before the recorded one) is ignored, so a
spooled report delivered late cannot overwrite a newer result. A batch of reports is applied in
one transaction: :func:`resolve` each (reads), :func:`lock_rollouts`, :func:`record` each, commit.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import and_, bindparam, exists, select, update

from api.bulk import dialect_insert
from api.deployments.models import Deployment
from api.deployments.targets import REVERTS
from api.devices.models import Device
from api.errors import NotFound, ValidationError
from api.extensions import db
from api.releases.models import Project, Release, release_devices
from api.releases.serializers import serialize_deployment
from api.rollouts import service as rollouts
from api.types import utcnow
from berth.contract import ACTIVE_DEPLOYMENT_STATES, DeploymentState, ReportOutcome, RolloutState

log = logging.getLogger(__name__)


@dataclass
class Report:
    unit_id: str
    release_id: int
    version_hash: str | None
    outcome: str
    error: str | None
    containers: list[dict[str, Any]]
    finished_at: datetime | None

    @classmethod
    def from_body(cls, values: dict[str, Any]) -> Report:
        """From the clean values of a ``DeploymentReport`` body (:mod:`api.master.schemas`)."""
        # the signature was checked on the body as sent (api.security.report_keys)
        values = {k: v for k, v in values.items() if k != "signature"}
        return cls(**{**values, "containers": values.get("containers") or []})


def resolve(account_id: int, report: Report) -> Release:
    """The release ``report`` is about, checked (404, 400 naming ``version_hash``); reads only."""
    release = db.session.scalars(
        _RELEASE, {"release_id": report.release_id, "account_id": account_id}
    ).one_or_none()
    if release is None:
        raise NotFound(f"No release {report.release_id} in this account.")
    if report.version_hash and report.version_hash != release.version_hash:
        raise ValidationError(
            {
                "version_hash": [
                    f'Release {release.id} has version_hash "{release.version_hash}", not "{report.version_hash}".'
                ]
            }
        )
    return release


# a report's statements, built once (their construction and cache key cost more CPU than running
# them); the values are bound per call
_RELEASE = (
    select(Release)
    .join(Project)
    .where(Release.id == bindparam("release_id"), Project.account_id == bindparam("account_id"))
)


def lock_rollouts(reports: list[tuple[Release, Report]]) -> dict[int, object]:
    """Lock, in release order, the rollouts the reports of one transaction decide on: two
    batches naming the same releases in another order wait for each other, never deadlock.
    Returns ``{release id: its rollout or None}`` for :func:`record`."""
    return {
        release_id: rollouts.lock(release_id)
        for release_id in sorted({r.id for r, report in reports if _decides(report)})
    }


def _decides(report: Report) -> bool:
    # an "applying" report decides nothing: it neither locks nor counts
    return report.outcome != ReportOutcome.APPLYING


def record(
    release: Release, device: Device, report: Report, locked: dict | None = None
) -> tuple[Deployment, bool]:
    """Apply ``report`` to the device's deployment of ``release`` and decide what it decides
    (flushed, not committed). Returns the deployment and whether the report changed it.
    ``locked``: what :func:`lock_rollouts` returned, when the caller locked them already."""
    # locked first: the wave decision below counts this report with concurrent ones
    rollout = None
    if _decides(report):
        rollout = locked[release.id] if locked is not None else rollouts.lock(release.id)
    deployment, wave = _deployment_row(release.id, device.id)
    changed = _apply_outcome(deployment, report)
    _consume_lock_override(device, report)
    if changed and report.outcome == ReportOutcome.SUCCEEDED:
        db.session.execute(_SUPERSEDE, {"b_device_id": device.id, "b_release_id": release.id})
    # also when unchanged: a device reverting to a release it already ran reports that release's
    # old result again, and that report is what finishes its revert
    db.session.flush()
    rollouts.on_report(rollout, deployment, report.outcome, wave)
    return deployment, changed


_dep, _rd = Deployment.__table__, release_devices
_SUPERSEDE = (
    update(Deployment)
    .where(
        Deployment.device_id == bindparam("b_device_id"),
        Deployment.release_id < bindparam("b_release_id"),
        Deployment.status.in_(ACTIVE_DEPLOYMENT_STATES),
    )
    .values(status=DeploymentState.SUPERSEDED)
    .execution_options(synchronize_session=False)
)
_COLUMNS = ("status", "error", "attempts", "started_at", "finished_at")


def record_many(
    items: list[tuple[Release, Device, Report]], locked: dict
) -> list[tuple[Any, bool]]:
    """:func:`record` for the reports of one list, set-based: per run of items, one read of their
    deployments, one ``INSERT`` of the new rows, one ``UPDATE`` (executemany) of the changed ones
    and one supersede per release. Decisions are the ones the items would make one by one: the
    wave's counts are followed in memory item by item, and where one item crosses a threshold the
    run ends there, is written, and the rollout decides (then the next run starts). A report
    twice in a list is applied once. Returns per item its deployment as it stood after that
    item (an object with the columns) and whether the item changed it. Lists that need what only
    :func:`record` does (a rollout being reverted, a device finishing a revert, the operator's
    override of the update locks) go item by item."""
    if _needs_items(items, locked):
        return [record(release, device, report, locked) for release, device, report in items]
    answers: list[tuple[Any, bool]] = []
    while len(answers) < len(items):
        answers += _record_run(items[len(answers) :], locked)
    return answers


def _record_run(items: list[tuple[Release, Device, Report]], locked: dict) -> list:
    """Apply the items up to the first one that makes a decision (or all); returns their
    answers."""
    db.session.flush()
    by_release: dict[int, set[str]] = defaultdict(set)
    for release, device, _ in items:
        by_release[release.id].add(device.id)
    state = _stored_rows(by_release)
    stored = set(state)
    watch = rollouts.Watch(locked, by_release)
    dirty: set[tuple[int, str]] = set()
    answers: list[tuple[Any, bool]] = []
    for release, device, report in items:
        key = (release.id, device.id)
        if key not in state:
            state[key] = SimpleNamespace(
                id=None, release_id=release.id, device_id=device.id,
                status=DeploymentState.QUEUED, error=None, revert_to=None, attempts=0,
                started_at=None, finished_at=None,
            )  # fmt: skip
        before = state[key].status if key in stored or key in dirty else None
        changed = _apply_outcome(state[key], report)
        if changed:
            dirty.add(key)
        answers.append((SimpleNamespace(**vars(state[key])), changed))
        if changed and watch.moved(release.id, device.id, before, state[key].status):
            break  # this item decides: what follows is counted after the decision
    late = _insert_new([state[k] for k in sorted(dirty - stored)])
    _update_stored([state[k] for k in sorted(dirty & stored)])
    _supersede_older([state[k] for k in sorted(dirty)])
    for index, (release, device, report) in enumerate(items[: len(answers)]):
        if (release.id, device.id) in late:  # another request wrote its first row meanwhile
            answers[index] = record(release, device, report, locked)
    for release_id in sorted(by_release):
        rollout = locked.get(release_id)
        if rollout is not None and rollout.state == RolloutState.RUNNING:
            rollouts.evaluate(rollout)
    return answers


def _stored_rows(by_release: dict[int, set[str]]) -> dict[tuple[int, str], SimpleNamespace]:
    """The stored deployments of these (release, devices), locked (PostgreSQL)."""
    state = {}
    for release_id, device_ids in sorted(by_release.items()):
        for row in db.session.execute(
            select(_dep)
            .where(_dep.c.release_id == release_id, _dep.c.device_id.in_(sorted(device_ids)))
            .with_for_update()
        ):
            state[(row.release_id, row.device_id)] = SimpleNamespace(**row._mapping)
    return state


def _supersede_older(rows: list[SimpleNamespace]) -> None:
    """What :func:`record` does for a success: older unfinished deployments are superseded."""
    succeeded: dict[int, list[str]] = defaultdict(list)
    for row in rows:
        if row.status == DeploymentState.SUCCEEDED:
            succeeded[row.release_id].append(row.device_id)
    for release_id, device_ids in succeeded.items():
        db.session.execute(
            update(_dep)
            .where(
                _dep.c.device_id.in_(device_ids),
                _dep.c.release_id < release_id,
                _dep.c.status.in_(ACTIVE_DEPLOYMENT_STATES),
            )
            .values(status=DeploymentState.SUPERSEDED)
        )
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, Deployment):
            db.session.expire(obj)


def _needs_items(items: list[tuple[Release, Device, Report]], locked: dict) -> bool:
    if any(r is not None and r.state in REVERTS for r in locked.values()):
        return True
    if any(device.update_lock_override_at is not None for _, device, _ in items):
        return True
    device_ids = sorted({device.id for _, device, _ in items})
    return bool(
        db.session.scalar(
            select(
                exists().where(
                    _dep.c.device_id.in_(device_ids),
                    _dep.c.status.in_((DeploymentState.REVERTING, DeploymentState.REVERT_FAILED)),
                )
            )
        )
    )


def _insert_new(rows: list[SimpleNamespace]) -> set[tuple[int, str]]:
    """One ``INSERT`` of first rows; returns the keys another request inserted first. The rows
    are parameters of one statement (SQLAlchemy sends them as multi-row ``VALUES`` batches), not
    values written into it: a statement holding the values is compiled anew for every list,
    which cost more CPU than the rest of the list's work."""
    if not rows:
        return set()
    inserted = db.session.execute(
        dialect_insert(_dep)
        .on_conflict_do_nothing(index_elements=["release_id", "device_id"])
        .returning(_dep.c.release_id, _dep.c.device_id),
        [
            {"release_id": r.release_id, "device_id": r.device_id}
            | {c: getattr(r, c) for c in _COLUMNS}
            for r in rows
        ],
    ).all()
    return {(r.release_id, r.device_id) for r in rows} - {tuple(k) for k in inserted}


def _update_stored(rows: list[SimpleNamespace]) -> None:
    if not rows:
        return
    db.session.execute(
        update(_dep)
        .where(_dep.c.id == bindparam("_id"))
        .values({c: bindparam(f"_{c}") for c in _COLUMNS}),
        [{"_id": r.id} | {f"_{c}": getattr(r, c) for c in _COLUMNS} for r in rows],
    )


def apply(account_id: int, device: Device, report: Report) -> dict:
    """One report in its own transaction; returns the deployment as the API shows it (made
    before the commit: nothing is read again after it)."""
    release = resolve(account_id, report)
    deployment, changed = record(release, device, report)
    shown = serialize_deployment(deployment, release.id, device.unit_id)
    unit_id, release_id, version_hash = device.unit_id, release.id, release.version_hash
    db.session.commit()
    if changed:
        log_change(unit_id, release_id, version_hash, report)
    return shown


def log_change(unit_id: str, release_id: int, version_hash: str, report: Report) -> None:
    log.info(
        "device %s release %s (%s): %s%s",
        unit_id,
        release_id,
        version_hash,
        report.outcome,
        f" ({report.error})" if report.error else "",
    )


def _consume_lock_override(device: Device, report: Report) -> None:
    """The operator's one-time override of the update locks is used up by the device's report of
    an apply that finished after it was set (a deferral or an "applying" does not use it)."""
    override = device.update_lock_override_at
    if override is None or report.outcome not in (ReportOutcome.SUCCEEDED, ReportOutcome.FAILED):
        return
    if (report.finished_at or utcnow()) >= override:
        device.update_lock_override_at = None


def _deployment_row(release_id: int, device_id: str) -> tuple[Deployment, int | None]:
    """The device's deployment of the release, locked (PostgreSQL), created when the device never
    got a row (or ran a release that no longer lists it: what happened is still recorded), and
    the device's rollout wave in the release (None: not a target), read with it. Two first
    reports at once (a re-send after a lost answer) both get the one row: the insert is
    ``ON CONFLICT DO NOTHING`` and waits for the other's insert to commit."""
    keys = {"release_id": release_id, "device_id": device_id}
    found = db.session.execute(_DEPLOYMENT_ROW, keys).one_or_none()
    if found is None:
        db.session.execute(
            dialect_insert(Deployment.__table__)
            .values(
                release_id=release_id,
                device_id=device_id,
                status=DeploymentState.QUEUED,
                attempts=0,
            )
            .on_conflict_do_nothing(index_elements=["release_id", "device_id"])
        )
        found = db.session.execute(_DEPLOYMENT_ROW, keys).one()
    return found[0], found[1]


_DEPLOYMENT_ROW = (
    select(Deployment, _rd.c.wave)
    .outerjoin(
        _rd,
        and_(_rd.c.release_id == Deployment.release_id, _rd.c.device_id == Deployment.device_id),
    )
    .where(
        Deployment.release_id == bindparam("release_id"),
        Deployment.device_id == bindparam("device_id"),
    )
    .with_for_update(of=Deployment)
    .execution_options(populate_existing=True)
)


def _apply_outcome(deployment: Deployment | SimpleNamespace, report: Report) -> bool:
    """Update ``deployment`` (a row, or a batch's stand-in with its columns) from ``report``; False
    when the report changes nothing."""
    now = utcnow()
    if report.outcome == ReportOutcome.APPLYING:
        if deployment.status == DeploymentState.APPLYING:
            return False
        if (
            report.finished_at
            and deployment.finished_at
            and report.finished_at <= deployment.finished_at
        ):
            return False  # an "applying" older than the recorded result
        deployment.status = DeploymentState.APPLYING
        deployment.attempts = (deployment.attempts or 0) + 1
        deployment.started_at = report.finished_at or now
        deployment.error = None
        deployment.finished_at = None
        return True
    # a deferral's error names the container holding its update lock
    error = (
        report.error if report.outcome in (ReportOutcome.FAILED, ReportOutcome.DEFERRED) else None
    )
    finished = report.finished_at or now
    if deployment.status == report.outcome and (deployment.error or None) == (error or None):
        return False  # the same result again (a retried or re-synced report)
    if (
        deployment.finished_at
        and report.finished_at
        and report.finished_at < deployment.finished_at
    ):
        return False
    if deployment.status != DeploymentState.APPLYING:
        deployment.attempts = (deployment.attempts or 0) + 1
    deployment.status = DeploymentState(report.outcome)
    deployment.error = error
    deployment.finished_at = finished
    if deployment.started_at is None:
        deployment.started_at = finished
    return True
