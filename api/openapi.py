"""``/openapi.json`` (OpenAPI 3.1) and ``/docs/`` (the same document as HTML); both readable without a token.

Core resources are described here in full. Routes that feature packages add
are described by their own ``add_paths(app, paths, schemas)`` call; any route
still undocumented gets an entry built from its view docstring and scopes, so
the document always lists every endpoint.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from flask import Blueprint, Flask, current_app, render_template

from berth.contract import DeploymentState

bp = Blueprint("openapi", __name__, template_folder="templates")

_EXTENSION_KEY = "berth_openapi"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str = "") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _page_of(name: str) -> dict:
    return {
        "type": "object",
        "required": ["count", "next", "previous", "results"],
        "properties": {
            "count": {"type": "integer"},
            "next": {"type": ["string", "null"], "format": "uri"},
            "previous": {"type": ["string", "null"], "format": "uri"},
            "results": {"type": "array", "items": _ref(name)},
        },
    }


_ERRORS = {
    "400": _json(
        _ref("ValidationErrors"), "Invalid input: field -> messages (nested for containers)."
    ),
    "401": _json(
        _ref("Detail"), "Missing, invalid, revoked or expired token (`WWW-Authenticate: APIToken`)."
    ),
    "403": _json(_ref("Detail"), "The token's scope does not allow this endpoint."),
    "404": _json(_ref("Detail"), "Unknown id, or an object of another account."),
}
_PAGE_PARAMS = [
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {
        "name": "page_size",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
]


def _path_param(name: str, type_: str = "integer", description: str = "") -> dict:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": type_},
        "description": description,
    }


def _crud(
    tag: str,
    name: str,
    *,
    item_params: list[dict],
    list_params: list[dict] | None = None,
    collection_params: list[dict] | None = None,
    input_name: str,
    scopes: tuple[str, ...] = ("user",),
    extra_409: dict[str, str] | None = None,
) -> tuple[dict, dict]:
    collection_params = collection_params or []
    sec = [{"APIToken": []}]
    scope_note = f"Token scope: {' or '.join(scopes)}."
    body = {"required": True, "content": {"application/json": {"schema": _ref(input_name)}}}
    collection = {
        "get": {
            "tags": [tag],
            "summary": f"List {tag}",
            "description": scope_note,
            "security": sec,
            "parameters": collection_params + (list_params or []) + _PAGE_PARAMS,
            "responses": {"200": _json(_page_of(name), "A page of results."), **_ERRORS},
        },
        "post": {
            "tags": [tag],
            "summary": f"Create a {name}",
            "description": "Token scope: user.",
            "security": sec,
            "parameters": collection_params,
            "requestBody": body,
            "responses": {"201": _json(_ref(name), "Created."), **_ERRORS},
        },
    }
    params = collection_params + item_params
    conflict = (
        {"409": _json(_ref("Detail"), text)} if (text := (extra_409 or {}).get("update")) else {}
    )
    item = {
        "get": {
            "tags": [tag],
            "summary": f"Get a {name}",
            "description": scope_note,
            "security": sec,
            "parameters": params,
            "responses": {"200": _json(_ref(name)), **_ERRORS},
        },
        "put": {
            "tags": [tag],
            "summary": f"Replace a {name}",
            "security": sec,
            "parameters": params,
            "requestBody": body,
            "responses": {"200": _json(_ref(name)), **_ERRORS, **conflict},
        },
        "patch": {
            "tags": [tag],
            "summary": f"Update some fields of a {name}",
            "security": sec,
            "parameters": params,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref(input_name)}},
            },
            "responses": {"200": _json(_ref(name)), **_ERRORS, **conflict},
        },
        "delete": {
            "tags": [tag],
            "summary": f"Delete a {name}",
            "security": sec,
            "parameters": params,
            "responses": {"204": {"description": "Deleted, no body."}, **_ERRORS},
        },
    }
    if (text := (extra_409 or {}).get("delete")) is not None:
        item["delete"]["responses"]["409"] = _json(_ref("Detail"), text)
    return collection, item


_STARTUP_PARAMETERS = {
    "type": "object",
    "additionalProperties": False,
    "description": "Validated at the API; an unknown key or bad value is a 400 naming it.",
    "properties": {
        "environment": {
            "description": "Shell-quoted string, list of KEY=VALUE, or map.",
            "oneOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}},
                {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "number", "boolean"]},
                },
            ],
        },
        "binds": {
            "type": "array",
            "items": {"type": "string"},
            "description": "/host:/container[:ro|rw]",
        },
        "volumes": {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object"}]},
        "ports": {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "object"}]},
        "network_mode": {
            "type": "string",
            "description": "host, none, bridge, container:<name> or a network",
        },
        "restart_policy": {
            "type": "string",
            "description": "no, always, unless-stopped, on-failure[:N]",
        },
        "privileged": {"type": "boolean"},
        "command": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "entrypoint": {
            "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
        },
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "devices": {"type": "array", "items": {"type": "string"}},
        "cap_add": {"type": "array", "items": {"type": "string"}},
        "mem_limit": {
            "oneOf": [{"type": "integer"}, {"type": "string"}],
            "description": "bytes or 512m, 1g",
        },
        "user": {"type": "string"},
        "working_dir": {"type": "string"},
        "log_config": {
            "type": "object",
            "properties": {"type": {"type": "string"}, "config": {"type": "object"}},
        },
    },
}

_CONTAINER_INPUT = {
    "type": "object",
    "required": ["name", "image", "tag"],
    "properties": {
        "name": {
            "type": "string",
            "pattern": "^[a-zA-Z0-9][a-zA-Z0-9_.-]+$",
            "description": "Unique in the release.",
        },
        "image": {
            "type": "string",
            "description": "Docker repository name without tag, e.g. `curveball`.",
        },
        "tag": {"type": "string", "pattern": "^[\\w][\\w.-]{0,127}$"},
        "required_tags": {"type": "array", "items": {"type": "string"}, "default": []},
        "startup_parameters": _ref("StartupParameters"),
        "purge_data": {"type": "boolean", "default": False},
        "registry": {
            "type": ["integer", "null"],
            "description": "Registry id; pulled as `<url>/<image>:<tag>`.",
        },
    },
}

SCHEMAS: dict[str, Any] = {
    "Detail": {
        "type": "object",
        "required": ["detail"],
        "properties": {"detail": {"type": "string"}},
    },
    "ValidationErrors": {
        "type": "object",
        "description": 'DRF shape: {"field": ["message"], "non_field_errors": [...]}; containers nest per index.',
        "additionalProperties": True,
    },
    "Device": {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid", "readOnly": True},
            "unit_id": {"type": "string", "description": "The Salt minion id (unique)."},
            "display": {"type": "string"},
            "created": {"type": "string", "format": "date-time", "readOnly": True},
            "docker_releases": {
                "type": "array",
                "items": {"type": "integer"},
                "readOnly": True,
                "description": "Ids of releases this device deployed successfully.",
            },
        },
    },
    "DeviceInput": {
        "type": "object",
        "required": ["unit_id"],
        "properties": {
            "unit_id": {"type": "string", "maxLength": 255},
            "display": {"type": "string"},
        },
    },
    "Registry": {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "readOnly": True},
            "name": {"type": "string"},
            "url": {"type": "string", "description": "host[:port][/path]"},
            "username": {"type": "string"},
            "created": {"type": "string", "format": "date-time", "readOnly": True},
        },
    },
    "RegistryInput": {
        "type": "object",
        "required": ["name", "url", "username", "password"],
        "properties": {
            "name": {"type": "string"},
            "url": {"type": "string"},
            "username": {"type": "string"},
            "password": {
                "type": "string",
                "writeOnly": True,
                "description": "Write-only, encrypted at rest; optional on update.",
            },
        },
    },
    "Project": {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "readOnly": True},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "created": {"type": "string", "format": "date-time", "readOnly": True},
        },
    },
    "ProjectInput": {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "description": {"type": "string"}},
    },
    "StartupParameters": _STARTUP_PARAMETERS,
    "ContainerInput": _CONTAINER_INPUT,
    "Container": {
        "allOf": [
            _ref("ContainerInput"),
            {
                "type": "object",
                "properties": {
                    "fully_qualified_name": {
                        "type": "string",
                        "readOnly": True,
                        "description": "deployment-{name}-{release id}",
                    }
                },
            },
        ]
    },
    "ReleaseInput": {
        "type": "object",
        "required": ["version", "containers"],
        "description": "Read-only fields (id, version_hash, successful_deployments, fully_qualified_name) are ignored.",
        "properties": {
            "version": {"type": "string", "description": "Unique within the project."},
            "devices": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Device ids; may change.",
            },
            "containers": {
                "type": "array",
                "items": _ref("ContainerInput"),
                "description": "Immutable after creation (409).",
            },
            "remove_containers": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Release": {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "readOnly": True},
            "project": {"type": "integer", "readOnly": True},
            "version": {"type": "string"},
            "version_hash": {"type": "string", "pattern": "^[0-9a-f]{8}$", "readOnly": True},
            "devices": {"type": "array", "items": {"type": "string"}},
            "containers": {"type": "array", "items": _ref("Container")},
            "successful_deployments": {
                "type": "array",
                "items": {"type": "string"},
                "readOnly": True,
            },
            "remove_containers": {"type": "array", "items": {"type": "string"}},
            "created": {"type": "string", "format": "date-time", "readOnly": True},
        },
    },
    "Deployment": {
        "type": "object",
        "properties": {
            "release": {"type": "integer"},
            "device": {"type": "string"},
            "unit_id": {"type": "string"},
            "status": {"enum": list(DeploymentState)},
            "error": {"type": ["string", "null"]},
            "attempts": {"type": "integer"},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
}


def _core_paths() -> dict:
    paths: dict[str, Any] = {}
    dev_c, dev_i = _crud(
        "devices",
        "Device",
        input_name="DeviceInput",
        item_params=[_path_param("device_id", "string", "Device id (UUID).")],
        list_params=[{"name": "unit_id", "in": "query", "schema": {"type": "string"}}],
        scopes=("user", "master"),
    )
    paths["/devices/"] = dev_c
    paths["/devices/{device_id}/"] = dev_i
    reg_c, reg_i = _crud(
        "registries",
        "Registry",
        input_name="RegistryInput",
        item_params=[_path_param("registry_id")],
        extra_409={"delete": "The registry is used by release containers."},
    )
    paths["/docker/registries/"] = reg_c
    paths["/docker/registries/{registry_id}/"] = reg_i
    pro_c, pro_i = _crud(
        "projects", "Project", input_name="ProjectInput", item_params=[_path_param("project_id")]
    )
    paths["/docker/projects/"] = pro_c
    paths["/docker/projects/{project_id}/"] = pro_i
    rel_c, rel_i = _crud(
        "releases",
        "Release",
        input_name="ReleaseInput",
        collection_params=[_path_param("project_id")],
        item_params=[_path_param("release_id")],
        list_params=[
            {"name": "version_hash", "in": "query", "schema": {"type": "string"}},
            {
                "name": "device",
                "in": "query",
                "schema": {"type": "string"},
                "description": "Releases listing it.",
            },
        ],
        extra_409={
            "update": "Containers or remove_containers of an existing release cannot be changed."
        },
    )
    rel_c["post"]["description"] = (
        "Creates the release and queues it on every listed device. Token scope: user. "
        "The seed's body is accepted verbatim."
    )
    paths["/docker/projects/{project_id}/releases/"] = rel_c
    paths["/docker/projects/{project_id}/releases/{release_id}/"] = rel_i
    paths["/docker/projects/{project_id}/releases/{release_id}/deployments/"] = {
        "get": {
            "tags": ["releases"],
            "summary": "Per-device deployment status of a release",
            "security": [{"APIToken": []}],
            "parameters": [
                _path_param("project_id"),
                _path_param("release_id"),
                {"name": "device", "in": "query", "schema": {"type": "string"}},
                {"name": "status", "in": "query", "schema": {"type": "string"}},
                *_PAGE_PARAMS,
            ],
            "responses": {"200": _json(_page_of("Deployment")), **_ERRORS},
        }
    }
    return paths


def add_paths(app: Flask, paths: dict, schemas: dict | None = None) -> None:
    """Feature packages describe their endpoints with this from their ``init_app``."""
    extra = app.extensions.setdefault(_EXTENSION_KEY, {"paths": {}, "schemas": {}})
    extra["paths"].update(paths)
    extra["schemas"].update(schemas or {})


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-zA-Z_]+)>", r"{\1}", rule)


def build_document(app: Flask) -> dict:
    extra = app.extensions.get(_EXTENSION_KEY, {"paths": {}, "schemas": {}})
    paths = _core_paths()
    for path, ops in extra["paths"].items():
        paths.setdefault(path, {}).update(copy.deepcopy(ops))
    undocumented_ok = {"openapi.", "account_page.", "static"}
    for rule in app.url_map.iter_rules():
        if any(rule.endpoint.startswith(p) for p in undocumented_ok):
            continue
        path = _openapi_path(rule.rule)
        view = app.view_functions[rule.endpoint]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op = paths.setdefault(path, {}).get(method.lower())
            if op is not None:
                continue
            doc = (view.__doc__ or rule.endpoint).strip()
            scopes = getattr(view, "required_scopes", None)
            entry: dict[str, Any] = {
                "tags": [rule.endpoint.split(".")[0]],
                "summary": doc.splitlines()[0],
                "description": doc + (f"\n\nToken scope: {' or '.join(scopes)}." if scopes else ""),
                "parameters": [
                    _path_param(
                        arg,
                        "integer" if conv.__class__.__name__ == "IntegerConverter" else "string",
                    )
                    for arg, conv in rule._converters.items()
                ],
                "responses": {"200": {"description": "OK"}, **_ERRORS},
            }
            if scopes:
                entry["security"] = [{"APIToken": []}]
            if method in ("POST", "PUT", "PATCH"):
                entry["requestBody"] = {
                    "content": {"application/json": {"schema": {"type": "object"}}}
                }
            paths[path][method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Berth fleet API",
            "version": "1.0.0",
            "description": (
                "Docker releases, remote commands and telemetry for Salt-managed devices. "
                "Authenticate with `Authorization: APIToken <token>`. Conventions follow Django REST Framework: "
                "trailing slashes, 201/200/204, 400 `{field: [messages]}`, 401/403/404 `{detail}`, "
                "paginated lists `?page=&page_size=`."
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "APIToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`APIToken <token>`; scopes user, master, device.",
                }
            },
            "schemas": {**SCHEMAS, **extra["schemas"]},
        },
    }


@bp.get("/openapi.json")
def openapi_json():
    return build_document(current_app)


@bp.get("/docs/")
def docs():
    document = build_document(current_app)
    return render_template("docs.html", doc=document, dumps=lambda v: json.dumps(v, indent=2))
