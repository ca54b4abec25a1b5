"""``/openapi.json`` (OpenAPI 3.1) and ``/docs/`` (Swagger UI on it); both readable without a token.

Each operation is declared once, on its view, with :func:`operation` (body, query, responses,
errors; the token scopes come from ``@require_token``); :func:`build_document` walks the URL map
and generates the paths, the ``components.schemas`` of the pydantic models the declarations name
and the links from a create to the new object. A route without a declaration (none in the REST
API today) still gets an entry built from its view docstring and scopes, so the document always
lists every endpoint.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Blueprint, Flask, current_app, make_response, render_template
from pydantic import BaseModel

from api.bodies import component_schemas
from api.fields import ANY_TEXT
from api.limits import MAX_DB_ID, MAX_PAGE_SIZE

F = TypeVar("F", bound=Callable[..., Any])

bp = Blueprint(
    "openapi",
    __name__,
    template_folder="templates",
    # the vendored Swagger UI (api/static/swagger-ui/README.md) and its start script
    static_folder="static",
    static_url_path="/docs/static",
)

# Swagger UI is a script: /docs/ loads it, its stylesheet and /openapi.json from this origin only
# (no inline script, no eval, no framing); other HTML pages keep api.security.headers.CSP.
DOCS_CSP = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

# -- declarations: ``@operation(...)`` on each view -------------------------------------------


@dataclass(frozen=True)
class Response:
    """A response of an operation: ``schema`` is a pydantic model, a JSON schema (a dict that may
    hold models where a schema goes, see :func:`page_of`), or None (no body)."""

    schema: Any = None
    description: str = ""


@dataclass(frozen=True)
class Operation:
    """What ``@operation`` declares about one method of a view (see :func:`operation`)."""

    tag: str
    summary: str
    description: str
    method: str | None
    body: Any
    body_required: bool
    partial: bool
    query: Any
    responses: dict[int, Response]
    errors: dict[int, str]
    operation_id: str | None
    paginated: bool


@dataclass(frozen=True)
class Derived:
    """A request body component derived from ``model``'s: the same schema under ``name``
    without the ``required`` entries in ``optional`` (all of them when empty)."""

    model: type[BaseModel]
    name: str
    optional: tuple[str, ...] = ()


PARTIAL_NOTE = (
    "Any subset of the fields; a request without a body is read as `{}` (no field given), as "
    "DRF's partial update does."
)


# app.extensions key: the function that returns every listed body's schema (api.schema_registry),
# handed over by create_app so this module, which every view imports, imports no feature's bodies
COMPONENTS = "berth_openapi_components"


def operation(
    tag: str,
    summary: str,
    *,
    description: str = "",
    method: str | None = None,
    body: Any = None,
    body_required: bool | None = None,
    partial: bool = False,
    query: Any = (),
    responses: dict[int, Any],
    errors: dict[int, str] | None = None,
    operation_id: str | None = None,
    paginated: bool = False,
) -> Callable[[F], F]:
    """Declare a view's operation for ``/openapi.json``; put it under the route decorator.

    ``body``: the request body (a pydantic model, a :class:`Derived` one, or a JSON schema
    holding models); ``partial``: PATCH, any subset of the body's fields (component
    ``<Body>Patch``, body optional; the description defaults to :data:`PARTIAL_NOTE`). ``query``: a model whose fields are the query parameters,
    or a list of parameter objects. ``responses``: status -> model, schema, :class:`Response`
    or None (no body). ``errors``: status -> description, for an error this operation answers
    beyond the ones every operation gets (400/401/403/404/413/415, added where they apply) or
    to say more about one of those. ``paginated``: ``?page=&page_size=`` (implied by a
    :func:`page_of` response). The token scopes come from the view's ``@require_token``; a
    view serving several methods declares one operation per ``method``."""
    answers = {s: r if isinstance(r, Response) else Response(r) for s, r in responses.items()}
    declared = Operation(
        tag=tag,
        summary=summary,
        description=description or (PARTIAL_NOTE if partial else ""),
        method=method.upper() if method else None,
        body=body,
        body_required=(not partial) if body_required is None else body_required,
        partial=partial,
        query=query,
        responses={
            status: r if isinstance(r, Response) else Response(r) for status, r in responses.items()
        },
        errors=dict(errors or {}),
        operation_id=operation_id,
        paginated=paginated or any(isinstance(r.schema, _Page) for r in answers.values()),
    )

    def mark(view: F) -> F:
        view.openapi_operations = (  # type: ignore[attr-defined]
            *getattr(view, "openapi_operations", ()),
            declared,
        )
        return view

    return mark


class _Page(dict):
    """The schema of a page of ``model`` (api.pagination)."""


def page_of(model: type[BaseModel]) -> dict:
    """A DRF page: ``{count, next, previous, results: [model]}``."""
    return _Page(
        {
            "type": "object",
            "required": ["count", "next", "previous", "results"],
            "properties": {
                "count": {"type": "integer"},
                "next": {"type": ["string", "null"], "format": "uri"},
                "previous": {"type": ["string", "null"], "format": "uri"},
                "results": {"type": "array", "items": model},
            },
        }
    )


def list_of(model: type[BaseModel]) -> dict:
    return {"type": "array", "items": model}


def query_param(name: str, description: str = "", schema: dict | None = None) -> dict:
    """An optional query parameter (a string unless ``schema`` says otherwise)."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema or {"type": "string"},
        "description": description,
    }


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str = "") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


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


def _path_param(name: str, type_: str = "integer", description: str = "") -> dict:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": type_},
        "description": description,
    }


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-zA-Z_]+)>", r"{\1}", rule)


# path parameters every operation names alike
PATH_PARAMETERS = {"device_id": "Device id (UUID)."}
_PAGE_QUERY = [
    {
        "name": "page",
        "in": "query",
        "description": "Page number.",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_DB_ID},
    },
    {
        "name": "page_size",
        "in": "query",
        "description": f"Rows per page (max {MAX_PAGE_SIZE}).",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE},
    },
]
_ERROR_SCHEMA = {400: "ValidationErrors"}  # every other error is {"detail": ...}


class _Components:
    """The models the declarations name, by mode, and the derived bodies."""

    def __init__(self) -> None:
        self.requests: dict[str, type[BaseModel]] = {}
        self.responses: dict[str, type[BaseModel]] = {}
        self.derived: dict[str, Derived] = {}

    def schema(self, node: Any, request: bool) -> Any:
        """``node`` with its models (and :class:`Derived` bodies) as ``$ref`` s."""
        if isinstance(node, type) and issubclass(node, BaseModel):
            (self.requests if request else self.responses)[node.__name__] = node
            return _ref(node.__name__)
        if isinstance(node, Derived):
            self.requests[node.model.__name__] = node.model
            self.derived[node.name] = node
            return _ref(node.name)
        if isinstance(node, dict):
            return {k: self.schema(v, request) for k, v in node.items()}
        if isinstance(node, list):
            return [self.schema(v, request) for v in node]
        return node

    def build(self) -> dict[str, Any]:
        schemas = component_schemas(self.requests.values(), self.responses.values())
        for model in self.requests.values():
            hook = getattr(model, "openapi_components", None)
            if hook is not None:  # a model that names a part of its schema (LogbookWrite)
                hook(schemas)
        for name, derived in self.derived.items():
            schema = copy.deepcopy(schemas[derived.model.__name__])
            required = [n for n in schema.pop("required", []) if n not in derived.optional]
            if derived.optional and required:
                schema["required"] = required
            schemas[name] = schema
        return schemas


def _query_parameters(query: Any, components: _Components) -> list[dict]:
    if not (isinstance(query, type) and issubclass(query, BaseModel)):
        return copy.deepcopy(list(query))
    # the fields of a query model (required: no default)
    schema = component_schemas([query], [])[query.__name__]
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "description": prop.pop("description", ""),
                "schema": prop,
            }
        )
    return parameters


def _declared_operation(
    rule: Any, declared: Operation, scopes: tuple[str, ...] | None, components: _Components
) -> dict[str, Any]:
    description = declared.description
    if scopes:
        description = f"{description} Token scope: {' or '.join(scopes)}.".strip()
    op: dict[str, Any] = {"tags": [declared.tag], "summary": declared.summary}
    if description:
        op["description"] = description
    if declared.operation_id:
        op["operationId"] = declared.operation_id
    if scopes:
        op["security"] = [{"APIToken": []}]
    parameters = [
        {
            "name": arg,
            "in": "path",
            "required": True,
            "schema": {
                "type": "integer" if type(conv).__name__ == "IntegerConverter" else "string"
            },
            **({"description": PATH_PARAMETERS[arg]} if arg in PATH_PARAMETERS else {}),
        }
        for arg, conv in rule._converters.items()
    ]
    parameters += _query_parameters(declared.query, components)
    if declared.paginated:
        parameters += copy.deepcopy(_PAGE_QUERY)
    if parameters:
        op["parameters"] = parameters
    if declared.body is not None:
        body = declared.body
        if declared.partial and isinstance(body, type):
            body = Derived(body, f"{body.__name__}Patch")
        op["requestBody"] = {
            "required": declared.body_required,
            "content": {"application/json": {"schema": components.schema(body, True)}},
        }
    responses: dict[str, Any] = {}
    for status, response in declared.responses.items():
        responses[str(status)] = (
            {"description": response.description or "No body."}
            if response.schema is None
            else _json(components.schema(response.schema, False), response.description or "OK")
        )
    if declared.paginated:
        responses["404"] = _json(_ref("Detail"), "A page past the last one (`Invalid page.`).")
    for status, text in declared.errors.items():
        responses[str(status)] = _json(_ref(_ERROR_SCHEMA.get(status, "Detail")), text)
    op["responses"] = responses
    return op


def _link_creates(paths: dict, declared: set[tuple[str, str]]) -> None:
    """OpenAPI links from a create's 201 to the operations on the new object (the path below
    the collection, its last parameter the new object's ``id``): clients and schemathesis's
    stateful tests follow them."""
    for path, method in declared:
        created = paths[path][method]["responses"].get("201")
        if method != "post" or created is None:
            continue
        for item_path, item_ops in paths.items():
            match = re.fullmatch(re.escape(path) + r"\{([a-z_]+)\}/", item_path)
            if not match:
                continue
            parameters = {p: f"$request.path.{p}" for p in re.findall(r"\{([a-z_]+)\}", path)}
            parameters[match.group(1)] = "$response.body#/id"
            name = (item_ops.get("get") or {}).get("operationId", "")[3:] or match.group(1)
            created["links"] = {
                op["operationId"][0].upper() + op["operationId"][1:]: {
                    "operationId": op["operationId"],
                    "parameters": dict(parameters),
                    "description": f"The {name.lower()} just created.",
                }
                for op in item_ops.values()
                if op.get("operationId")
            }


def build_document(app: Flask) -> dict:
    paths: dict[str, Any] = {}
    components = _Components()
    declared: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        operations = getattr(view, "openapi_operations", ())
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found = [d for d in operations if d.method in (None, method)]
            if not found:
                continue
            path = _openapi_path(rule.rule)
            scopes = getattr(view, "required_scopes", None)
            paths.setdefault(path, {})[method.lower()] = _declared_operation(
                rule, found[0], scopes, components
            )
            declared.add((path, method.lower()))
    _link_creates(paths, declared)
    # the console and the account page are HTML for a browser session, not the REST API
    undocumented_ok = {"openapi.", "account_page.", "console.", "static"}
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
    _document_errors(paths)
    listed = app.extensions.get(
        COMPONENTS
    )  # api.schema_registry.openapi_components, from create_app
    schemas = {**(listed() if listed else {}), **components.build()}
    _partial_patch_bodies(paths, schemas)
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
            "schemas": schemas,
        },
    }


_BODY_ERRORS = {
    "413": _json(_ref("Detail"), "The body is larger than the limit (16 MiB)."),
    "415": _json(_ref("Detail"), "The body is not JSON (`Content-Type: application/json`)."),
}


def _document_errors(paths: dict) -> None:
    """Every error the application can answer an operation with is in its ``responses`` (all
    JSON in DRF shape, ``api/errors.py``): 401/403 where a token is needed, 404 where the path
    names an object (an integer id outside 1..2^31-1 included), 400 everywhere (a NUL in any
    query parameter is refused before the view), 413/415 where there is a body. Integer path ids carry the range the routing enforces."""
    for ops in paths.values():
        for op in ops.values():
            responses = op.setdefault("responses", {})
            params = op.get("parameters") or []
            if op.get("security"):
                responses.setdefault("401", _ERRORS["401"])
                responses.setdefault("403", _ERRORS["403"])
            path_params = [p for p in params if p.get("in") == "path"]
            if path_params:
                responses.setdefault("404", _ERRORS["404"])
            for param in path_params:
                schema = param.setdefault("schema", {})
                if schema.get("type") == "integer":
                    schema.setdefault("minimum", 1)
                    schema.setdefault("maximum", MAX_DB_ID)
            for param in params:  # a NUL in a query parameter is a 400 (api/__init__.py)
                schema = param.get("schema") or {}
                if param.get("in") == "query" and schema.get("type") == "string":
                    schema.setdefault("pattern", ANY_TEXT["pattern"])
            # any request can be refused: a NUL in any query parameter (api/__init__.py)
            responses.setdefault("400", _ERRORS["400"])
            if op.get("requestBody"):
                for code, response in _BODY_ERRORS.items():
                    responses.setdefault(code, response)


def _partial_patch_bodies(paths: dict, schemas: dict) -> None:
    """PATCH takes any subset of the fields (DRF ``partial=True``): its body is the input
    schema without ``required``, as component ``<Input>Patch``."""
    for ops in paths.values():
        patch = ops.get("patch")
        content = ((patch or {}).get("requestBody") or {}).get("content", {})
        schema = content.get("application/json", {}).get("schema", {})
        name = schema.get("$ref", "").rsplit("/", 1)[-1]
        if not name or name not in schemas or name.endswith("Patch"):
            continue
        partial = copy.deepcopy(schemas[name])
        partial.pop("required", None)
        schemas[f"{name}Patch"] = partial
        content["application/json"]["schema"] = _ref(f"{name}Patch")


@bp.get("/openapi.json")
def openapi_json():
    return build_document(current_app)


@bp.get("/docs/")
def docs():
    response = make_response(render_template("docs.html", doc=build_document(current_app)))
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response
