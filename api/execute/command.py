"""An execute request as the service runs it: which Salt function, with which arguments, and
where to call back. The bodies and their rules are :mod:`api.execute.schemas`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api.bodies import validate
from api.execute.schemas import ExecuteInput, ExecuteRawInput


@dataclass
class Command:
    fun: str
    arg: list[Any]
    kwarg: dict[str, Any]
    callback_url: str | None
    timeout: int


def parse_structured(data: dict[str, Any]) -> Command:
    """``{"command": "docker.logs", "arg": ["curveball"], "kwarg": {"tail": 10}, ...}``."""
    body = validate(ExecuteInput, data)
    return Command(
        body["command"],
        body["arg"] or [],
        body["kwarg"] or {},
        body["callback_url"],
        body["callback_timeout"],
    )


def parse_raw(data: dict[str, Any]) -> Command:
    """``{"command": "docker.logs curveball"}``."""
    body = validate(ExecuteRawInput, data)
    fun, arg, kwarg = body["command"]
    return Command(fun, arg, kwarg, body["callback_url"], body["callback_timeout"])
