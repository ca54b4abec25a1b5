"""Applying a device's release report to its deployment.

Idempotent: the same report twice changes nothing, and a report older than what
is recorded (``finished_at`` before the recorded one) is ignored, so a spooled
report delivered late cannot overwrite a newer result.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from api.errors import NotFound, ValidationError
from api.extensions import db
from api.models import Deployment, Device, Project, Release
from api.models.types import utcnow
from api.rollouts import service as rollouts
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


def apply(account_id: int, device: Device, report: Report) -> Deployment:
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
    # locked first (PostgreSQL): the wave decision below counts this report with concurrent ones
    # (an "applying" report decides nothing: it neither locks nor counts)
    rollout = rollouts.lock(release.id) if report.outcome != ReportOutcome.APPLYING else None
    deployment = db.session.scalars(
        select(Deployment).where(
            Deployment.release_id == release.id, Deployment.device_id == device.id
        )
    ).one_or_none()
    if deployment is None:
        # The device ran a release that no longer lists it (or never got a row): still record what happened.
        deployment = Deployment(
            release_id=release.id, device_id=device.id, status=DeploymentState.QUEUED, attempts=0
        )
        db.session.add(deployment)
    changed = _apply_outcome(deployment, report)
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
    db.session.commit()
    if changed:
        log.info(
            "device %s release %s (%s): %s%s",
            device.unit_id,
            release.id,
            release.version_hash,
            report.outcome,
            f" ({report.error})" if report.error else "",
        )
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
    error = report.error if report.outcome == ReportOutcome.FAILED else None
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
