"""OpenAPI paths of the rollout endpoints (added by ``api.rollouts.init_app``); the bodies are
:mod:`api.schemas.rollouts`."""

from __future__ import annotations

from typing import Any

from berth.contract import RolloutAction


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str = "") -> dict:
    return {"description": description or "OK", "content": {"application/json": {"schema": schema}}}


def _path(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


_SEC: list[dict[str, list[str]]] = [{"APIToken": []}]
_PARAMS: list[dict] = [_path("project_id"), _path("release_id")]
_ERRORS: dict[str, dict] = {
    "401": _json(_ref("Detail"), "Missing or invalid token."),
    "404": _json(_ref("Detail"), "Unknown release, or the release has no rollout."),
}
_ROLLOUT = "/docker/projects/{project_id}/releases/{release_id}/rollout/"
_ACTIONS = {
    RolloutAction.PAUSE: "No further wave starts; started waves keep the release.",
    RolloutAction.RESUME: "Continue a paused or halted rollout (overrides the halt of the current "
    "wave); starts the next wave at once if its advance rule is already met.",
    RolloutAction.ABORT: "No further device gets the release; devices that applied it keep it.",
    RolloutAction.REVERT: "Every device that applied the release goes back to the last release "
    "it ran successfully before it, at its next idle moment.",
}

PATHS: dict[str, Any] = {
    _ROLLOUT: {
        "get": {
            "tags": ["rollouts"],
            "summary": "State, current wave, per-wave counts, halt reason and action history",
            "description": "Token scope: user.",
            "security": _SEC,
            "parameters": _PARAMS,
            "responses": {"200": _json(_ref("Rollout")), **_ERRORS},
        }
    },
    **{
        f"{_ROLLOUT}{action}/": {
            "post": {
                "tags": ["rollouts"],
                "summary": f"{action.capitalize()} the rollout",
                "description": f"{text} Idempotent; recorded in the history with who and when. "
                "Token scope: user.",
                "security": _SEC,
                "parameters": _PARAMS,
                "responses": {
                    "200": _json(_ref("Rollout")),
                    "409": _json(
                        _ref("Detail"),
                        "The action makes no sense in this state, or the release has no rollout.",
                    ),
                    **_ERRORS,
                    "404": _json(_ref("Detail"), "Unknown release."),
                },
            }
        }
        for action, text in _ACTIONS.items()
    },
    "/docker/rollout-webhooks/": {
        "get": {
            "tags": ["rollouts"],
            "summary": "The account's rollout webhook URLs",
            "security": _SEC,
            "responses": {"200": _json({"type": "object"}), **_ERRORS},
        },
        "post": {
            "tags": ["rollouts"],
            "summary": "Register a URL for rollout events",
            "description": "Events (wave_started, halted, completed, aborted, reverted) are POSTed "
            "signed like execute callbacks (`X-Request-Signature`), retried. The account needs a "
            "webhook secret first.",
            "security": _SEC,
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("RolloutWebhookInput")}},
            },
            "responses": {
                "201": _json(_ref("RolloutWebhook")),
                "400": _json(_ref("ValidationErrors")),
                **_ERRORS,
            },
        },
    },
    "/docker/rollout-webhooks/{hook_id}/": {
        "delete": {
            "tags": ["rollouts"],
            "summary": "Unregister a rollout webhook URL",
            "security": _SEC,
            "parameters": [_path("hook_id")],
            "responses": {"204": {"description": "Deleted."}, **_ERRORS},
        }
    },
}
