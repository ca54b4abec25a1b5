"""OpenAPI description of the logbook endpoints (added to /openapi.json by ``init_app``)."""

from .query import MAX_BUCKETS, MAX_SIZE
from .records import MAX_BATCH
from .tables import FIELD_TYPES

_SECURITY = [{"APIToken": []}]


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


def _query(name, description, required=False, **schema):
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": "string", **schema},
    }


SCHEMAS = {
    "LogbookRecord": {
        "type": "object",
        "required": ["ts", "field", "field_type", "value"],
        "properties": {
            "ts": {
                "description": "ISO-8601 (offset or Z; naive = UTC) or epoch milliseconds",
                "oneOf": [{"type": "string"}, {"type": "number"}],
                "example": "2020-07-09T10:11:53.811839Z",
            },
            "field": {"type": "string", "maxLength": 255, "example": "obd.bat.voltage"},
            "field_type": {"type": "string", "enum": list(FIELD_TYPES)},
            "value": {
                "description": "number, integer, boolean, string, or {lat, lon} for geo_point"
            },
        },
    },
    "LogbookWrite": {
        "type": "object",
        "required": ["device_id", "records"],
        "properties": {
            "device_id": {"type": "string"},
            "records": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH,
                "items": _ref("LogbookRecord"),
            },
        },
    },
    "LogbookWritten": {
        "type": "object",
        "properties": {
            "device_id": {"type": "string"},
            "received": {"type": "integer"},
            "written": {"type": "integer", "description": "samples that were new"},
        },
    },
    "LogbookRow": {
        "type": "object",
        "description": "aggregated: {ts (bucket start, ms, Z), max_ts (epoch ms), value}; "
        "raw: {ts (µs, Z), value}; raw geo_point: {ts, location: {lat, lon}}",
        "properties": {
            "ts": {"type": "string", "example": "2020-07-09T10:00:00.000Z"},
            "max_ts": {"type": "integer", "example": 1594289021415},
            "value": {},
            "location": {
                "type": "object",
                "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
            },
        },
    },
    "LogbookField": {
        "type": "object",
        "properties": {
            "field": {"type": "string"},
            "field_type": {"type": "string", "enum": list(FIELD_TYPES)},
        },
    },
}

PATHS = {
    "/logbook/storage/write/": {
        "post": {
            "tags": ["logbook"],
            "summary": "Store a batch of samples of one device (idempotent on device, field, ts; all or nothing)",
            "description": "Token scope: device (that device) or user.",
            "security": _SECURITY,
            "requestBody": {"content": {"application/json": {"schema": _ref("LogbookWrite")}}},
            "responses": {"201": _json(_ref("LogbookWritten"), "Stored."), **_ERRORS},
        }
    },
    "/logbook/storage/read/": {
        "get": {
            "tags": ["logbook"],
            "summary": "Raw samples or aggregated buckets of one field over [from_utc, to_utc)",
            "description": f"Token scope: user. Buckets aligned to from_utc, empty ones omitted, "
            f"at most {MAX_BUCKETS} buckets.",
            "security": _SECURITY,
            "parameters": [
                _query("device_id", "device id", True),
                _query("field", "field name", True),
                _query("field_type", "field type", True, enum=list(FIELD_TYPES)),
                _query("from_utc", "window start (ISO-8601 or epoch ms), inclusive", True),
                _query("to_utc", "window end (ISO-8601 or epoch ms), exclusive", True),
                _query("aggregation", "avg|average|min|max|sum (any case) or none"),
                _query("interval", "bucket width: 500ms, 30s, 10m, 1h, 1d, 1w"),
                {
                    "name": "size",
                    "in": "query",
                    "description": "row cap",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_SIZE},
                },
            ],
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
            "parameters": [_query("device_id", "device id", True)],
            "responses": {
                "200": _json({"type": "array", "items": _ref("LogbookField")}, "Fields by name."),
                **_ERRORS,
            },
        }
    },
}
