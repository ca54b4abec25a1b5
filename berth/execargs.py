"""The execute-body parser: an execute body (``command``, ``arg``, ``kwarg``) or an execute_raw
body (a ``command`` line as the ``salt`` CLI reads it) checked field by field, and the caps on
what one command may carry (docs/security.md "Bounded parsing"). The one parser of the cloud API
(``api/execute/schemas.py`` runs :func:`function_name`, :func:`arg_list`, :func:`kwarg_map` and
:func:`command_line` as its models' field rules; numbers re-exported by ``api/limits.py``) and
of the on-device local API (``berth/localapi.py`` runs :func:`parse_execute` and
:func:`parse_execute_raw`), so both answer a bad body with the same DRF-style 400
``{"<field>": ["<message>"]}``.

Salt reads a command-line value as YAML (``salt.utils.args.yamlify_arg``), and so does the minion
for a positional ``name=value`` string. YAML aliases make a few hundred bytes stand for a
structure of billions of nodes (shared, so cheap to build, but not to walk, store or send), so a
value with an anchor or alias is refused while it is being parsed, at the event level, before
any node is built; and the parsed arguments are capped by node count and size.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from typing import Any

import yaml

# What one command may carry, all its arguments together (a value, a key, a list or a mapping is
# a node; the size counts the characters of every string and key).
MAX_ARG_NODES = 10_000
MAX_ARG_CHARS = 65_536
MAX_COMMAND_LINE = 4096  # an ``execute_raw`` command line, in characters
MAX_FUNCTION_NAME = 255

# a Salt function: module.function
FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
# Keyword argument names: identifiers not starting with "__" (Salt's own markers).
KWARG_NAME = re.compile(r"^(?:[A-Za-z][A-Za-z0-9_]*|_[A-Za-z0-9][A-Za-z0-9_]*|_)$")
REQUIRED = "This field is required."
NOT_NULL = "This field may not be null."

# salt.utils.args.KWARG_REGEX: a positional string Salt turns into a keyword argument.
KWARG_STRING = re.compile(r"^([^\d\W][\w.-]*)=(?!=)(.*)$", re.UNICODE)
_EventLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)


class BadValue(ValueError):
    """A value refused by the rules above; ``message`` says why (for a 400 naming the field)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _too_large(nodes: int, chars: int) -> BadValue | None:
    if nodes > MAX_ARG_NODES:
        return BadValue(f"The arguments hold more than {MAX_ARG_NODES} values.")
    if chars > MAX_ARG_CHARS:
        return BadValue(f"The arguments hold more than {MAX_ARG_CHARS} characters.")
    return None


def check_yaml(text: str) -> None:
    """Raise :class:`BadValue` when ``text``, read as YAML, has an anchor or an alias or more
    nodes or characters than the caps; the events are checked as the parser makes them, so
    nothing is built. Text that is not valid YAML passes (Salt keeps it as a string)."""
    loader = _EventLoader(text)
    nodes = chars = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise BadValue(
                    "YAML anchors and aliases (&name, *name) are not accepted in a command's "
                    "values; write the value out, or quote it."
                )
            if isinstance(event, _NODE_EVENTS):
                nodes += 1
                if isinstance(event, yaml.ScalarEvent):
                    chars += len(event.value)
                if problem := _too_large(nodes, chars):
                    raise problem
    except yaml.YAMLError:
        return
    finally:
        loader.dispose()


def _yaml_read(text: str) -> bool:
    """Whether Salt's ``yamlify_arg`` would parse ``text`` as YAML (it skips these)."""
    stripped = text.strip()
    return not (
        stripped in ("", "---", "...", "None")
        or any(c in text for c in "\t\r\n")
        or ("_" in text and all(c in "0123456789_" for c in stripped))
    )


def check_kwarg_strings(arg: list[Any]) -> None:
    """The values of positional ``name=value`` strings, which the minion reads as YAML."""
    for item in arg:
        match = KWARG_STRING.match(item) if isinstance(item, str) else None
        if match and _yaml_read(match.group(2)):
            check_yaml(match.group(2))


def check_size(*values: Any) -> None:
    """Raise :class:`BadValue` when ``values`` together hold more nodes or characters than the
    caps. Iterative, and stops at the first excess, so any value costs at most the caps."""
    stack = list(values)
    nodes = chars = 0
    while stack:
        node = stack.pop()
        nodes += 1
        if isinstance(node, str):
            chars += len(node)
        elif isinstance(node, dict):
            for key, item in node.items():
                chars += len(key) if isinstance(key, str) else 0
                stack.append(item)
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
        if problem := _too_large(nodes, chars):
            raise problem


def parse_command_line(line: str) -> tuple[str, list[Any], dict[str, Any]]:
    """``"docker.logs curveball tail=10"`` -> ``("docker.logs", ["curveball"], {"tail": 10})``,
    parsed like the ``salt`` command line (shell words; values as YAML), bounded as above.
    Raises :class:`BadValue`; the function name is the caller's to check."""
    try:
        tokens = shlex.split(line)
    except ValueError as exc:
        raise BadValue(f"Cannot parse the command line: {exc}.") from None
    if not tokens:
        raise BadValue("The command line is empty.")
    for token in tokens[1:]:
        match = KWARG_STRING.match(token)
        value = match.group(2) if match else token
        if _yaml_read(value):
            check_yaml(value)
    from salt.utils.args import parse_input  # Salt's own reading, now that it is cheap

    arg, kwarg = parse_input(tokens[1:], condition=False)
    arg, kwarg = list(arg), dict(kwarg)
    check_size(arg, kwarg)
    return tokens[0], arg, kwarg


# -- the execute-body parser --------------------------------------------------------------


class BadBody(ValueError):
    """An execute body refused: ``errors`` is the DRF-style ``{field: [message]}`` of a 400."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def _text(value: object, max_length: int) -> str:
    """A string field as the API reads one: at most ``max_length`` as sent, then stripped."""
    if not isinstance(value, str):
        raise BadValue("Not a valid string.")
    if len(value) > max_length:
        raise BadValue(f"Ensure this field has no more than {max_length} characters.")
    value = value.strip()
    if not value:
        raise BadValue("This field may not be blank.")
    return value


def function_name(value: object) -> str:
    """``command`` of an execute body: a Salt function ``module.function``."""
    name = _text(value, MAX_FUNCTION_NAME)
    if not FUNCTION_NAME.fullmatch(name):
        raise BadValue(
            f'"{name}" is not a Salt function: expected "module.function", e.g. "docker.logs".'
        )
    return name


def arg_list(value: object) -> list[Any]:
    """``arg``: positional arguments, bounded; no item Salt would turn into keyword arguments
    (a ``{"__kwarg__": true}`` mapping, which would bypass the ``kwarg`` checks), and the values
    of ``name=value`` strings (which the minion reads as YAML) without anchors or aliases."""
    if not isinstance(value, list):
        raise BadValue(
            f'Expected a list of positional arguments but got type "{type(value).__name__}".'
        )
    if any(isinstance(item, dict) and "__kwarg__" in item for item in value):
        raise BadValue(
            'Pass keyword arguments in "kwarg", not as {"__kwarg__": true} items of "arg".'
        )
    check_size(value)
    check_kwarg_strings(value)
    return value


def kwarg_map(value: object) -> dict[str, Any]:
    """``kwarg``: keyword arguments with identifier names not starting with ``__``, bounded."""
    if not isinstance(value, dict):
        raise BadValue(
            f'Expected an object of keyword arguments but got type "{type(value).__name__}".'
        )
    bad = [k for k in value if not isinstance(k, str) or not KWARG_NAME.fullmatch(k)]
    if bad:
        raise BadValue(f"Not valid keyword argument names: {', '.join(sorted(map(str, bad)))}.")
    check_size(value)
    return value


def command_line(value: object) -> tuple[str, list[Any], dict[str, Any]]:
    """``command`` of an execute_raw body: ``"docker.logs curveball tail=10"`` parsed like the
    ``salt`` command line (:func:`parse_command_line`), its parts checked as above."""
    fun, arg, kwarg = parse_command_line(_text(value, MAX_COMMAND_LINE))
    return function_name(fun), arg, kwarg_map(kwarg)


def _field(
    errors: dict[str, list[str]],
    body: Mapping[str, Any],
    name: str,
    check: Callable[[object], Any],
    default: Any = None,
) -> Any:
    """Run ``check`` on ``body[name]``: a missing field is required unless it has a default,
    which also stands for null."""
    value = body.get(name)
    if value is None:
        if default is not None:
            return default
        errors[name] = [REQUIRED if name not in body else NOT_NULL]
        return None
    try:
        return check(value)
    except BadValue as exc:
        errors[name] = [exc.message]
        return None


def parse_execute(body: Mapping[str, Any]) -> tuple[str, list[Any], dict[str, Any]]:
    """``{"command", "arg"?, "kwarg"?}`` -> ``(fun, arg, kwarg)``; :class:`BadBody` naming every
    bad field. Other fields are the caller's (the API's callback fields)."""
    errors: dict[str, list[str]] = {}
    fun = _field(errors, body, "command", function_name)
    arg = _field(errors, body, "arg", arg_list, default=[])
    kwarg = _field(errors, body, "kwarg", kwarg_map, default={})
    if errors:
        raise BadBody(errors)
    return fun, arg, kwarg


def parse_execute_raw(body: Mapping[str, Any]) -> tuple[str, list[Any], dict[str, Any]]:
    """``{"command": "<salt command line>"}`` -> ``(fun, arg, kwarg)``; :class:`BadBody`."""
    errors: dict[str, list[str]] = {}
    parsed = _field(errors, body, "command", command_line)
    if errors:
        raise BadBody(errors)
    fun, arg, kwarg = parsed
    return fun, arg, kwarg
