"""``/docker/projects/{project_pk}/releases/`` and their per-device ``deployments/``: the views.

Bodies: :mod:`api.releases.schemas`; output: :mod:`api.releases.serializers`; writes and the
checks that need the project: :mod:`api.releases.service`. Containers (and
``remove_containers``) of an existing release are immutable; its ``devices`` may change, and
an added device is queued.
"""

from __future__ import annotations

import logging

from flask import Blueprint, request
from sqlalchemy import select

from api import audit
from api.audit import audited
from api.auth import require_token
from api.common import is_partial, no_content, owned_or_404
from api.deployments.service import deployments_of, unlist_devices
from api.devices.models import Device
from api.errors import Conflict, ValidationError
from api.extensions import db
from api.openapi import Response, operation, page_of, query_param
from api.pagination import paginate
from api.payload import json_body
from api.policies import release as release_policy
from api.releases import service
from api.releases.models import Project, Release, ReleaseContainer, release_devices
from api.releases.schemas import Deployment as DeploymentBody
from api.releases.schemas import Release as ReleaseBody
from api.releases.schemas import ReleaseInput
from api.releases.serializers import (
    container_spec,
    rollout_extras,
    serialize_deployment,
    serialize_release,
    serialize_releases,
)

bp = Blueprint("releases", __name__)
log = logging.getLogger(__name__)

_IMMUTABLE = (
    "Containers, remove_containers, device_tags or rollout of an existing release cannot be "
    "changed."
)


@bp.get("/docker/projects/<int:project_id>/releases/")
@operation(
    "releases",
    "List releases",
    operation_id="listReleases",
    query=[
        query_param("version_hash", "Only the release with this version hash."),
        query_param("device", "Releases listing it."),
    ],
    responses={200: Response(page_of(ReleaseBody), "A page of results.")},
)
@require_token("user")
def list_releases(project_id: int):
    project = owned_or_404(Project, project_id)
    stmt = select(Release).where(Release.project_id == project.id).order_by(Release.id)
    if "version_hash" in request.args:
        stmt = stmt.where(Release.version_hash == request.args["version_hash"])
    if "device" in request.args:
        stmt = stmt.where(
            Release.id.in_(
                select(release_devices.c.release_id).where(
                    release_devices.c.device_id == request.args["device"]
                )
            )
        )
    return paginate(stmt, serialize_release, batch=serialize_releases)


@bp.post("/docker/projects/<int:project_id>/releases/")
@operation(
    "releases",
    "Create a Release",
    description="Creates the release and queues it on every listed device.",
    operation_id="createRelease",
    body=ReleaseInput,
    responses={201: Response(ReleaseBody, "Created.")},
)
@audited("release.create")
@require_token("user")
def create_release(project_id: int):
    project = owned_or_404(Project, project_id)
    release, values = service.create_release(json_body(), project)
    device_ids = [d[0] for d in values["devices"]]
    extras = {"device_tags": sorted(values["device_tags"]), "rollout": values["rollout"]}
    return serialize_release(release, successful=[], device_ids=device_ids, extras=extras), 201


@bp.get("/docker/projects/<int:project_id>/releases/<int:release_id>/")
@operation("releases", "Get a Release", operation_id="getRelease", responses={200: ReleaseBody})
@require_token("user")
def get_release(project_id: int, release_id: int):
    return serialize_release(service.release_of(project_id, release_id)[1])


@bp.route("/docker/projects/<int:project_id>/releases/<int:release_id>/", methods=["PUT", "PATCH"])
@operation(
    "releases",
    "Replace a Release",
    method="PUT",
    operation_id="replaceRelease",
    body=ReleaseInput,
    responses={200: ReleaseBody},
    errors={409: _IMMUTABLE},
)
@operation(
    "releases",
    "Update some fields of a Release",
    method="PATCH",
    operation_id="updateRelease",
    body=ReleaseInput,
    partial=True,
    responses={200: ReleaseBody},
    errors={409: _IMMUTABLE},
)
@audited("release.update")
@require_token("user")
def update_release(project_id: int, release_id: int):
    project, release = service.release_of(project_id, release_id)
    body = json_body()
    values = service.validate_release(body, project, release, partial=is_partial())
    if "containers" in values and not _same_containers(values["containers"], release.containers):
        raise Conflict("Containers of an existing release cannot be changed; create a new release.")
    if "remove_containers" in values and values["remove_containers"] != list(
        release.remove_containers
    ):
        raise Conflict(
            "remove_containers of an existing release cannot be changed; create a new release."
        )
    extras = rollout_extras([release.id])[release.id]
    # a PUT without them keeps them (their defaults are not a change)
    if "device_tags" in body and sorted(values["device_tags"]) != extras["device_tags"]:
        raise Conflict(
            "device_tags of an existing release cannot be changed; create a new release."
        )
    if "rollout" in body and values["rollout"] != extras["rollout"]:
        raise Conflict("rollout of an existing release cannot be changed; create a new release.")
    if "version" in values:
        release.version = values["version"]
    if "devices" in values:
        service.set_devices(release, values["devices"])
    audit.record(
        "release.update",
        target=f"release:{release.id}",
        details={"project": project.id, "fields": sorted(values)},
    )
    service.commit(release.version)
    return serialize_release(release)


def _same_containers(given: list[dict], stored: list[ReleaseContainer]) -> bool:
    """A body without a container's ``digest`` does not change the digest pinned at creation."""
    if len(given) != len(stored):
        return False
    for body, container in zip(given, stored, strict=True):
        spec = container_spec(container)
        if body.get("digest") is None:
            spec["digest"] = None
        if body != spec:
            return False
    return True


@bp.delete("/docker/projects/<int:project_id>/releases/<int:release_id>/")
@operation(
    "releases",
    "Delete a Release",
    operation_id="deleteRelease",
    responses={204: Response(None, "Deleted, no body.")},
)
@audited("release.delete")
@require_token("user")
def delete_release(project_id: int, release_id: int):
    _, release = service.release_of(project_id, release_id)
    unlist_devices([release.id])
    audit.record("release.delete", target=f"release:{release_id}", details={"project": project_id})
    db.session.delete(release)
    db.session.commit()
    log.info("release %s deleted", release_id)
    return no_content()


@bp.get("/docker/projects/<int:project_id>/releases/<int:release_id>/deployments/")
@operation(
    "releases",
    "Per-device deployment status of a release",
    operation_id="listDeployments",
    query=[
        query_param("device", "Only this device id."),
        query_param("status", "Only deployments in this state."),
        query_param(
            "wave", "Only this rollout wave.", {"type": "integer", "minimum": 1, "maximum": 1000}
        ),
    ],
    responses={200: Response(page_of(DeploymentBody), "A page of results.")},
)
@require_token("user")
def list_deployments(project_id: int, release_id: int):
    _, release = service.release_of(project_id, release_id)
    rows = deployments_of(release.id, refused=release_policy.refusal(release))
    # in the order the release lists its devices
    stmt = (
        select(rows, Device.unit_id)
        .join(Device, Device.id == rows.c.device_id)
        .order_by(Device.created, Device.id)
    )
    if "device" in request.args:
        stmt = stmt.where(rows.c.device_id == request.args["device"])
    if "status" in request.args:
        stmt = stmt.where(rows.c.status == request.args["status"])
    if "wave" in request.args:
        wave = request.args["wave"]
        if not (wave.isascii() and wave.isdigit()) or not 1 <= int(wave) <= 1000:
            raise ValidationError({"wave": ["A valid integer is required."]})
        stmt = stmt.where(rows.c.wave == int(wave))
    return paginate(stmt, lambda row: serialize_deployment(row, release.id, row.unit_id), rows=True)
