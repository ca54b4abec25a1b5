"""Which account a minion belongs to (docs/security.md, "Tenancy").

A ``unit_id`` is unique per account: any account may register one (``POST /devices/``), but
such a device stays *pending* -- nothing is executed on it, no pillar is served for it, no
Salt message targets it -- until the minion proves it belongs to that account:

* through a master whose master-scope token is the account's (a single-tenant master):
  ``berth.register_minions`` of the keys that master accepted (``POST /master/devices/sync/``);
* through any master (a platform token): the minion presents an enrollment token of the
  account (grain ``berth_enrollment_token``), which the ext_pillar forwards
  (``POST /master/devices/enroll/``).

The proof is a row of ``minion_enrollments`` (unit_id -> account, and the master credential it
came through). It has no foreign key to the device, so deleting a device does not free its
unit_id for another account: only the minion enrolling again moves it. Sync never moves a
minion enrolled in another account, nor enrolls a unit_id another account has a device for.

A master credential (an account's master token, a platform token) is served pillar and takes
reports only for the minions enrolled through it (or through a credential of its tier,
:func:`tier`). An enrollment made by an account's own master is that master's word only: an
enrollment token of another account, presented through a platform master, takes it over
(:func:`overridable_by`), audited in both accounts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from flask import g
from sqlalchemy import ForeignKey, String, bindparam, exists, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column

from api import audit
from api.accounts.models import ApiToken
from api.bulk import id_select
from api.devices.models import Device
from api.errors import Conflict, NotFound
from api.extensions import db, rowcount
from api.security import platform
from api.types import UTCDateTime, utcnow

log = logging.getLogger(__name__)

METHODS = ("master_sync", "enrollment_token", "migration")

# How an enrollment names the master credential it came through (``minion_enrollments.master``):
# "master_token:<api_tokens.id>" (an account's own master) or "platform_token:<platform_tokens.id>".
MASTER_TOKEN, PLATFORM_TOKEN = "master_token", "platform_token"


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
    # the master credential it enrolled through (credential()); None: enrolled before
    # migration 0013, recorded by the first credential that may serve it (served_device)
    master: Mapped[str | None] = mapped_column(String(40))


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
    stmt = select(_enrollments.c.unit_id).where(_enrollments.c.account_id == account_id)
    if unit_ids is None:
        return sorted(db.session.scalars(stmt))
    unit_ids = list(unit_ids)
    # read through the primary key for just these (a wave's), not the account's whole fleet
    mine = set(db.session.scalars(stmt.where(_enrollments.c.unit_id.in_(id_select(unit_ids)))))
    return [u for u in unit_ids if u in mine]


def credential(token) -> str:
    """The master credential ``token`` (``g.token``, scope master or platform) as an enrollment
    records it."""
    kind = PLATFORM_TOKEN if token.scope == platform.SCOPE else MASTER_TOKEN
    return f"{kind}:{token.id}"


def tier(token) -> frozenset[str]:
    """The master credentials whose enrolled minions ``token`` is served: itself.

    The hook for Salt syndic tiers (docs/security.md): behind a syndic, the minion's pillar is
    asked by the master it is connected to, but its events reach the reactor of the master of
    masters, which forwards its reports with its own credential. To let that credential serve
    the minions enrolled through its syndics, return their credentials here too (e.g. from a
    table naming a credential's lower tier, kept by the operator's CLI). Nothing else decides
    which minions a master credential is served."""
    return frozenset({credential(token)})


def _live(master: str | None) -> bool:
    """The recorded master credential still exists and may still be used."""
    kind, _, ident = (master or "").partition(":")
    if not ident.isdigit():
        return False
    if kind == PLATFORM_TOKEN:
        row = db.session.get(platform.PlatformToken, int(ident))
        return row is not None and not row.revoked
    if kind == MASTER_TOKEN:
        row = db.session.get(ApiToken, int(ident))
        return (
            row is not None and not row.revoked and (row.expires is None or row.expires > utcnow())
        )
    return False


def _may_adopt(method: str, token) -> bool:
    """May ``token`` record itself on an enrollment with no live master? The account's own
    master tokens always (the account was checked before); a platform token never takes a
    minion an account master synced (that is the account master's word about its own keys)."""
    return token.scope != platform.SCOPE or method != "master_sync"


def served_devices(unit_ids: Iterable[str]) -> dict[str, Device]:
    """{unit_id: device} of the minions :func:`served_device` serves this request without
    adopting anything (the enrollment's master is in :func:`tier`), in one query; the others
    are left out (ask :func:`served_device` for each: 404, or adoption)."""
    unit_ids = set(unit_ids)
    if not unit_ids:
        return {}
    query = (
        select(Device)
        .join(
            _enrollments,
            (_enrollments.c.unit_id == Device.unit_id)
            & (_enrollments.c.account_id == Device.account_id),
        )
        .where(Device.unit_id.in_(unit_ids), _enrollments.c.master.in_(tier(g.token)))
    )
    if g.account is not None:
        query = query.where(_enrollments.c.account_id == g.account.id)
    return {device.unit_id: device for device in db.session.scalars(query)}


# built once (a report's first statement; its construction costs more CPU than the query)
_SERVED = (
    select(_enrollments.c.account_id, _enrollments.c.method, _enrollments.c.master, Device)
    .outerjoin(
        Device,
        (Device.unit_id == _enrollments.c.unit_id)
        & (Device.account_id == _enrollments.c.account_id),
    )
    .where(_enrollments.c.unit_id == bindparam("unit_id"))
)


def served_device(unit_id: str) -> Device:
    """The device a master-scope request about minion ``unit_id`` is about, or 404.

    Served only to the master credential the minion enrolled through (or one of its
    :func:`tier`): a platform token the device of the account the minion enrolled in, an
    account's master token only its own account's. An enrollment whose credential is unknown
    (made before migration 0013) or no longer live (revoked, expired: a rotated master) is
    taken by the first credential that may serve it, audited (``device.master_adopt``).
    Another account's minion, a pending device and a minion of another master look exactly
    like an unknown one.
    """
    # the enrollment and its account's device in one query (a report's first statement)
    row = db.session.execute(_SERVED, {"unit_id": unit_id}).one_or_none()
    missing = NotFound(f'No device with unit_id "{unit_id}" in this account.')
    if row is None or (g.account is not None and row.account_id != g.account.id):
        raise missing
    device = row.Device
    if device is None:
        raise missing
    if row.master in tier(g.token):
        return device
    if _live(row.master) or not _may_adopt(row.method, g.token):
        raise missing
    mine = credential(g.token)
    adopted = db.session.execute(
        update(_enrollments)
        .where(
            _enrollments.c.unit_id == unit_id,
            _enrollments.c.account_id == row.account_id,
            _enrollments.c.master.is_(None)
            if row.master is None
            else _enrollments.c.master == row.master,
        )
        .values(master=mine)
    )
    if rowcount(adopted) != 1:  # another request took it in the meantime
        db.session.rollback()
        taken_by = db.session.scalar(
            select(_enrollments.c.master).where(_enrollments.c.unit_id == unit_id)
        )
        if taken_by in tier(g.token):  # this master's other request (a re-sent report): served
            return db.session.get_one(Device, device.id)
        raise missing
    audit.record(
        "device.master_adopt",
        account_id=row.account_id,
        device_id=device.id,
        target=f"device:{device.id}",
        details={"unit_id": unit_id, "master": mine, "previous": row.master},
    )
    db.session.commit()
    log.info("minion %s is now served through %s (was: %s)", unit_id, mine, row.master)
    return device


def overridable_by(row: MinionEnrollment, token) -> bool:
    """May an enrollment token of another account, presented through ``token``, take over the
    enrollment ``row``? Only through a platform master (it presents the grain of the minion
    that holds that key), and only an enrollment an account's own master made (its sync, or a
    token it presented): an account master's word about a unit_id proves nothing to another
    account, while an enrollment token presented through a platform master does."""
    if token.scope != platform.SCOPE:
        return False
    return row.method == "master_sync" or (row.master or "").startswith(MASTER_TOKEN + ":")


def enroll(
    unit_id: str,
    account_id: int,
    method: str,
    token_id: int | None = None,
    master: str | None = None,
) -> Device:
    """Record that minion ``unit_id`` proved it belongs to ``account_id``, through the master
    credential ``master``; create its device if the account has none. Returns the device
    (flushed, not committed)."""
    row = db.session.get(MinionEnrollment, unit_id)
    if row is None:
        db.session.add(
            MinionEnrollment(
                unit_id=unit_id,
                account_id=account_id,
                method=method,
                enrollment_token_id=token_id,
                enrolled_at=utcnow(),
                master=master,
            )
        )
    elif row.account_id != account_id or row.method != method or row.master != master:
        row.account_id, row.method, row.enrollment_token_id = account_id, method, token_id
        row.enrolled_at, row.master = utcnow(), master
    device = db.session.scalars(
        select(Device).where(Device.unit_id == unit_id, Device.account_id == account_id)
    ).one_or_none()
    if device is None:
        device = Device(account_id=account_id, unit_id=unit_id, display=unit_id)
        db.session.add(device)
    db.session.flush()
    return device


def sync(account_id: int, unit_ids: list[str], master: str) -> dict[str, list[str]]:
    """``berth.register_minions`` on a single-tenant master (credential ``master``): the keys it
    accepted prove their minions belong to the master token's account -- except minions enrolled
    in another account and unit_ids another account has a device for (pending or not: it may
    have handed that minion an enrollment token), which are never enrolled and are listed as
    ``pending`` like any unproven id."""
    owners: dict[str, int] = dict(
        db.session.execute(
            select(_enrollments.c.unit_id, _enrollments.c.account_id).where(
                _enrollments.c.unit_id.in_(unit_ids)
            )
        ).all()
    )
    devices = db.session.execute(
        select(Device.unit_id, Device.account_id).where(Device.unit_id.in_(unit_ids))
    ).all()
    have_device = {uid for uid, owner in devices if owner == account_id}
    elsewhere = {uid for uid, owner in devices if owner != account_id}
    created, existing, pending = [], [], []
    enroll = []
    for uid in unit_ids:
        owner = owners.get(uid)
        if owner is not None and owner != account_id:
            pending.append(uid)
            continue
        if owner is None:
            if uid in elsewhere:
                pending.append(uid)
                continue
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
                    "master": master,
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
