"""OpenAPI paths of the logbook endpoints (added to /openapi.json by ``init_app``); the bodies
and query parameters are the pydantic models of :mod:`api.schemas.logbook`."""

from pydantic import BaseModel

from api.schemas.base import component_schemas
from api.schemas.logbook import (
    MAX_BUCKETS,
    LogbookField,
    LogbookFieldsQuery,
    LogbookReadQuery,
    LogbookRow,
    LogbookWrite,
    LogbookWritten,
)

_SECURITY: list[dict[str, list[str]]] = [{"APIToken": []}]


def _ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema, description):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(
        _ref("ValidationErrors"), "Invalid input, naming the parameter (or the record index)."
    ),
    "401": _json(_ref("Detail"), "Missing, invalid, revoked or expired token."),
    "403": _json(_ref("Detail"), "Wrong token scope, or a device token for another device."),
    "404": _json(_ref("Detail"), "Unknown device, or a device of another account."),
}


def _parameters(model: type[BaseModel]) -> list[dict]:
    """The fields of a query model as OpenAPI query parameters (required = no default)."""
    schema = component_schemas([model], [])[model.__name__]
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


SCHEMAS = component_schemas([LogbookWrite], [LogbookWritten, LogbookRow, LogbookField])
# the record union under one name: the five typed records, chosen by field_type
SCHEMAS["LogbookRecord"] = SCHEMAS["LogbookWrite"]["properties"]["records"].pop("items")
SCHEMAS["LogbookWrite"]["properties"]["records"]["items"] = _ref("LogbookRecord")

PATHS = {
    "/logbook/storage/write/": {
        "post": {
            "tags": ["logbook"],
            "summary": "Store a batch of samples of one device (idempotent on device, field, ts; all or nothing)",
            "description": "Token scope: device (that device) or user. A record's `value` has "
            "the type its `field_type` names.",
            "security": _SECURITY,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("LogbookWrite")}},
            },
            "responses": {"201": _json(_ref("LogbookWritten"), "Stored."), **_ERRORS},
        }
    },
    "/logbook/storage/read/": {
        "get": {
            "tags": ["logbook"],
            "summary": "Raw samples or aggregated buckets of one field over [from_utc, to_utc)",
            "description": f"Token scope: user. Buckets aligned to from_utc, empty ones omitted, "
            f"at most {MAX_BUCKETS} buckets. {(LogbookReadQuery.__doc__ or ': ').split(': ', 1)[1]}",
            "security": _SECURITY,
            "parameters": _parameters(LogbookReadQuery),
            "responses": {
                "200": _json({"type": "array", "items": _ref("LogbookRow")}, "Rows, oldest first."),
                **_ERRORS,
            },
        }
    },
    "/logbook/storage/fields/": {
        "get": {
            "tags": ["logbook"],
            "summary": "The fields of a device and their types",
            "description": "Token scope: user.",
            "security": _SECURITY,
            "parameters": _parameters(LogbookFieldsQuery),
            "responses": {
                "200": _json({"type": "array", "items": _ref("LogbookField")}, "Fields by name."),
                **_ERRORS,
            },
        }
    },
}
