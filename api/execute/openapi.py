"""OpenAPI paths of the execute endpoints (added to /openapi.json); the bodies are the pydantic
models of :mod:`api.schemas.execute`."""

from __future__ import annotations

from api.schemas.base import component_schemas
from api.schemas.execute import (
    ExecuteAccepted,
    ExecuteInput,
    ExecuteRawInput,
    ExecuteResult,
    ForwardedReturn,
    ForwardedReturnResult,
)


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _detail(description: str) -> dict:
    return _json(_ref("Detail"), description)


_DEVICE = {
    "name": "device_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "Device id (UUID).",
}
_SECURITY: list[dict[str, list[str]]] = [{"APIToken": []}]
_COMMON_ERRORS = {
    "400": _json(_ref("ValidationErrors"), "Invalid body: field -> messages."),
    "401": _detail("Missing, invalid, revoked or expired token."),
    "404": _detail("Unknown device, or a device of another account."),
}
_SUBMIT_ERRORS = {
    **_COMMON_ERRORS,
    "403": _detail("The token is not a user token, or the account may not execute this command."),
    "409": _detail("The Salt master has no accepted key for the device's minion."),
    "503": _detail(
        "salt-api is unreachable, refused the login, or is not configured; nothing was sent."
    ),
}
SCHEMAS = component_schemas(
    [ExecuteInput, ExecuteRawInput, ForwardedReturn],
    [ExecuteAccepted, ExecuteResult, ForwardedReturnResult],
)


def _submit(summary: str, input_name: str) -> dict:
    return {
        "post": {
            "tags": ["execute"],
            "summary": summary,
            "description": "Publishes the command to the device's minion through salt-api (local_async) and returns "
            "at once; poll the job or receive the callback. Token scope: user.",
            "security": _SECURITY,
            "parameters": [_DEVICE],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref(input_name)}},
            },
            "responses": {"202": _json(_ref("ExecuteAccepted"), "Sent."), **_SUBMIT_ERRORS},
        }
    }


PATHS = {
    "/dongle/devices/{device_id}/execute/": _submit(
        "Run a Salt function on the device", "ExecuteInput"
    ),
    "/dongle/devices/{device_id}/execute_raw/": _submit(
        "Run a Salt command line on the device", "ExecuteRawInput"
    ),
    "/dongle/devices/{device_id}/execute/{jid}/": {
        "get": {
            "tags": ["execute"],
            "summary": "The state and return of an execute job",
            "security": _SECURITY,
            "parameters": [
                _DEVICE,
                {"name": "jid", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "responses": {"200": _json(_ref("ExecuteResult"), "The job."), **_COMMON_ERRORS},
        }
    },
    "/master/execute/returns/": {
        "post": {
            "tags": ["master"],
            "summary": "A device's return of an execute job, forwarded by its lower master",
            "description": (
                "Behind Salt syndics no return comes up to the top master's salt-api (docs/scale.md "
                '"The path up"): the lower master the device hangs off forwards the return of a '
                "job the API published (berth.forward_return). Accepted only from a master "
                "credential that serves the device and only for an execute job of that device; "
                "it finishes a PENDING job once (its webhook is queued then). Token scope: master "
                "or platform."
            ),
            "security": _SECURITY,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("ForwardedReturn")}},
            },
            "responses": {
                "200": _json(_ref("ForwardedReturnResult"), "The job now."),
                "400": _json(_ref("ValidationErrors"), "Invalid body: field -> messages."),
                "401": _detail("Missing, invalid, revoked or expired token."),
                "403": _detail("Not a master or platform token."),
                "404": _detail(
                    "No such execute job for this device, or a device this credential does not "
                    "serve (another tier's, another account's, pending, unknown)."
                ),
            },
        }
    },
}
