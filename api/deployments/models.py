"""The ``deployments`` table: the state of one release on one device."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.devices.models import Device
from api.extensions import db
from api.releases.models import Release
from api.types import UTCDateTime, utcnow
from berth.contract import DeploymentState


class Deployment(db.Model):
    """The state of one release on one device."""

    __tablename__ = "deployments"
    __table_args__ = (
        UniqueConstraint("release_id", "device_id"),
        CheckConstraint(
            f"status IN ({', '.join(repr(s.value) for s in DeploymentState)})", name="status"
        ),
        Index("ix_deployments_device_id_status", "device_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # No index of its own: uq_deployments_release_id (release_id, device_id) serves release_id lookups.
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default=DeploymentState.QUEUED.value)
    error: Mapped[str | None] = mapped_column(Text)
    # set by a rollout revert: the release the device goes back to (its last success before this one)
    revert_to: Mapped[int | None]
    attempts: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    release: Mapped[Release] = relationship()
    device: Mapped[Device] = relationship()


def successful_device_ids(release: Release) -> list[str]:
    """Ids of the devices that deployed ``release`` successfully, first finished first."""
    return list(
        db.session.scalars(
            select(Deployment.device_id)
            .where(
                Deployment.release_id == release.id,
                Deployment.status == DeploymentState.SUCCEEDED,
            )
            .order_by(Deployment.finished_at, Deployment.device_id)
        )
    )


def docker_release_ids(device: Device) -> list[int]:
    """Ids of the releases this device has successfully deployed."""
    return list(
        db.session.scalars(
            select(Deployment.release_id)
            .where(
                Deployment.device_id == device.id, Deployment.status == DeploymentState.SUCCEEDED
            )
            .order_by(Deployment.release_id)
        )
    )
