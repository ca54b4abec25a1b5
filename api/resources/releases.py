"""``/docker/projects/{project_pk}/releases/`` and their per-device ``deployments/``.

The body follows the seed: ``version``, ``devices``, ``containers``,
``remove_containers``; read-only ``id``, ``version_hash``,
``successful_deployments`` and container ``fully_qualified_name`` are ignored
on input. Containers (and ``remove_containers``) of an existing release are
immutable; its ``devices`` may change, and an added device is queued.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import Blueprint, g, request
from sqlalchemy import Row, insert, literal, select
from sqlalchemy.exc import IntegrityError

from api import audit
from api.auth import require_token
from api.bulk import id_rows
from api.errors import Conflict, NotFound, ValidationError
from api.extensions import db
from api.limits import (
    MAX_RELEASE_CONTAINERS,
    MAX_RELEASE_DEVICES,
    MAX_REMOVE_CONTAINERS,
    MAX_REQUIRED_TAGS,
)
from api.models import (
    Deployment,
    Device,
    Project,
    Registry,
    Release,
    ReleaseContainer,
    release_devices,
)
from api.models.types import isoformat
from api.pagination import paginate
from api.payload import json_body
from api.policies import release as release_policy
from api.resources.common import is_partial, no_content, owned_or_404
from api.services.deployments import deployments_of, queue_release, unlist_devices
from api.validation import (
    MAX_DB_ID,
    MISSING,
    FieldError,
    Validator,
    boolean,
    container_name,
    docker_image,
    docker_tag,
    json_value,
    list_of,
    string,
    text_problem,
)
from berth import startup_params
from berth.contract import DeploymentState

bp = Blueprint("releases", __name__)
log = logging.getLogger(__name__)

CONTAINER_FIELDS = (
    "name",
    "image",
    "tag",
    "required_tags",
    "startup_parameters",
    "purge_data",
    "registry",
)

# -- serialization -----------------------------------------------------------


def serialize_container(container: ReleaseContainer) -> dict:
    return {
        "name": container.name,
        "image": container.image,
        "tag": container.tag,
        "required_tags": list(container.required_tags),
        "startup_parameters": dict(container.startup_parameters),
        "purge_data": container.purge_data,
        "registry": container.registry_id,
        "fully_qualified_name": container.fully_qualified_name,
    }


def serialize_release(
    release: Release, successful: list[str] | None = None, device_ids: list[str] | None = None
) -> dict:
    """The release as the API returns it (the pillar has its own, leaner one: ``api.master.views.release_pillar``)."""
    return {
        "id": release.id,
        "project": release.project_id,
        "version": release.version,
        "version_hash": release.version_hash,
        "devices": _listed_devices([release.id])[release.id] if device_ids is None else device_ids,
        "containers": [serialize_container(c) for c in release.containers],
        "successful_deployments": release.successful_device_ids()
        if successful is None
        else successful,
        "remove_containers": list(release.remove_containers),
        "created": isoformat(release.created),
    }


def _listed_devices(release_ids: list[int]) -> dict[int, list[str]]:
    """{release id: its device ids in the order it lists them}, in one query (Core: no ORM
    objects for releases of 10,000 devices)."""
    listed: dict[int, list[str]] = {release_id: [] for release_id in release_ids}
    devices = Device.__table__
    rows = db.session.connection().execute(
        select(release_devices.c.release_id, release_devices.c.device_id)
        .join(devices, devices.c.id == release_devices.c.device_id)
        .where(release_devices.c.release_id.in_(release_ids))
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
    return [serialize_release(r, succeeded[r.id], listed[r.id]) for r in releases]


def serialize_deployment(deployment, release_id: int, unit_id: str) -> dict:
    """A ``Deployment``, or a row of :func:`api.services.deployments.deployments_of`."""
    return {
        "release": release_id,
        "device": deployment.device_id,
        "unit_id": unit_id,
        "status": deployment.status,
        "error": deployment.error,
        "attempts": deployment.attempts,
        "started_at": isoformat(deployment.started_at),
        "finished_at": isoformat(deployment.finished_at),
    }


# -- validation --------------------------------------------------------------


def _registry_ref(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(f"Incorrect type. Expected pk value, received {type(value).__name__}.")
    if not 1 <= value <= MAX_DB_ID:
        raise FieldError(f'Invalid pk "{value}" - object does not exist.')
    owned = select(Registry.id).where(Registry.id == value, Registry.account_id == g.account.id)
    if db.session.scalar(owned) is None:
        raise FieldError(f'Invalid pk "{value}" - object does not exist.')
    return value


def _startup_parameters(value: Any) -> dict:
    if not isinstance(value, dict):
        raise FieldError(f'Expected a dictionary of items but got type "{type(value).__name__}".')
    errors = startup_params.validate(value)
    if errors:
        raise FieldError(errors)
    return json_value(value)  # stored as JSON: no NUL, lone surrogates or deep nesting


def _container(value: Any) -> dict:
    if not isinstance(value, dict):
        raise FieldError(
            {
                "non_field_errors": [
                    f"Invalid data. Expected a dictionary, but got {type(value).__name__}."
                ]
            }
        )
    v = Validator(value)
    container = {
        "name": v.field("name", container_name),
        "image": v.field("image", docker_image),
        "tag": v.field("tag", docker_tag),
        "required_tags": v.field(
            "required_tags",
            list_of(docker_tag, max_items=MAX_REQUIRED_TAGS),
            required=False,
            default=list,
        ),
        "startup_parameters": v.field(
            "startup_parameters", _startup_parameters, required=False, default=dict
        ),
        "purge_data": v.field("purge_data", boolean, required=False, default=False),
        "registry": v.field(
            "registry", _registry_ref, required=False, default=None, allow_null=True
        ),
    }
    if not v.errors:  # docs/security.md "Release policy"
        v.errors.update(release_policy.container_errors(container))
    if v.errors:
        raise FieldError(v.errors)
    return container


def _containers(value: Any) -> list[dict]:
    if not isinstance(value, list):
        raise FieldError(f'Expected a list of items but got type "{type(value).__name__}".')
    if len(value) > MAX_RELEASE_CONTAINERS:
        raise FieldError(f"Ensure this field has no more than {MAX_RELEASE_CONTAINERS} elements.")
    results: list[dict] = []
    errors: list[dict] = []
    seen: set[str] = set()
    for item in value:
        try:
            container = _container(item)
        except FieldError as exc:
            errors.append(exc.detail)
            results.append({})
            continue
        if container["name"] in seen:
            errors.append(
                {
                    "name": [
                        f'Container name "{container["name"]}" is used more than once in this release.'
                    ]
                }
            )
        else:
            errors.append({})
        seen.add(container["name"])
        results.append(container)
    if any(errors):
        raise FieldError(errors)
    return results


def _device_ids(value: Any) -> list[Row]:
    """The account's devices ``value`` names (rows of ``id``, ``unit_id``), de-duplicated, in the
    order a release lists its devices (by device creation), so a new release's response needs no
    second read."""
    if not isinstance(value, list):
        raise FieldError(f'Expected a list of items but got type "{type(value).__name__}".')
    if len(value) > MAX_RELEASE_DEVICES:
        raise FieldError(f"Ensure this field has no more than {MAX_RELEASE_DEVICES} elements.")
    for item in value:
        if not isinstance(item, str):
            raise FieldError(f"Incorrect type. Expected pk value, received {type(item).__name__}.")
        if len(item) > 36 or text_problem(item):
            raise FieldError(f'Invalid pk "{item[:40]}" - object does not exist.')
    ids = list(dict.fromkeys(value))  # de-duplicated, order kept; O(n) for fleets of 10,000
    if not ids:
        return []
    given = id_rows(ids)
    devices = Device.__table__
    known = (
        db.session.connection()
        .execute(  # Core: no ORM row processing for 10,000 rows
            select(devices.c.id, devices.c.unit_id)
            .join(given, given.c.value == devices.c.id)
            .where(devices.c.account_id == g.account.id)
            .order_by(devices.c.created, devices.c.id)
        )
        .all()
    )
    if len(known) < len(ids):
        found = {row.id for row in known}
        raise FieldError(
            [f'Invalid pk "{i}" - object does not exist.' for i in ids if i not in found]
        )
    return known


def _validate(data: dict, project: Project, release: Release | None) -> dict:
    v = Validator(data, partial=is_partial())
    values = {
        "version": v.field("version", string(max_length=100)),
        "devices": v.field("devices", _device_ids, required=False, default=list),
        "containers": v.field("containers", _containers),
        "remove_containers": v.field(
            "remove_containers",
            list_of(container_name, unique=True, max_items=MAX_REMOVE_CONTAINERS),
            required=False,
            default=list,
        ),
    }
    if values["remove_containers"] is not MISSING:
        for message in release_policy.remove_containers_errors(values["remove_containers"]):
            v.error("remove_containers", message)
    version = values["version"]
    if version is not MISSING and (release is None or version != release.version):
        taken = select(Release.id).where(
            Release.project_id == project.id, Release.version == version
        )
        if db.session.scalar(taken) is not None:
            v.error(
                "version", f'A release with version "{version}" already exists in this project.'
            )
    v.raise_if_errors()
    return {k: val for k, val in values.items() if val is not MISSING}


def _container_spec(container: ReleaseContainer) -> dict:
    return {k: v for k, v in serialize_container(container).items() if k in CONTAINER_FIELDS}


# -- helpers -----------------------------------------------------------------


def _new_version_hash() -> str:
    while True:
        candidate = secrets.token_hex(4)
        if db.session.scalar(select(Release.id).where(Release.version_hash == candidate)) is None:
            return candidate


def _list_devices(release: Release, device_ids: list[str]) -> None:
    """Add ``release_devices`` rows (Core: a release may list 10,000 devices)."""
    if device_ids:
        given = id_rows(device_ids)
        db.session.execute(
            insert(release_devices).from_select(
                # in key order: index pages are filled one after the other, not at random
                ["release_id", "device_id"],
                select(literal(release.id), given.c.value).order_by(given.c.value),
            )
        )
    db.session.expire(release, ["devices"])


def _set_devices(release: Release, wanted: list[Row]) -> None:
    """The release now lists ``wanted`` (rows of ``id``, ``unit_id``): queue it on the added devices;
    the removed ones fall back to their previous release."""
    current = set(
        db.session.scalars(
            select(release_devices.c.device_id).where(release_devices.c.release_id == release.id)
        )
    )
    wanted_ids = {d[0] for d in wanted}
    added = [d for d in wanted if d[0] not in current]
    removed = [i for i in current if i not in wanted_ids]
    unlist_devices([release.id], removed)
    _list_devices(release, [d[0] for d in added])
    queue_release(release, added)
    if added or removed:
        log.info(
            "release %s devices changed: %d added, %d removed", release.id, len(added), len(removed)
        )


def _commit(version: str) -> None:
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ValidationError(
            {"version": [f'A release with version "{version}" already exists in this project.']}
        ) from None


def _release_of(project_id: int, release_id: int) -> tuple[Project, Release]:
    project = owned_or_404(Project, project_id)
    release = db.session.scalars(
        select(Release).where(Release.id == release_id, Release.project_id == project.id)
    ).one_or_none()
    if release is None:
        raise NotFound()
    return project, release


# -- views -------------------------------------------------------------------


@bp.get("/docker/projects/<int:project_id>/releases/")
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
@require_token("user")
def create_release(project_id: int):
    project = owned_or_404(Project, project_id)
    values = _validate(json_body(), project, None)
    devices = values["devices"]
    device_ids = [d[0] for d in devices]
    release = Release(
        project_id=project.id,
        version=values["version"],
        version_hash=_new_version_hash(),
        remove_containers=values["remove_containers"],
    )
    release.containers = [
        ReleaseContainer(
            position=i,
            name=c["name"],
            image=c["image"],
            tag=c["tag"],
            required_tags=c["required_tags"],
            startup_parameters=c["startup_parameters"],
            purge_data=c["purge_data"],
            registry_id=c["registry"],
        )
        for i, c in enumerate(values["containers"])
    ]
    db.session.add(release)
    db.session.flush()
    # Core inserts and set-based queueing, not the ORM relationship: a release may list 10,000 devices.
    _list_devices(release, device_ids)
    queue_release(release, devices)
    audit.record(
        "release.create",
        target=f"release:{release.id}",
        details={"project": project.id, "version": release.version, "devices": len(device_ids)},
    )
    _commit(release.version)
    log.info(
        "release %s (%s, version %s) created in project %s for %d device(s)",
        release.id,
        release.version_hash,
        release.version,
        project.id,
        len(device_ids),
    )
    return serialize_release(release, successful=[], device_ids=device_ids), 201


@bp.get("/docker/projects/<int:project_id>/releases/<int:release_id>/")
@require_token("user")
def get_release(project_id: int, release_id: int):
    return serialize_release(_release_of(project_id, release_id)[1])


@bp.route("/docker/projects/<int:project_id>/releases/<int:release_id>/", methods=["PUT", "PATCH"])
@require_token("user")
def update_release(project_id: int, release_id: int):
    project, release = _release_of(project_id, release_id)
    values = _validate(json_body(), project, release)
    if "containers" in values and values["containers"] != [
        _container_spec(c) for c in release.containers
    ]:
        raise Conflict("Containers of an existing release cannot be changed; create a new release.")
    if "remove_containers" in values and values["remove_containers"] != list(
        release.remove_containers
    ):
        raise Conflict(
            "remove_containers of an existing release cannot be changed; create a new release."
        )
    if "version" in values:
        release.version = values["version"]
    if "devices" in values:
        _set_devices(release, values["devices"])
    audit.record(
        "release.update",
        target=f"release:{release.id}",
        details={"project": project.id, "fields": sorted(values)},
    )
    _commit(release.version)
    return serialize_release(release)


@bp.delete("/docker/projects/<int:project_id>/releases/<int:release_id>/")
@require_token("user")
def delete_release(project_id: int, release_id: int):
    _, release = _release_of(project_id, release_id)
    unlist_devices([release.id])
    audit.record("release.delete", target=f"release:{release_id}", details={"project": project_id})
    db.session.delete(release)
    db.session.commit()
    log.info("release %s deleted", release_id)
    return no_content()


@bp.get("/docker/projects/<int:project_id>/releases/<int:release_id>/deployments/")
@require_token("user")
def list_deployments(project_id: int, release_id: int):
    _, release = _release_of(project_id, release_id)
    rows = deployments_of(release.id)
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
    return paginate(stmt, lambda row: serialize_deployment(row, release.id, row.unit_id), rows=True)
