"""The fleet at a glance (the console's fleet page, docs/console.md): a device's *outcome*
(the state of its newest stored deployment, by release id, folded into succeeded / failed /
pending / never reported), its current release (the newest release it applied successfully) and
its last report, filtered, counted and paged in SQL through the indexes -- never a Python loop
over the fleet.

The outcome is stored on the device (``devices.outcome``), kept by database triggers on
``deployments`` in the statement of every write (migration ``0020_device_outcome``), so the counts
and the status filter read the index ``(account_id, outcome, unit_id)`` instead of probing every
device's deployments. :func:`outcome_drift` recomputes it from the rows.

``FleetQuery`` holds the filters (tag, outcome, release, enrolled, search); ``page()`` is one page
by keyset ``(unit_id, id)``, ``counts()`` the outcomes of every device the other filters keep.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, literal, or_, select, type_coerce, union_all

from api.deployments.models import Deployment
from api.deployments.targets import device_tags_of
from api.devices.models import Device
from api.extensions import db
from api.releases.models import Project, Release, release_devices
from api.rollouts.models import device_tags
from api.security import tenancy
from api.types import UTCDateTime
from berth.contract import DeploymentState, DeviceOutcome

_dep = Deployment.__table__
_devices = Device.__table__

OUTCOMES = tuple(DeviceOutcome)
_SUCCEEDED_STATES = (DeploymentState.SUCCEEDED, DeploymentState.REVERTED)
_FAILED_STATES = (DeploymentState.FAILED, DeploymentState.REVERT_FAILED)

# the state of the device's newest stored deployment, computed from the rows (what the triggers
# store in devices.outcome; read by outcome_drift only)
_latest_status = (
    select(_dep.c.status)
    .where(_dep.c.device_id == _devices.c.id)
    .order_by(_dep.c.release_id.desc())
    .limit(1)
    .correlate(_devices)
    .scalar_subquery()
)
_computed_outcome = case(
    (_latest_status.is_(None), literal(DeviceOutcome.NEVER_REPORTED.value)),
    (_latest_status.in_(_SUCCEEDED_STATES), literal(DeviceOutcome.SUCCEEDED.value)),
    (_latest_status.in_(_FAILED_STATES), literal(DeviceOutcome.FAILED.value)),
    else_=literal(DeviceOutcome.PENDING.value),
)

_outcome = _devices.c.outcome

PAGE_SIZE = 50


def outcome_drift(account_id: int | None = None) -> dict[str, tuple[str, str]]:
    """{device id: (stored outcome, recomputed outcome)} of the devices whose stored outcome
    differs from their rows (a scan: for tests and repairs, never for a page)."""
    stmt = select(_devices.c.id, _devices.c.outcome, _computed_outcome).where(
        _devices.c.outcome != _computed_outcome
    )
    if account_id is not None:
        stmt = stmt.where(_devices.c.account_id == account_id)
    return {r[0]: (r[1], r[2]) for r in db.session.execute(stmt)}


def _prefix(column, text: str):
    """SQL: ``column`` starts with ``text``, ignoring case (both sides through the database's
    ``lower()``), as a range the expression index ``(account_id, lower(column))`` serves; LIKE
    keeps it exact (``%`` and ``_`` are characters)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    folded, needle = func.lower(column), func.lower(literal(text))
    return (
        (folded >= needle)
        & (folded < needle.concat("\U0010ffff"))
        & folded.like(func.lower(literal(escaped)).concat("%"), escape="\\")
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
            # the ids each expression index finds (a union, not an OR: the planner then reads
            # the indexes first instead of the account's devices in the page's order)
            found = [
                select(_devices.c.id).where(
                    _devices.c.account_id == self.account_id, _prefix(column, self.search)
                )
                for column in (_devices.c.unit_id, _devices.c.display)
            ]
            stmt = stmt.where(_devices.c.id.in_(union_all(*found)))
        if with_outcome and self.outcome in OUTCOMES:
            stmt = stmt.where(_outcome == self.outcome)
        return stmt

    def counts(self) -> dict[DeviceOutcome, int]:
        """{outcome: devices} over the devices the filters other than ``outcome`` keep."""
        rows = db.session.execute(
            self._where(
                select(_outcome, func.count()).select_from(_devices), with_outcome=False
            ).group_by(_outcome)
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
