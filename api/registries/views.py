"""``/docker/registries/``: private registries devices log in to. The password is write-only."""

from __future__ import annotations

import logging

from flask import Blueprint, g
from sqlalchemy import column, func, select, table

from api import audit
from api.audit import audited
from api.auth import require_token
from api.bodies import parse
from api.common import is_partial, no_content, owned_or_404
from api.errors import Conflict
from api.extensions import db
from api.openapi import Derived, Response, operation, page_of
from api.pagination import paginate
from api.payload import json_body
from api.registries.models import Registry
from api.registries.schemas import Registry as RegistryBody
from api.registries.schemas import RegistryInput
from api.registries.service import enqueue_registry_login

bp = Blueprint("registries", __name__)
log = logging.getLogger(__name__)

# the release containers pulling from a registry, named like a foreign key names its table: the
# releases package depends on this one (a container's registry), never the other way round
RELEASE_CONTAINERS = table("release_containers", column("registry_id"))


def _validate(data: dict, registry: Registry | None, partial: bool = False) -> dict:
    # An update without a password keeps the stored one.
    parsed = parse(
        RegistryInput,
        data,
        partial=partial,
        optional=("password",) if registry is not None else (),
    )
    name = parsed.get("name")
    if name is not None and (registry is None or name != registry.name):
        taken = select(Registry.id).where(
            Registry.account_id == g.account.id, Registry.name == name
        )
        if db.session.scalar(taken) is not None:
            parsed.error("name", "registry with this name already exists.")
    parsed.raise_if_errors()
    return parsed.values


def _apply(registry: Registry, values: dict) -> None:
    for key, value in values.items():
        if key == "password":
            registry.set_password(value)
        else:
            setattr(registry, key, value)


@bp.get("/docker/registries/")
@operation(
    "registries",
    "List registries",
    operation_id="listRegistries",
    responses={200: Response(page_of(RegistryBody), "A page of results.")},
)
@require_token("user")
def list_registries():
    stmt = select(Registry).where(Registry.account_id == g.account.id).order_by(Registry.id)
    return paginate(stmt, RegistryBody.body)


def create(data: dict) -> Registry:
    """Create a registry of ``g.account`` from a request body (raises ValidationError); the
    REST API and the console both call this."""
    values = _validate(data, None)
    registry = Registry(account_id=g.account.id)
    _apply(registry, values)
    db.session.add(registry)
    enqueue_registry_login(g.account.id)
    db.session.flush()
    audit.record("registry.create", target=f"registry:{registry.id}", details={"url": registry.url})
    db.session.commit()
    log.info("registry %s (%s) created in account %s", registry.id, registry.url, g.account.id)
    return registry


def update(registry: Registry, data: dict, partial: bool = False) -> Registry:
    """Change ``registry`` from a request body (no password: the stored one is kept)."""
    values = _validate(data, registry, partial)
    _apply(registry, values)
    if values:
        enqueue_registry_login(g.account.id)
        audit.record(
            "registry.update", target=f"registry:{registry.id}", details={"fields": sorted(values)}
        )
    db.session.commit()
    log.info("registry %s updated: %s", registry.id, ", ".join(sorted(values)) or "nothing")
    return registry


def delete(registry: Registry) -> None:
    """Delete ``registry`` unless a release container uses it (Conflict)."""
    used = db.session.scalar(
        select(func.count()).where(RELEASE_CONTAINERS.c.registry_id == registry.id)
    )
    if used:
        raise Conflict(
            f"This registry is used by {used} release container(s); delete those releases first."
        )
    registry_id = registry.id
    db.session.delete(registry)
    audit.record("registry.delete", target=f"registry:{registry_id}")
    db.session.commit()
    log.info("registry %s deleted", registry_id)


@bp.post("/docker/registries/")
@operation(
    "registries",
    "Create a Registry",
    operation_id="createRegistry",
    body=RegistryInput,
    responses={201: Response(RegistryBody, "Created.")},
)
@audited("registry.create")
@require_token("user")
def create_registry():
    return RegistryBody.body(create(json_body())), 201


@bp.get("/docker/registries/<int:registry_id>/")
@operation(
    "registries", "Get a Registry", operation_id="getRegistry", responses={200: RegistryBody}
)
@require_token("user")
def get_registry(registry_id: int):
    return RegistryBody.body(owned_or_404(Registry, registry_id))


@bp.route("/docker/registries/<int:registry_id>/", methods=["PUT", "PATCH"])
@operation(
    "registries",
    "Replace a Registry",
    method="PUT",
    operation_id="replaceRegistry",
    # the stored password stays when the body has none (write-only, never read back)
    body=Derived(RegistryInput, "RegistryReplaceInput", optional=("password",)),
    responses={200: RegistryBody},
)
@operation(
    "registries",
    "Update some fields of a Registry",
    method="PATCH",
    operation_id="updateRegistry",
    body=RegistryInput,
    partial=True,
    responses={200: RegistryBody},
)
@audited("registry.update")
@require_token("user")
def update_registry(registry_id: int):
    registry = owned_or_404(Registry, registry_id)
    return RegistryBody.body(update(registry, json_body(), is_partial()))


@bp.delete("/docker/registries/<int:registry_id>/")
@operation(
    "registries",
    "Delete a Registry",
    operation_id="deleteRegistry",
    responses={204: Response(None, "Deleted, no body.")},
    errors={409: "The registry is used by release containers."},
)
@audited("registry.delete")
@require_token("user")
def delete_registry(registry_id: int):
    delete(owned_or_404(Registry, registry_id))
    return no_content()
