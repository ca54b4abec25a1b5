"""Releases, their containers and deployments as the API (and the release pillar) returns them."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import select

from api.deployments.models import Deployment, successful_device_ids
from api.devices.models import Device
from api.extensions import db
from api.releases.models import Release, ReleaseContainer, release_devices
from api.releases.schemas import Container
from api.releases.schemas import Deployment as DeploymentBody
from api.releases.schemas import Release as ReleaseBody
from api.rollouts.models import Rollout, release_tags
from api.types import isoformat
from berth.contract import DeploymentState
from berth.release.pillar import PillarContainer, PillarSignatures, ReleasePillar

CONTAINER_FIELDS = (
    "name",
    "image",
    "tag",
    "required_tags",
    "startup_parameters",
    "purge_data",
    "registry",
    "digest",
)


def serialize_container(container: ReleaseContainer) -> PillarContainer:
    """A container as the API and the pillar return it (its ``Container`` response model)."""
    return cast(PillarContainer, Container.body(container, registry=container.registry_id))


def container_spec(container: ReleaseContainer) -> dict:
    """The container's input fields, to compare with a request body's."""
    return {k: v for k, v in serialize_container(container).items() if k in CONTAINER_FIELDS}


def serialize_release(
    release: Release,
    successful: list[str] | None = None,
    device_ids: list[str] | None = None,
    extras: dict | None = None,
) -> dict:
    """The release as the API returns it (the pillar has a leaner one: :func:`release_for_device`)."""
    extras = rollout_extras([release.id])[release.id] if extras is None else extras
    return ReleaseBody.body(
        release,
        project=release.project_id,
        devices=_listed_devices([release.id])[release.id] if device_ids is None else device_ids,
        containers=[serialize_container(c) for c in release.containers],
        successful_deployments=successful_device_ids(release) if successful is None else successful,
        **extras,
    )


def rollout_extras(release_ids: list[int]) -> dict[int, dict]:
    """{release id: {"device_tags": [...], "rollout": policy or None}}, two queries for a page."""
    extras: dict[int, dict[str, Any]] = {
        r: {"device_tags": [], "rollout": None} for r in release_ids
    }
    if release_ids:
        for release_id, tag in db.session.execute(
            select(release_tags.c.release_id, release_tags.c.tag)
            .where(release_tags.c.release_id.in_(release_ids))
            .order_by(release_tags.c.release_id, release_tags.c.tag)
        ):
            extras[release_id]["device_tags"].append(tag)
        for rollout in db.session.scalars(
            select(Rollout).where(Rollout.release_id.in_(release_ids))
        ):
            extras[rollout.release_id]["rollout"] = rollout.policy()
    return extras


def release_for_device(
    release: Release, bind_prefixes: list[str], signatures: PillarSignatures | None = None
) -> ReleasePillar:
    """Pillar ``docker:release``: the release as the API returns it, without the fleet-wide lists
    (``devices``, ``successful_deployments``) a device does not need, with the account's
    ``bind_prefixes`` (where the device may bind besides its data roots, docs/security.md) and
    ``signatures`` (``{"required", "keys": [{"name", "public_key"}]}``, the account's signing
    policy and keys, ``api.releases.signatures.pillar``)."""
    return {
        "id": release.id,
        "project": release.project_id,
        "version": release.version,
        "version_hash": release.version_hash,
        "containers": [serialize_container(c) for c in release.containers],
        "remove_containers": list(release.remove_containers),
        "created": isoformat(release.created),
        "bind_prefixes": list(bind_prefixes),
        "signatures": signatures or {"required": False, "keys": []},
    }


def _listed_devices(release_ids: list[int]) -> dict[int, list[str]]:
    """{release id: its device ids in the order it lists them}, in one query (Core: no ORM
    objects for releases of 10,000 devices)."""
    listed: dict[int, list[str]] = {release_id: [] for release_id in release_ids}
    devices = Device.__table__
    rows = db.session.connection().execute(
        select(release_devices.c.release_id, release_devices.c.device_id)
        .join(devices, devices.c.id == release_devices.c.device_id)
        .where(release_devices.c.release_id.in_(release_ids), release_devices.c.listed)
        .order_by(release_devices.c.release_id, devices.c.created, devices.c.id)
    )
    for release_id, device_id in rows:
        listed[release_id].append(device_id)
    return listed


def serialize_releases(releases: list[Release]) -> list[dict]:
    succeeded: dict[int, list[str]] = {r.id: [] for r in releases}
    if releases:
        rows = db.session.execute(
            select(Deployment.release_id, Deployment.device_id)
            .where(
                Deployment.release_id.in_(list(succeeded)),
                Deployment.status == DeploymentState.SUCCEEDED,
            )
            .order_by(Deployment.finished_at, Deployment.device_id)
        )
        for release_id, device_id in rows:
            succeeded[release_id].append(device_id)
    listed = _listed_devices(list(succeeded))
    extras = rollout_extras(list(succeeded))
    return [serialize_release(r, succeeded[r.id], listed[r.id], extras[r.id]) for r in releases]


def serialize_deployment(deployment, release_id: int, unit_id: str) -> dict:
    """A ``Deployment``, or a row of :func:`api.deployments.service.deployments_of`."""
    return DeploymentBody.body(
        deployment,
        release=release_id,
        device=deployment.device_id,
        unit_id=unit_id,
        wave=getattr(deployment, "wave", None),
    )
