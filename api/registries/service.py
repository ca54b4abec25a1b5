"""What a registry change sets off on the account's devices."""

from __future__ import annotations

from sqlalchemy import select

from api.devices.models import Device
from api.extensions import db
from api.outbox import REFRESH_PILLAR, REGISTRIES_LOGIN, OutboxMessage, enqueue_salt
from api.security.tenancy import enrolled_clause


def enqueue_registry_login(account_id: int) -> list[OutboxMessage]:
    """A registry was added or changed: refresh the account's devices' pillar, then log them in
    (``state.sls docker.registries``)."""
    unit_ids = db.session.scalars(
        select(Device.unit_id).where(Device.account_id == account_id, enrolled_clause())
    ).all()
    return enqueue_salt(
        unit_ids, [REFRESH_PILLAR, REGISTRIES_LOGIN], f"registries of account {account_id} changed"
    )
