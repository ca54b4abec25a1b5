"""Creating and changing releases: the request body's checks that need the project, and the
writes (Core statements: a release may list 10,000 devices)."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from sqlalchemy import Row, insert, literal, select
from sqlalchemy.exc import IntegrityError

from api import audit
from api.bodies import as_dict, parse
from api.bulk import id_rows
from api.common import owned_or_404
from api.deployments import targets as rollout_targets
from api.deployments.service import queue_release, unlist_devices
from api.errors import NotFound, ValidationError
from api.extensions import db
from api.policies import release as release_policy
from api.releases import pinning, signatures
from api.releases.models import Project, Release, ReleaseContainer, release_devices
from api.releases.schemas import ReleaseInput
from api.rollouts.models import Rollout, release_tags

log = logging.getLogger(__name__)


def _version_taken(version: str) -> str:
    return f'A release with version "{version}" already exists in this project.'


def validate_release(
    data: dict, project: Project, release: Release | None, *, partial: bool = False
) -> dict[str, Any]:
    """The clean values of a release body (``ReleaseInput``), or a 400 with every error.

    Rules of other features that need the whole body or the database go here, after the
    schema's per-field rules, as ``parsed.error(field, message)``."""
    parsed = parse(ReleaseInput, data, partial=partial)
    if "remove_containers" in parsed:  # docs/security.md "Release policy"
        for message in release_policy.remove_containers_errors(parsed["remove_containers"]):
            parsed.error("remove_containers", message)
    version = parsed.get("version")
    if version is not None and (release is None or version != release.version):
        taken = select(Release.id).where(
            Release.project_id == project.id, Release.version == version
        )
        if db.session.scalar(taken) is not None:
            parsed.error("version", _version_taken(version))
    parsed.raise_if_errors()
    return {name: as_dict(value) for name, value in parsed.values.items()}


def create_release(body: Any, project: Project) -> tuple[Release, dict[str, Any]]:
    """Create a release in ``project`` from a request body: validated (400 naming every bad field),
    digests pinned, signatures verified (when the account requires them), targets queued, audited (``release.create``) and committed. The one way a
    release is made, whether by ``POST .../releases/`` or the console's form. Returns the release
    and the body's clean values."""
    values = validate_release(body, project, None)
    if values["pin_digests"]:
        pinning.pin(values["containers"])
    signed_by = signatures.verify(project.account_id, values["containers"])
    devices = values["devices"]
    device_ids = [d[0] for d in devices]
    release = Release(
        project_id=project.id,
        version=values["version"],
        version_hash=new_version_hash(),
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
            digest=c["digest"],
        )
        for i, c in enumerate(values["containers"])
    ]
    db.session.add(release)
    db.session.flush()
    # Core inserts and set-based queueing, not the ORM relationship: a release may list 10,000 devices.
    if values["device_tags"] or values["rollout"]:
        queue_now = rollout_targets.add_targets(
            release, devices, values["device_tags"], values["rollout"]
        )
    else:
        list_devices(release, device_ids)
        queue_now = devices
    queue_release(release, queue_now)
    audit.record(
        "release.create",
        target=f"release:{release.id}",
        details={
            "project": project.id,
            "version": release.version,
            "devices": len(device_ids),
            "pin_digests": values["pin_digests"],
            **({"signed_by": signed_by} if signed_by is not None else {}),
        },
    )
    commit(release.version)
    log.info(
        "release %s (%s, version %s) created in project %s for %d device(s)",
        release.id,
        release.version_hash,
        release.version,
        project.id,
        len(device_ids),
    )
    return release, values


def new_version_hash() -> str:
    while True:
        candidate = secrets.token_hex(4)
        if db.session.scalar(select(Release.id).where(Release.version_hash == candidate)) is None:
            return candidate


def list_devices(release: Release, device_ids: list[str]) -> None:
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


def set_devices(release: Release, wanted: list[Row]) -> None:
    """The release now lists ``wanted`` (rows of ``id``, ``unit_id``): queue it on the added devices;
    the removed ones fall back to their previous release. A release gains no device the
    account's current release policy would not let it have (400 naming ``devices``)."""
    targeted = set(
        db.session.scalars(
            select(release_devices.c.device_id).where(release_devices.c.release_id == release.id)
        )
    )
    if any(d[0] not in targeted for d in wanted):
        reason = release_policy.refusal(release)
        if reason:
            raise ValidationError({"devices": [f"This release can gain no devices: {reason}."]})
    if db.session.get(Rollout, release.id) is not None or db.session.scalar(
        select(release_tags.c.tag).where(release_tags.c.release_id == release.id).limit(1)
    ):
        added, removed = rollout_targets.set_listed(release, wanted)
        unlist_devices([release.id], removed)
        queue_release(release, added)
        return
    current = targeted
    wanted_ids = {d[0] for d in wanted}
    added = [d for d in wanted if d[0] not in current]
    removed = [i for i in current if i not in wanted_ids]
    unlist_devices([release.id], removed)
    list_devices(release, [d[0] for d in added])
    queue_release(release, added)
    if added or removed:
        log.info(
            "release %s devices changed: %d added, %d removed", release.id, len(added), len(removed)
        )


def commit(version: str) -> None:
    """Commit; a concurrent release that took the same version is the same 400 as a stored one."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ValidationError({"version": [_version_taken(version)]}) from None


def release_of(project_id: int, release_id: int) -> tuple[Project, Release]:
    """The account's project and its release, or 404."""
    project = owned_or_404(Project, project_id)
    release = db.session.scalars(
        select(Release).where(Release.id == release_id, Release.project_id == project.id)
    ).one_or_none()
    if release is None:
        raise NotFound()
    return project, release
