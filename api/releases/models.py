"""Docker registries, signing keys, projects, releases, their containers, and per-device deployments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.devices.models import Device
from api.extensions import db
from api.types import UTCDateTime, utcnow
from berth.contract import fully_qualified_name


class Project(db.Model):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    releases: Mapped[list[Release]] = relationship(
        back_populates="project",
        order_by="Release.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


release_devices = Table(
    "release_devices",
    db.metadata,
    Column("release_id", ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True),
    Column("device_id", ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    # False: the device is a target only through one of the release's device_tags (docs/rollouts.md)
    Column("listed", Boolean, nullable=False, server_default=true(), default=True),
    # the device's rollout wave (1-based); null when the release has no rollout
    Column("wave", Integer, nullable=True),
    # Covers "does a newer release list this device" (queueing) and a device's target release.
    Index("ix_release_devices_device_id_release_id", "device_id", "release_id"),
    # only rollout releases' rows have a wave: releases without one do not pay for this index
    Index(
        "ix_release_devices_release_id_wave",
        "release_id",
        "wave",
        sqlite_where=text("wave IS NOT NULL"),
        postgresql_where=text("wave IS NOT NULL"),
    ),
)


class Release(db.Model):
    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("project_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[str] = mapped_column(String(100))
    version_hash: Mapped[str] = mapped_column(String(8), unique=True)
    remove_containers: Mapped[list[str]] = mapped_column(JSON, default=list)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    project: Mapped[Project] = relationship(back_populates="releases")
    # passive_deletes: the database's ON DELETE CASCADE drops the rows, the ORM does not load 10,000 devices first
    devices: Mapped[list[Device]] = relationship(
        secondary=release_devices, order_by=[Device.created, Device.id], passive_deletes=True
    )
    containers: Mapped[list[ReleaseContainer]] = relationship(
        back_populates="release", order_by="ReleaseContainer.position", cascade="all, delete-orphan"
    )


class ReleaseContainer(db.Model):
    __tablename__ = "release_containers"
    __table_args__ = (UniqueConstraint("release_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(default=0)
    name: Mapped[str] = mapped_column(String(100))
    image: Mapped[str] = mapped_column(String(255))
    tag: Mapped[str] = mapped_column(String(128))
    required_tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    startup_parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    purge_data: Mapped[bool] = mapped_column(default=False)
    registry_id: Mapped[int | None] = mapped_column(
        ForeignKey("registries.id", ondelete="RESTRICT"), index=True
    )
    # sha256:<64 hex> the release pins (docs/release.md "Digest pinning"); null: run by tag
    digest: Mapped[str | None] = mapped_column(String(71))

    release: Mapped[Release] = relationship(back_populates="containers")

    @property
    def fully_qualified_name(self) -> str:
        return fully_qualified_name(self.name, self.release_id)
