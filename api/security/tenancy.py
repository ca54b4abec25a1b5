"""Which account a minion belongs to (docs/security.md, "Tenancy").

A ``unit_id`` is unique per account: any account may register one (``POST /devices/``), but
such a device stays *pending* -- nothing is executed on it, no pillar is served for it, no
Salt message targets it -- until the minion proves it belongs to that account:

* through a master whose master-scope token is the account's (a single-tenant master):
  ``berth.register_minions`` of the keys that master accepted (``POST /master/devices/sync/``);
* through any master (a platform token): the minion presents an enrollment token of the
  account (grain ``berth_enrollment_token``), which the ext_pillar forwards
  (``POST /master/devices/enroll/``).

The proof is a row of ``minion_enrollments`` (unit_id -> account). It has no foreign key to
the device, so deleting a device does not free its unit_id for another account: only the
minion enrolling again moves it. Sync never moves a minion enrolled in another account.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from flask import g
from sqlalchemy import ForeignKey, String, exists, insert, select
from sqlalchemy.orm import Mapped, mapped_column

from api.errors import Conflict, NotFound
from api.extensions import db
from api.models import Device
from api.models.types import UTCDateTime, utcnow

log = logging.getLogger(__name__)

METHODS = ("master_sync", "enrollment_token", "migration")


class MinionEnrollment(db.Model):
    """A minion's proven account: the one account whose devices of this unit_id are served."""

    __tablename__ = "minion_enrollments"

    unit_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    method: Mapped[str] = mapped_column(String(20))
    enrollment_token_id: Mapped[int | None] = mapped_column()
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


_enrollments = MinionEnrollment.__table__


def enrolled_clause(devices=Device.__table__):
    """SQL: the device (row of ``devices``) is enrolled in its account."""
    return exists().where(
        _enrollments.c.unit_id == devices.c.unit_id,
        _enrollments.c.account_id == devices.c.account_id,
    )


def is_enrolled(device) -> bool:
    return (
        db.session.scalar(
            select(_enrollments.c.account_id).where(_enrollments.c.unit_id == device.unit_id)
        )
        == device.account_id
    )


def require_enrolled(device) -> None:
    """409 for a pending device: nothing may reach a minion that has not proven it is this device."""
    if not is_enrolled(device):
        raise Conflict(
            f'Device {device.id} (unit_id "{device.unit_id}") is pending: its minion has not enrolled '
            "in this account yet (an enrollment token on the device, or berth.register_minions on "
            "the account's own master; docs/security.md)."
        )


def enrolled_unit_ids(account_id: int, unit_ids: Iterable[str] | None = None) -> list[str]:
    """The unit_ids (of ``unit_ids``, else all) whose minion is enrolled in ``account_id``."""
    rows = db.session.scalars(
        select(_enrollments.c.unit_id).where(_enrollments.c.account_id == account_id)
    ).all()
    if unit_ids is None:
        return sorted(rows)
    mine = set(rows)
    return [u for u in unit_ids if u in mine]


def served_device(unit_id: str) -> Device:
    """The device a master-scope request about minion ``unit_id`` is about, or 404.

    A platform token is served the device of the account the minion enrolled in; an
    account's master token only its own account's device, and only once enrolled. Another
    account's minion and a pending device look exactly like an unknown one.
    """
    account_id = db.session.scalar(
        select(_enrollments.c.account_id).where(_enrollments.c.unit_id == unit_id)
    )
    if account_id is None or (g.account is not None and account_id != g.account.id):
        raise NotFound(f'No device with unit_id "{unit_id}" in this account.')
    device = db.session.scalars(
        select(Device).where(Device.unit_id == unit_id, Device.account_id == account_id)
    ).one_or_none()
    if device is None:
        raise NotFound(f'No device with unit_id "{unit_id}" in this account.')
    return device


def enroll(unit_id: str, account_id: int, method: str, token_id: int | None = None) -> Device:
    """Record that minion ``unit_id`` proved it belongs to ``account_id``; create its device if
    the account has none. Returns the device (flushed, not committed)."""
    row = db.session.get(MinionEnrollment, unit_id)
    if row is None:
        db.session.add(
            MinionEnrollment(
                unit_id=unit_id,
                account_id=account_id,
                method=method,
                enrollment_token_id=token_id,
                enrolled_at=utcnow(),
            )
        )
    elif row.account_id != account_id or row.method != method:
        row.account_id, row.method, row.enrollment_token_id = account_id, method, token_id
        row.enrolled_at = utcnow()
    device = db.session.scalars(
        select(Device).where(Device.unit_id == unit_id, Device.account_id == account_id)
    ).one_or_none()
    if device is None:
        device = Device(account_id=account_id, unit_id=unit_id, display=unit_id)
        db.session.add(device)
    db.session.flush()
    return device


def sync(account_id: int, unit_ids: list[str]) -> dict[str, list[str]]:
    """``berth.register_minions`` on a single-tenant master: the keys it accepted prove their
    minions belong to the master token's account -- except minions enrolled in another account,
    which are never moved and are listed as ``pending`` like any unproven id."""
    owners = dict(
        db.session.execute(
            select(_enrollments.c.unit_id, _enrollments.c.account_id).where(
                _enrollments.c.unit_id.in_(unit_ids)
            )
        ).all()
    )
    have_device = set(
        db.session.scalars(
            select(Device.unit_id).where(
                Device.account_id == account_id, Device.unit_id.in_(unit_ids)
            )
        )
    )
    created, existing, pending = [], [], []
    enroll = []
    for uid in unit_ids:
        owner = owners.get(uid)
        if owner is not None and owner != account_id:
            pending.append(uid)
            continue
        if owner is None:
            enroll.append(uid)
        if uid in have_device:
            existing.append(uid)
        else:
            created.append(uid)
    # one executemany per table, not an ORM object per minion (a sync carries up to 10,000)
    now = utcnow()
    if enroll:
        db.session.execute(
            insert(MinionEnrollment),
            [
                {
                    "unit_id": uid,
                    "account_id": account_id,
                    "method": "master_sync",
                    "enrolled_at": now,
                }
                for uid in enroll
            ],
        )
    if created:
        display_max = Device.__table__.c.display.type.length
        db.session.execute(
            insert(Device),
            [
                {"account_id": account_id, "unit_id": uid, "display": uid[:display_max]}
                for uid in created
            ],
        )
    return {"created": created, "existing": existing, "pending": pending}


def pending_filter(devices=Device.__table__):
    """SQL: the device is pending (not enrolled in its account)."""
    return ~enrolled_clause(devices)
