"""Applying a device's release report to its deployment.

Idempotent: the same report twice changes nothing (also two copies arriving at once), and a
report older than what is recorded (``finished_at`` before the recorded one) is ignored, so a
spooled report delivered late cannot overwrite a newer result. A batch of reports is applied in
one transaction: :func:`resolve` each (reads), :func:`lock_rollouts`, :func:`record` each, commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from api.bulk import dialect_insert
from api.errors import NotFound, ValidationError
from api.extensions import db
from api.models import Deployment, Device, Project, Release
from api.rollouts import service as rollouts
from api.types import utcnow
from berth.contract import ACTIVE_DEPLOYMENT_STATES, DeploymentState, ReportOutcome

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
        """From the clean values of a ``DeploymentReport`` body (:mod:`api.schemas.master`)."""
        # the signature was checked on the body as sent (api.security.report_keys)
        values = {k: v for k, v in values.items() if k != "signature"}
        return cls(**{**values, "containers": values.get("containers") or []})


def resolve(account_id: int, report: Report) -> Release:
    """The release ``report`` is about, checked (404, 400 naming ``version_hash``); reads only."""
    release = db.session.scalars(
        select(Release)
        .join(Project)
        .where(Release.id == report.release_id, Project.account_id == account_id)
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
    deployment = _deployment_row(release.id, device.id)
    changed = _apply_outcome(deployment, report)
    _consume_lock_override(device, report)
    if changed and report.outcome == ReportOutcome.SUCCEEDED:
        db.session.execute(
            update(Deployment)
            .where(
                Deployment.device_id == device.id,
                Deployment.release_id < release.id,
                Deployment.status.in_(ACTIVE_DEPLOYMENT_STATES),
            )
            .values(status=DeploymentState.SUPERSEDED)
            .execution_options(synchronize_session=False)
        )
    # also when unchanged: a device reverting to a release it already ran reports that release's
    # old result again, and that report is what finishes its revert
    db.session.flush()
    rollouts.on_report(rollout, deployment, report.outcome)
    return deployment, changed


def apply(account_id: int, device: Device, report: Report) -> Deployment:
    """One report in its own transaction."""
    release = resolve(account_id, report)
    deployment, changed = record(release, device, report)
    db.session.commit()
    if changed:
        log_change(device, release, report)
    return deployment


def log_change(device: Device, release: Release, report: Report) -> None:
    log.info(
        "device %s release %s (%s): %s%s",
        device.unit_id,
        release.id,
        release.version_hash,
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


def _deployment_row(release_id: int, device_id: str) -> Deployment:
    """The device's deployment of the release, locked (PostgreSQL), created when the device never
    got a row (or ran a release that no longer lists it: what happened is still recorded). Two
    first reports at once (a re-send after a lost answer) both get the one row: the insert is
    ``ON CONFLICT DO NOTHING`` and waits for the other's insert to commit."""
    query = (
        select(Deployment)
        .where(Deployment.release_id == release_id, Deployment.device_id == device_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    deployment = db.session.scalars(query).one_or_none()
    if deployment is None:
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
        deployment = db.session.scalars(query).one()
    return deployment


def _apply_outcome(deployment: Deployment, report: Report) -> bool:
    """Update ``deployment`` from ``report``; False when the report changes nothing."""
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
