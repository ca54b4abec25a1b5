"""Validating an execute request body: which Salt function, with which arguments, and where to call back."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from api.validation import MISSING, FieldError, Validator, integer, json_value, string

FUN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
CALLBACK_TIMEOUT_DEFAULT = 120
CALLBACK_TIMEOUT_MIN, CALLBACK_TIMEOUT_MAX = 1, 600


@dataclass
class Command:
    fun: str
    arg: list[Any]
    kwarg: dict[str, Any]
    callback_url: str | None
    timeout: int


def function_name(value: Any) -> str:
    value = string(max_length=255)(value)
    if not FUN_RE.fullmatch(value):
        raise FieldError(
            f'"{value}" is not a Salt function: expected "module.function", e.g. "docker.logs".'
        )
    return value


def arg_list(value: Any) -> list:
    if not isinstance(value, list):
        raise FieldError(
            f'Expected a list of positional arguments but got type "{type(value).__name__}".'
        )
    if any(isinstance(item, dict) and "__kwarg__" in item for item in value):
        # Salt would turn such an item into keyword arguments, bypassing the kwarg checks.
        raise FieldError(
            'Pass keyword arguments in "kwarg", not as {"__kwarg__": true} items of "arg".'
        )
    return json_value(value)  # stored, returned and sent to Salt as it is


def kwarg_map(value: Any) -> dict:
    if not isinstance(value, dict):
        raise FieldError(
            f'Expected an object of keyword arguments but got type "{type(value).__name__}".'
        )
    bad = [k for k in value if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k) or k.startswith("__")]
    if bad:
        raise FieldError(f"Not valid keyword argument names: {', '.join(sorted(bad))}.")
    return json_value(value)


def callback_url(value: Any) -> str:
    value = string(max_length=2048)(value)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FieldError("Enter a valid http or https URL.")
    return value


def callback_timeout(value: Any) -> int:
    value = integer(value)
    if not CALLBACK_TIMEOUT_MIN <= value <= CALLBACK_TIMEOUT_MAX:
        raise FieldError(
            f"Ensure this value is between {CALLBACK_TIMEOUT_MIN} and {CALLBACK_TIMEOUT_MAX} (seconds)."
        )
    return value


def _common(v: Validator) -> tuple[str | None, int]:
    url = v.field("callback_url", callback_url, required=False, default=None, allow_null=True)
    timeout = v.field(
        "callback_timeout", callback_timeout, required=False, default=CALLBACK_TIMEOUT_DEFAULT
    )
    return url, timeout


def parse_structured(data: dict[str, Any]) -> Command:
    """``{"command": "docker.logs", "arg": ["curveball"], "kwarg": {"tail": 10}, ...}``."""
    v = Validator(data)
    fun = v.field("command", function_name)
    arg = v.field("arg", arg_list, required=False, default=list, allow_null=True)
    kwarg = v.field("kwarg", kwarg_map, required=False, default=dict, allow_null=True)
    url, timeout = _common(v)
    v.raise_if_errors()
    return Command(fun, arg or [], kwarg or {}, url, timeout)


def raw_command(value: Any) -> tuple[str, list, dict]:
    """``"docker.logs curveball tail=10"`` parsed like the ``salt`` command line does."""
    value = string(max_length=4096)(value)
    try:
        tokens = shlex.split(value)
    except ValueError as exc:
        raise FieldError(f"Cannot parse the command line: {exc}.") from None
    fun = function_name(tokens[0])
    from salt.utils.args import parse_input

    arg, kwarg = parse_input(tokens[1:], condition=False)
    return fun, list(arg), kwarg_map(dict(kwarg))


def parse_raw(data: dict[str, Any]) -> Command:
    """``{"command": "docker.logs curveball"}``."""
    v = Validator(data)
    parsed = v.field("command", raw_command)
    url, timeout = _common(v)
    v.raise_if_errors()
    fun, arg, kwarg = parsed if parsed is not MISSING else (None, [], {})
    return Command(fun, arg, kwarg, url, timeout)
