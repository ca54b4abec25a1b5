"""Devices of the fleet. ``unit_id`` is the Salt minion id."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from api.extensions import db
from api.types import UTCDateTime, utcnow


def _new_id() -> str:
    return str(uuid.uuid4())


class Device(db.Model):
    # unit_id is unique per account; which account's device a minion is, is its enrollment
    # (api/security/tenancy.py, docs/security.md).
    __tablename__ = "devices"
    __table_args__ = (
        UniqueConstraint("account_id", "unit_id"),
        # the fleet page's counts and status filter, in unit id order (api/deployments/fleet.py)
        Index("ix_devices_account_id_outcome_unit_id", "account_id", "outcome", "unit_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_new_id)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    unit_id: Mapped[str] = mapped_column(String(255), index=True)
    display: Mapped[str] = mapped_column(String(200), default="")
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # berth.contract.DeviceOutcome of the device's newest stored deployment (by release id),
    # kept by database triggers on deployments (migration 0020_device_outcome): read-only here
    outcome: Mapped[str] = mapped_column(
        String(16), default="never_reported", server_default="never_reported"
    )
    # the operator's one-time override of the update locks (docs/release.md "Update locks"): set
    # by POST /devices/{id}/override-lock/, served in pillar, cleared by the device's next report
    # of an apply that finished after it was set
    update_lock_override_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# the console's fleet search, case-insensitive, by a prefix of the unit id or of the display name
# (api/deployments/fleet.py; migration 0021_devices_search_lower)
Index("ix_devices_account_id_unit_id_lower", Device.account_id, func.lower(Device.unit_id))
Index("ix_devices_account_id_display_lower", Device.account_id, func.lower(Device.display))
