"""The fleet at a glance (the console's fleet page, docs/console.md): a device's *outcome*
(the state of its newest stored deployment, by release id, folded into succeeded / failed /
pending / never reported), its current release (the newest release it applied successfully) and
its last report, filtered, counted and paged in SQL through the indexes -- never a Python loop
over the fleet.

``FleetQuery`` holds the filters (tag, outcome, release, enrolled, search); ``page()`` is one page
by keyset ``(unit_id, id)``, ``counts()`` the outcomes of every device the other filters keep.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, literal, or_, select, type_coerce

from api.extensions import db
from api.models import Deployment, Device, Project, Release, release_devices
from api.rollouts.models import device_tags
from api.rollouts.targets import device_tags_of
from api.security import tenancy
from api.types import UTCDateTime
from berth.contract import DeploymentState, DeviceOutcome

_dep = Deployment.__table__
_devices = Device.__table__

OUTCOMES = tuple(DeviceOutcome)
_SUCCEEDED_STATES = (DeploymentState.SUCCEEDED, DeploymentState.REVERTED)
_FAILED_STATES = (DeploymentState.FAILED, DeploymentState.REVERT_FAILED)

# the state of the device's newest stored deployment (index uq_deployments_release_id and
# ix_deployments_device_id_status: a few rows per device)
_latest_status = (
    select(_dep.c.status)
    .where(_dep.c.device_id == _devices.c.id)
    .order_by(_dep.c.release_id.desc())
    .limit(1)
    .correlate(_devices)
    .scalar_subquery()
)
_outcome = case(
    (_latest_status.is_(None), literal(DeviceOutcome.NEVER_REPORTED.value)),
    (_latest_status.in_(_SUCCEEDED_STATES), literal(DeviceOutcome.SUCCEEDED.value)),
    (_latest_status.in_(_FAILED_STATES), literal(DeviceOutcome.FAILED.value)),
    else_=literal(DeviceOutcome.PENDING.value),
)

PAGE_SIZE = 50


def _prefix(column, text: str):
    """SQL: ``column`` starts with ``text`` (case-sensitive), as a range its index serves
    (``(account_id, unit_id)``, ``(account_id, display)``); LIKE keeps it exact."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return (
        (column >= text) & (column < text + "\U0010ffff") & column.like(escaped + "%", escape="\\")
    )


@dataclass
class FleetQuery:
    account_id: int
    tag: str = ""
    outcome: str = ""
    release_id: int | None = None
    enrolled: bool | None = None
    search: str = ""

    def _where(self, stmt, with_outcome: bool = True):
        stmt = stmt.where(_devices.c.account_id == self.account_id)
        if self.tag:
            stmt = stmt.where(
                _devices.c.id.in_(
                    select(device_tags.c.device_id).where(device_tags.c.tag == self.tag)
                )
            )
        if self.release_id is not None:
            # the release's targets, listed or by tag (release_devices holds both)
            stmt = stmt.where(
                _devices.c.id.in_(
                    select(release_devices.c.device_id).where(
                        release_devices.c.release_id == self.release_id
                    )
                )
            )
        if self.enrolled is not None:
            clause = tenancy.enrolled_clause(_devices)
            stmt = stmt.where(clause if self.enrolled else ~clause)
        if self.search:
            stmt = stmt.where(
                or_(
                    _prefix(_devices.c.unit_id, self.search),
                    _prefix(_devices.c.display, self.search),
                )
            )
        if with_outcome and self.outcome in OUTCOMES:
            stmt = stmt.where(_outcome == self.outcome)
        return stmt

    def counts(self) -> dict[DeviceOutcome, int]:
        """{outcome: devices} over the devices the filters other than ``outcome`` keep."""
        bucket = _outcome.label("outcome")
        rows = db.session.execute(
            self._where(
                select(bucket, func.count()).select_from(_devices), with_outcome=False
            ).group_by(bucket)
        ).all()
        counts = dict.fromkeys(OUTCOMES, 0)
        counts.update({DeviceOutcome(outcome): n for outcome, n in rows})
        return counts

    def page(self, after: tuple[str, str] | None = None, size: int = PAGE_SIZE) -> FleetPage:
        """The devices after ``after`` (``(unit_id, id)`` of the last one shown), in unit id
        order, with their tags, enrollment, current release and last report."""
        enrolled = tenancy.enrolled_clause(_devices).label("enrolled")
        stmt = self._where(
            select(
                _devices.c.id, _devices.c.unit_id, _devices.c.display, enrolled, _outcome
            ).select_from(_devices)
        )
        if after is not None:
            stmt = stmt.where(
                or_(
                    _devices.c.unit_id > after[0],
                    (_devices.c.unit_id == after[0]) & (_devices.c.id > after[1]),
                )
            )
        rows = db.session.execute(
            stmt.order_by(_devices.c.unit_id, _devices.c.id).limit(size + 1)
        ).all()
        more = len(rows) > size
        rows = rows[:size]
        ids = [r.id for r in rows]
        tags = device_tags_of(ids)
        current = _current_releases(ids)
        last = _last_reports(ids)
        devices = [
            FleetDevice(
                id=r.id,
                unit_id=r.unit_id,
                display=r.display,
                enrolled=bool(r.enrolled),
                outcome=DeviceOutcome(r[4]),
                tags=tags[r.id],
                current_release=current.get(r.id),
                last_report=last.get(r.id),
            )
            for r in rows
        ]
        return FleetPage(devices, (rows[-1].unit_id, rows[-1].id) if more else None)


@dataclass
class ReleaseRef:
    id: int
    version: str
    project_id: int
    project: str


@dataclass
class LastReport:
    release: ReleaseRef
    status: str
    error: str | None
    at: datetime | None


@dataclass
class FleetDevice:
    id: str
    unit_id: str
    display: str
    enrolled: bool
    outcome: DeviceOutcome
    tags: list[str]
    current_release: ReleaseRef | None
    last_report: LastReport | None


@dataclass
class FleetPage:
    devices: list[FleetDevice]
    next_after: tuple[str, str] | None


def _release_refs(release_ids) -> dict[int, ReleaseRef]:
    if not release_ids:
        return {}
    rows = db.session.execute(
        select(Release.id, Release.version, Project.id, Project.name)
        .join(Project, Project.id == Release.project_id)
        .where(Release.id.in_(list(release_ids)))
    )
    return {r[0]: ReleaseRef(r[0], r[1], r[2], r[3]) for r in rows}


def _current_releases(device_ids: list[str]) -> dict[str, ReleaseRef]:
    """{device id: the newest release it applied successfully} for one page of devices."""
    if not device_ids:
        return {}
    rows = db.session.execute(
        select(_dep.c.device_id, func.max(_dep.c.release_id))
        .where(_dep.c.device_id.in_(device_ids), _dep.c.status == DeploymentState.SUCCEEDED)
        .group_by(_dep.c.device_id)
    ).all()
    refs = _release_refs({r[1] for r in rows})
    return {device_id: refs[release_id] for device_id, release_id in rows}


def _last_reports(device_ids: list[str]) -> dict[str, LastReport]:
    """{device id: its newest stored deployment} for one page of devices: state, error and when."""
    if not device_ids:
        return {}
    newest = (
        select(_dep.c.device_id, func.max(_dep.c.release_id).label("release_id"))
        .where(_dep.c.device_id.in_(device_ids))
        .group_by(_dep.c.device_id)
        .subquery()
    )
    rows = db.session.execute(
        select(
            _dep.c.device_id,
            _dep.c.release_id,
            _dep.c.status,
            _dep.c.error,
            type_coerce(
                func.coalesce(_dep.c.finished_at, _dep.c.started_at, _dep.c.updated), UTCDateTime
            ),
        ).join(
            newest,
            (newest.c.device_id == _dep.c.device_id) & (newest.c.release_id == _dep.c.release_id),
        )
    ).all()
    refs = _release_refs({r[1] for r in rows})
    return {r[0]: LastReport(refs[r[1]], r[2], r[3], r[4]) for r in rows}
