"""Execute arguments parsed and bounded: a command line as the ``salt`` CLI reads it, and the
caps on what one command may carry (docs/security.md "Bounded parsing"). One home for the cloud
API (``api/schemas/execute.py``, numbers re-exported by ``api/limits.py``) and the on-device
local API (``berth/localapi.py``).

Salt reads a command-line value as YAML (``salt.utils.args.yamlify_arg``), and so does the minion
for a positional ``name=value`` string. YAML aliases make a few hundred bytes stand for a
structure of billions of nodes (shared, so cheap to build, but not to walk, store or send), so a
value with an anchor or alias is refused while it is being parsed, at the event level, before
any node is built; and the parsed arguments are capped by node count and size.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import yaml

# What one command may carry, all its arguments together (a value, a key, a list or a mapping is
# a node; the size counts the characters of every string and key).
MAX_ARG_NODES = 10_000
MAX_ARG_CHARS = 65_536
MAX_COMMAND_LINE = 4096  # an ``execute_raw`` command line, in characters

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
