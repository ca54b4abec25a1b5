"""``startup_parameters`` of a release container, as OpenAPI shows them.

What is accepted is decided by :func:`berth.startup_params.validate` (the device uses the
same module to create the container) and the account's release policy
(:mod:`api.policies.release`); ``tests/functional/test_api_openapi.py`` checks that every key
described here is one it supports.

Each key's schema is a form the server always accepts, so a client (or schemathesis) that
follows it is never refused. Where the server takes more, the description says so:
``binds`` shows host paths under the default data roots (``/data``, ``/srv/data``,
``/home/balenaEngine/data``; other paths need an account bind prefix, docs/security.md),
``devices`` the default device nodes, a shell-quoted string its plain-word form, and
``network_mode: container:<name>`` names that can be neither a protected container nor a
container id. A release read back shows its parameters as ``StoredStartupParameters``
(:func:`stored_schema`): the same keys and types without these request-only bounds.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, WithJsonSchema

from berth.contract import RESERVED_LABEL_PREFIX
from berth.release.policy import DEFAULT_DATA_ROOTS

_NO_NUL = r"^[^\x00]*$"
_TEXT = {"type": "string", "pattern": _NO_NUL}
_INT64 = {"type": "integer", "minimum": -(2**63), "maximum": 2**64 - 1}
_ENV_KEY = r"[A-Za-z_][A-Za-z0-9_]*"
_WORD = r"[A-Za-z0-9_./:@%+,-]*"  # no quotes, backslashes or spaces: shlex keeps it as it is
_ARGV_WORD = r"[^\x00-\x20'\"\\]+"
_CONTAINER_PATH = r"/[^:\x00]*"
_MODE = r"(?::(?:ro|rw))?"
_SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9_.-]*"  # never "." or ".."
_DATA_ROOTS = "|".join(re.escape(r) for r in DEFAULT_DATA_ROOTS)
_HOST_PATH = rf"(?:{_DATA_ROOTS})(?:/{_SEGMENT})*"
_VOLUME_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_PROTO = r"(?:/(?:tcp|udp|sctp))?"
_DEVICE_NODE = (
    r"/dev/(?:(?:ttyUSB|ttyACM|ttyS|ttyAMA|i2c-|spidev|gpiochip|video)[0-9]*"
    r"|snd(?:/[A-Za-z0-9_-]+)?|bus/usb(?:/[0-9]+)?)"
)


def _strings(pattern: str, **extra: Any) -> dict:
    return {"type": "array", "items": {"type": "string", "pattern": pattern}, **extra}


def _schema(description: str, schema: dict) -> Any:
    return WithJsonSchema({"description": description, **schema})


_STRING_OR_ARGV = {
    "anyOf": [
        {"type": "string", "pattern": rf"^{_ARGV_WORD}(?: {_ARGV_WORD})*$"},
        {"type": "array", "minItems": 1, "items": _TEXT},
    ]
}


class StartupParameters(BaseModel):
    """Validated at the API; an unknown key or bad value is a 400 naming it."""

    model_config = ConfigDict(extra="forbid")

    environment: Annotated[
        Any,
        _schema(
            "A shell-quoted string (here: KEY=VALUE words without quotes), a list of KEY=VALUE "
            "or a map KEY -> string, number, boolean or null.",
            {
                "anyOf": [
                    {
                        "type": "string",
                        "pattern": rf"^{_ENV_KEY}={_WORD}(?: +{_ENV_KEY}={_WORD})*$",
                    },
                    _strings(rf"^{_ENV_KEY}=[^\x00]*$"),
                    {
                        "type": "object",
                        "propertyNames": {"pattern": f"^{_ENV_KEY}$"},
                        "additionalProperties": {
                            "anyOf": [
                                _TEXT,
                                _INT64,
                                {"type": "number", "not": {"type": "integer"}},
                                {"type": "boolean"},
                                {"type": "null"},
                            ]
                        },
                    },
                ]
            },
        ),
    ] = None
    binds: Annotated[
        Any,
        _schema(
            "/host/path:/container/path[:ro|rw]. The host path must be under a data root "
            f"({', '.join(DEFAULT_DATA_ROOTS)}) or one of the account's bind prefixes "
            "(release policy), and never a sensitive path (docs/security.md).",
            _strings(rf"^{_HOST_PATH}:{_CONTAINER_PATH}{_MODE}$"),
        ),
    ] = None
    volumes: Annotated[
        Any,
        _schema(
            "Named volumes: NAME:/container/path[:ro|rw] or a map NAME -> /container/path. "
            "The device mounts only volumes of the release's project (it creates a missing one "
            "for it), never one with driver options or a protected container's (docs/security.md).",
            {
                "anyOf": [
                    _strings(rf"^{_VOLUME_NAME}:{_CONTAINER_PATH}{_MODE}$"),
                    {
                        "type": "object",
                        "propertyNames": {"pattern": f"^{_VOLUME_NAME}$"},
                        "additionalProperties": {
                            "type": "string",
                            "pattern": f"^{_CONTAINER_PATH}{_MODE}$",
                        },
                    },
                ]
            },
        ),
    ] = None
    ports: Annotated[
        Any,
        _schema(
            'A map {"80[/tcp|udp|sctp]": host port | "ip:port" | null} or a list of '
            '"[ip:]host:container[/proto]" (an IPv6 host address in [ ] also works).',
            {
                "anyOf": [
                    {
                        "type": "object",
                        "propertyNames": {"pattern": f"^{_PORT}{_PROTO}$"},
                        "additionalProperties": {
                            "anyOf": [
                                {"type": "integer", "minimum": 1, "maximum": 65535},
                                {"type": "string", "pattern": f"^(?:{_IPV4}:)?{_PORT}$"},
                                {"type": "null"},
                            ]
                        },
                    },
                    _strings(f"^(?:{_IPV4}:)?{_PORT}:{_PORT}{_PROTO}$"),
                ]
            },
        ),
    ] = None
    network_mode: Annotated[
        Any,
        _schema(
            "host, none, bridge, a network, or container:<name> (not a protected container, "
            "not hex digits only: docs/security.md; shown: names that cannot be either)",
            {
                "type": "string",
                "pattern": r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]*|container:[G-Zg-rt-z_.-][A-Za-z0-9_.-]*)$",
            },
        ),
    ] = None
    restart_policy: Annotated[
        Any,
        _schema(
            "no, always, unless-stopped, on-failure[:N]",
            {"type": "string", "pattern": r"^(?:no|always|unless-stopped|on-failure(?::[0-9]+)?)$"},
        ),
    ] = None
    privileged: Annotated[
        Any, _schema("Unless the release policy forbids it.", {"type": "boolean"})
    ] = None
    command: Annotated[
        Any,
        _schema(
            "A string split like a shell does (here: words without quotes) or a list.",
            _STRING_OR_ARGV,
        ),
    ] = None
    entrypoint: Annotated[Any, _schema("As command.", _STRING_OR_ARGV)] = None
    labels: Annotated[
        Any,
        _schema(
            f"Keys starting with {RESERVED_LABEL_PREFIX} are reserved.",
            {
                "type": "object",
                "propertyNames": {
                    "minLength": 1,
                    "pattern": _NO_NUL,
                    "not": {"pattern": f"^{re.escape(RESERVED_LABEL_PREFIX)}"},
                },
                "additionalProperties": _TEXT,
            },
        ),
    ] = None
    devices: Annotated[
        Any,
        _schema(
            "/dev/host[:/dev/container[:rwm]]; shown: the release policy's default device nodes "
            "(docs/security.md).",
            _strings(rf"^{_DEVICE_NODE}(?::{_CONTAINER_PATH}(?::[rwm]{{1,3}})?)?$"),
        ),
    ] = None
    cap_add: Annotated[
        Any,
        _schema(
            "Capability names (NET_ADMIN or CAP_NET_ADMIN), unless the release policy forbids it.",
            _strings(r"^(?:CAP_)?[A-Z_]+$"),
        ),
    ] = None
    mem_limit: Annotated[
        Any,
        _schema(
            "Bytes, or a size like 512m, 1g.",
            {
                "anyOf": [
                    {"type": "integer", "minimum": 1, "maximum": 2**64 - 1},
                    {"type": "string", "pattern": r"^[0-9]+(?:\.[0-9]+)?(?:[bkmgBKMG][bB]?)?$"},
                ]
            },
        ),
    ] = None
    user: Annotated[
        Any,
        _schema(
            "name, uid, name:group or uid:gid.",
            {
                "anyOf": [
                    {"type": "integer", "minimum": 0, "maximum": 2**64 - 1},
                    {
                        "type": "string",
                        "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]*)?$",
                    },
                ]
            },
        ),
    ] = None
    working_dir: Annotated[
        Any, _schema("An absolute path.", {"type": "string", "pattern": r"^/[^\x00]*$"})
    ] = None
    log_config: Annotated[
        Any,
        _schema(
            '{"type": driver, "config": {option: value}}',
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["type"],
                "properties": {
                    "type": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
                    "config": {
                        "anyOf": [
                            {"type": "null"},
                            {
                                "type": "object",
                                "propertyNames": {"pattern": _NO_NUL},
                                "additionalProperties": _TEXT,
                            },
                        ]
                    },
                },
            },
        ),
    ] = None


# A response holds what was stored: any value the validator took, now or when the row was
# written. The request schema shows only forms that always pass, so a stored shell-quoted string
# with quotes, a bind under an account prefix or an older row can be outside it; the response
# schema keeps the keys and their types and drops the request-only bounds.
_REQUEST_ONLY = frozenset(
    {
        "pattern",
        "propertyNames",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "not",
        "default",  # a request's absent key; never a stored value
        "title",
    }
)


def _loosen(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _loosen(v) for k, v in node.items() if k not in _REQUEST_ONLY}
    if isinstance(node, list):
        return [_loosen(v) for v in node]
    return node


def stored_schema() -> dict:
    """OpenAPI component ``StoredStartupParameters``: a release container's parameters as read
    back."""
    schema = _loosen(StartupParameters.model_json_schema())
    schema.pop("additionalProperties", None)
    schema["description"] = (
        "The container's startup parameters as they were accepted (StartupParameters shows the "
        "forms a request may use; a value read back may be any form the server took, e.g. a "
        "shell-quoted environment string with quotes)."
    )
    return schema
