"""Release bodies: ``/docker/projects/{p}/releases/`` in and out, and per-device deployments.

The input follows the seed: ``version``, ``devices``, ``containers``, ``remove_containers``;
read-only ``id``, ``version_hash``, ``successful_deployments`` and container
``fully_qualified_name`` are ignored on input. Rules that need the database (a registry or
device of the account) read the request's account from ``flask.g``; the version's
uniqueness in its project is checked by the view (:mod:`api.releases.validation`).
"""

from __future__ import annotations

from typing import Annotated, Any

from flask import g
from pydantic import Field
from sqlalchemy import Row, select

from api.bodies import (
    TIMESTAMP,
    RequestBody,
    ResponseBody,
    doc,
    parse,
    ref,
)
from api.bulk import id_rows
from api.devices.models import Device
from api.extensions import db
from api.fields import (
    DIGEST_RE,
    MAX_DB_ID,
    Check,
    FieldError,
    Name,
    boolean,
    checks,
    container_name,
    docker_image,
    docker_tag,
    image_digest,
    json_value,
    list_of,
    rule,
    text_problem,
)
from api.limits import (
    MAX_RELEASE_CONTAINERS,
    MAX_RELEASE_DEVICES,
    MAX_REMOVE_CONTAINERS,
    MAX_REQUIRED_TAGS,
)
from api.policies import release as release_policy
from api.registries.models import Registry
from api.rollouts import schemas as rollout_rules
from api.rollouts.schemas import TAG, RolloutPolicy
from berth import contract, startup_params
from berth.contract import DeploymentState, DerivedDeploymentState
from berth.release.policy import PROTECTED_CONTAINERS

READ_ONLY = {"readOnly": True}


def registry_ref(value: Any) -> int:
    """The id of one of the account's registries."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(f"Incorrect type. Expected pk value, received {type(value).__name__}.")
    if not 1 <= value <= MAX_DB_ID:
        raise FieldError(f'Invalid pk "{value}" - object does not exist.')
    owned = select(Registry.id).where(Registry.id == value, Registry.account_id == g.account.id)
    if db.session.scalar(owned) is None:
        raise FieldError(f'Invalid pk "{value}" - object does not exist.')
    return value


def startup_parameters_map(value: Any) -> dict:
    if not isinstance(value, dict):
        raise FieldError(f'Expected a dictionary of items but got type "{type(value).__name__}".')
    errors = startup_params.validate(value)
    if errors:
        raise FieldError(errors)
    return json_value(value)  # stored as JSON: no NUL, lone surrogates or deep nesting


class ContainerInput(RequestBody):
    name: Annotated[
        str,
        rule(container_name),
        doc("Unique in the release."),
    ]
    image: Annotated[
        str, rule(docker_image), doc("Docker repository name without tag, e.g. `curveball`.")
    ]
    tag: Annotated[str, rule(docker_tag)]
    required_tags: Annotated[list[str], rule(list_of(docker_tag, max_items=MAX_REQUIRED_TAGS))] = (
        Field(default_factory=list)
    )
    startup_parameters: Annotated[
        dict[str, Any],
        rule(startup_parameters_map),
        ref("StartupParameters"),
    ] = Field(default_factory=dict)
    purge_data: Annotated[bool, rule(boolean)] = False
    registry: Annotated[
        int | None,
        rule(registry_ref, nullable=True),
        doc("Registry id; pulled as `<url>/<image>:<tag>`."),
    ] = None
    digest: Annotated[
        str | None,
        rule(image_digest, nullable=True),
        doc(
            "The image's digest (`sha256:` + 64 hex digits); when given it is pinned as it is and "
            "the tag is not looked up. Absent: the API resolves `image:tag` on its registry at "
            'creation (docs/release.md "Digest pinning").'
        ),
    ] = None


@checks(maxItems=MAX_RELEASE_CONTAINERS)
def container_list(value: Any) -> list[ContainerInput]:
    """Each container valid, allowed by the account's release policy (docs/security.md) and
    named once; DRF's errors of a nested list: one entry per item."""
    if not isinstance(value, list):
        raise FieldError(f'Expected a list of items but got type "{type(value).__name__}".')
    if len(value) > MAX_RELEASE_CONTAINERS:
        raise FieldError(f"Ensure this field has no more than {MAX_RELEASE_CONTAINERS} elements.")
    results: list[ContainerInput] = []
    errors: list[dict] = []
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, dict):
            errors.append(
                {
                    "non_field_errors": [
                        f"Invalid data. Expected a dictionary, but got {type(item).__name__}."
                    ]
                }
            )
            continue
        parsed = parse(ContainerInput, item)
        if not parsed.errors:
            parsed.errors.update(release_policy.container_errors(parsed.values))
        if parsed.errors:
            errors.append(parsed.errors)
            continue
        container = ContainerInput.model_construct(**parsed.values)
        if container.name in seen:
            errors.append(
                {
                    "name": [
                        f'Container name "{container.name}" is used more than once in this release.'
                    ]
                }
            )
        else:
            errors.append({})
        seen.add(container.name)
        results.append(container)
    if any(errors):
        raise FieldError(errors)
    return results


@checks(maxItems=MAX_RELEASE_DEVICES)
def device_list(value: Any) -> list[Row]:
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
    return list(known)


# container names, each once; a protected container (the release policy's, docs/security.md) is
# refused by api.policies.release, and OpenAPI says so for the items
_remove_list = list_of(container_name, unique=True, max_items=MAX_REMOVE_CONTAINERS)
removed_containers = Check(
    _remove_list.run,
    **{
        **_remove_list.schema,
        "items": {**container_name.schema, "not": {"enum": list(PROTECTED_CONTAINERS)}},
    },
)


class ReleaseInput(RequestBody):
    """Read-only fields (id, version_hash, successful_deployments, fully_qualified_name) are ignored."""

    version: Annotated[Name, doc("Unique within the project.")]
    devices: Annotated[
        list[str], rule(device_list), doc("Device ids; may change; an added device is queued.")
    ] = Field(default_factory=list)
    containers: Annotated[
        list[ContainerInput],
        rule(container_list, typed=True),
        doc("Immutable after creation (409)."),
    ]
    remove_containers: Annotated[
        list[str],
        rule(removed_containers),
        doc(
            "Containers of other releases to stop and remove (not a protected container); "
            "immutable after creation (409)."
        ),
    ] = Field(default_factory=list)
    # rules in api.rollouts.schemas (docs/rollouts.md)
    device_tags: Annotated[
        list[str],
        rule(rollout_rules.tags),
        doc(
            "The release also targets every device carrying one of these tags (also one tagged "
            "later). Immutable after creation (409)."
        ),
    ] = Field(default_factory=list)
    rollout: Annotated[
        RolloutPolicy | None,
        rule(rollout_rules.rollout_policy, nullable=True),
        ref("RolloutPolicy"),
        doc(
            "Staged rollout; absent or null: every target at once. Immutable after creation (409)."
        ),
    ] = None
    pin_digests: Annotated[
        bool,
        rule(boolean),
        doc(
            "Creation only. true (default): every container without a `digest` is pinned to the "
            "digest its registry serves for `image:tag` now, and a tag that cannot be resolved is a "
            "400 naming the container. false: containers without a `digest` run by tag (recorded "
            "in the audit log)."
        ),
    ] = True


class Container(ResponseBody):
    name: str
    image: str
    tag: str
    required_tags: list[str]
    startup_parameters: Annotated[dict[str, Any], ref("StoredStartupParameters")]
    purge_data: bool
    registry: int | None
    digest: Annotated[
        str | None,
        doc(
            "The pinned digest the device pulls and runs (`image@digest`); null: run by tag.",
            pattern=DIGEST_RE.pattern,
        ),
    ]
    fully_qualified_name: Annotated[
        str, doc(contract.fully_qualified_name("{name}", "{release id}"), **READ_ONLY)
    ]


class Release(ResponseBody):
    id: Annotated[int, doc(**READ_ONLY)]
    project: Annotated[int, doc(**READ_ONLY)]
    version: str
    version_hash: Annotated[str, doc(pattern="^[0-9a-f]{8}$", **READ_ONLY)]
    devices: list[str]
    containers: list[Container]
    successful_deployments: Annotated[list[str], doc(**READ_ONLY)]
    remove_containers: list[str]
    created: Annotated[str, TIMESTAMP, doc(format="date-time", **READ_ONLY)]
    device_tags: list[TAG]
    rollout: RolloutPolicy | None


class Deployment(ResponseBody):
    """One release on one device."""

    release: int
    device: str
    unit_id: str
    status: DeploymentState | DerivedDeploymentState
    error: str | None
    attempts: int
    started_at: Annotated[str | None, TIMESTAMP, doc(format="date-time")]
    finished_at: Annotated[str | None, TIMESTAMP, doc(format="date-time")]
    wave: Annotated[int | None, doc("Rollout wave (1-based); null without a rollout.")]
