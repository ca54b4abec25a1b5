"""Which Salt commands may be executed on a device, with which arguments (docs/security.md).

One definition, used by the cloud API (per-account allow-list, ``api/policies/execute.py``)
and by the on-device local API (``berth/localapi.py``).

An allow-list entry is a ``module.function`` glob, optionally followed by globs its
positional arguments must match, one for one: ``state.sls docker.release`` allows
``state.sls`` with exactly the one argument ``docker.release``; ``docker.logs`` allows
``docker.logs`` with any positional arguments. Keyword arguments are allowed per function
from :data:`SAFE_KWARGS`; ``pillar``, ``saltenv`` and ``pillarenv`` never (they let a caller
rewrite what a state renders, e.g. the sleep hook's root script), and a function without an
entry there takes none. A positional string ``name=value`` is a keyword argument to Salt,
so it is checked as one.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from berth.execargs import KWARG_STRING as _KWARG_STRING

# New accounts, and the on-device local API, start from this.
SAFE_DEFAULT: tuple[str, ...] = (
    "test.ping",
    "docker.logs",
    "docker.ps",
    "docker.release_status",
    "minionutil.*",
    "state.sls docker.release",
)
ALLOW_ALL = "*"
# The on-device local API's default: the safe set plus what the sleep hook needs
# (berth/sleephook.py: state.sls docker.release, docker.release_report_failed ERROR).
LOCAL_API_DEFAULT: tuple[str, ...] = (*SAFE_DEFAULT, "docker.release_report_failed")
# What the local API runs without its root-only token: reading, not acting. State runs and the
# failure report (which halts a rollout) need the token, and so do the protected containers'
# logs (berth/localapi.py).
LOCAL_API_OPEN: tuple[str, ...] = (
    "test.ping",
    "docker.logs",
    "docker.ps",
    "docker.release_status",
    "minionutil.*",
)

# Keyword arguments each function may be given; everything else is refused.
SAFE_KWARGS: dict[str, frozenset[str]] = {
    "test.ping": frozenset(),
    "docker.logs": frozenset({"tail", "since", "timestamps"}),
    "docker.ps": frozenset({"all"}),
    "docker.release_status": frozenset(),
    "minionutil.last_logs": frozenset(
        {"file", "until", "match", "count", "before", "after", "limit"}
    ),
    "minionutil.last_errors": frozenset(
        {"file", "until", "level", "count", "before", "after", "limit"}
    ),
    "minionutil.last_startup": frozenset({"file", "until", "match", "limit"}),
    "minionutil.log_files": frozenset(),
    "minionutil.unit_id": frozenset(),
    "minionutil.local_api_url": frozenset(),
    "minionutil.master_reachable": frozenset(),
    "state.sls": frozenset({"test", "queue"}),
    "docker.release_report_failed": frozenset({"error"}),
}
# ``template`` renders an argument (a command line, a file) with Jinja, which can call any function.
NEVER_KWARGS = frozenset({"pillar", "saltenv", "pillarenv", "template"})

# Functions that run other functions, or states, templates or jobs given as data: allowing one
# allows everything, so no allow-list entry allows them -- not a glob (``test.*``, ``*``), not
# their own name (the CLI refuses to store that), not the local API's ``commands``.
CALLS_OTHER_FUNCTIONS: dict[str, str] = {
    "test.cross_test": "runs any function with any arguments",
    "saltutil.cmd*": "publishes a job to minions through the master",
    "saltutil.runner": "runs a runner on the master",
    "saltutil.wheel": "runs a wheel function on the master",
    "publish.*": "publishes jobs to other minions or runs runners",
    "event.*": "fires events to the master's reactor or the minion's own bus (fire_master, ...)",
    "mine.*": "runs functions by name (mine.send) and reads other minions' data (mine.get)",
    "schedule.*": "runs any function later, on its own",
    "beacons.*": "runs beacon modules that fire events to the master",
    "at.*": "runs commands later",
    "cron.*": "runs commands later",
    "state.single": "runs any state function, with any arguments",
    "state.high": "runs states given as data",
    "state.low": "runs a state given as data",
    "state.template": "renders and runs an SLS file of the device",
    "state.template_str": "renders and runs SLS text given as data",
    "state.pkg": "runs the states of a tarball",
    "state.request": "queues states to run later",
    "state.run_request": "runs states queued earlier",
    "slsutil.*": "renders text with any renderer (Jinja, py)",
    "jinja.*": "renders templates",
    "cp.get_template": "renders a template",
    "file.apply_template_on_contents": "renders a template",
    "file.get_managed": "renders a template",
    "file.manage_file": "renders a template",
    "file.check_managed*": "renders a template",
    "saltcheck.*": "runs the functions its tests name",
    "pillar.ext": "compiles pillar with external pillar modules given as data",
    "chroot.*": "runs functions or states in a chroot",
    "transactional_update.*": "runs functions or states in a new snapshot",
    "docker.call": "runs a function in a container (Salt's docker module)",
    "docker.sls*": "runs states in a container (Salt's docker module)",
    "docker.apply": "runs states in a container (Salt's docker module)",
    "docker.highstate": "runs states in a container (Salt's docker module)",
}

_FUN_GLOB = re.compile(r"^[A-Za-z0-9_.*?\[\]!]+$")


class Forbidden(Exception):
    """The function, or its positional arguments, are outside the allow-list (HTTP 403).

    ``what``: the refused call, e.g. ``"cmd.run"`` or ``"state.sls" with ['docker.sleep']``;
    ``allowed``: the allow-list as text."""

    def __init__(self, what: str, allowed: str) -> None:
        super().__init__(f"{what} (allowed commands: {allowed})")
        self.what = what
        self.allowed = allowed


class RunsOtherFunctions(Forbidden):
    """A function of :data:`CALLS_OTHER_FUNCTIONS` (HTTP 403 whatever the allow-list says)."""

    def __init__(self, fun: str, why: str) -> None:
        self.detail = (
            f'"{fun}" {why}: it is never executed on a device, whatever the allow-list '
            "(functions that call other functions, docs/security.md)."
        )
        Exception.__init__(self, self.detail)
        self.what = f'"{fun}"'
        self.allowed = ""


def calls_other_functions(fun: str) -> str | None:
    """Why ``fun`` (a function name, or an allow-list glob taken as text) is one of
    :data:`CALLS_OTHER_FUNCTIONS`, else None."""
    for pattern, why in CALLS_OTHER_FUNCTIONS.items():
        if fnmatch.fnmatchcase(fun, pattern):
            return why
    return None


def other_function_callers(allowed: Iterable[str | Entry]) -> list[str]:
    """The :data:`CALLS_OTHER_FUNCTIONS` patterns that a glob of ``allowed`` matches (and that
    stay refused all the same), e.g. ``["test.cross_test"]`` for ``test.*``."""
    entries = [e if isinstance(e, Entry) else parse_entry(e) for e in allowed]
    return [
        pattern
        for pattern in CALLS_OTHER_FUNCTIONS
        if any(fnmatch.fnmatchcase(pattern.replace("*", "x"), e.fun) for e in entries)
    ]


class BadArgument(Exception):
    """A keyword argument that is never allowed or not in the function's safe set (HTTP 400).

    ``field`` is ``"kwarg"`` or ``"arg"`` (a ``name=value`` string among the positional ones).
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Entry:
    fun: str
    args: tuple[str, ...] | None  # None: any positional arguments

    def __str__(self) -> str:
        return " ".join((self.fun, *(self.args or ())))

    def allows(self, fun: str, positional: list[Any]) -> bool:
        if not fnmatch.fnmatchcase(fun, self.fun):
            return False
        if self.args is None:
            return True
        return len(positional) == len(self.args) and all(
            isinstance(a, str) and fnmatch.fnmatchcase(a, g)
            for a, g in zip(positional, self.args, strict=True)
        )


def parse_entry(text: str) -> Entry:
    """``"state.sls docker.release"`` -> Entry; ValueError naming the problem."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("an allow-list entry is a 'module.function' glob, e.g. 'docker.*'")
    fun, *args = text.split()
    if fun != ALLOW_ALL and ("." not in fun or not _FUN_GLOB.match(fun)):
        raise ValueError(
            f"{text!r}: expected a 'module.function' glob (optionally followed by its "
            "positional arguments), e.g. 'docker.*' or 'state.sls docker.release'"
        )
    return Entry(fun, tuple(args) if args else None)


_FUN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
_KWARG_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def parse_kwarg_spec(text: str) -> tuple[str, list[str]]:
    """``"docker.logs:follow,tail"`` -> ``("docker.logs", ["follow", "tail"])``; ValueError naming
    the problem (a glob, a name Salt reserves, ``pillar``/``saltenv``/``pillarenv``)."""
    fun, sep, names = (text or "").partition(":")
    fun = fun.strip()
    if not sep or not _FUN_NAME.match(fun):
        raise ValueError(
            f"{text!r}: expected 'module.function:NAME[,NAME...]' (one exact function, no glob), "
            "e.g. 'docker.logs:follow'"
        )
    out = []
    for name in (n.strip() for n in names.split(",")):
        if not _KWARG_NAME.match(name):
            raise ValueError(f"{text!r}: {name!r} is not a keyword argument name")
        if name in NEVER_KWARGS:
            raise ValueError(
                f"{text!r}: keyword argument {name!r} is never allowed (it would change what "
                "the device renders or where it reads it from)"
            )
        out.append(name)
    return fun, sorted(set(out))


def allows_function(fun: str, allowed: Iterable[str | Entry]) -> bool:
    """Whether some allow-list entry names ``fun`` (whatever its positional arguments)."""
    entries = [e if isinstance(e, Entry) else parse_entry(e) for e in allowed]
    return any(fnmatch.fnmatchcase(fun, e.fun) for e in entries)


def split_kwarg_strings(arg: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """Positional arguments as Salt sees them: ``name=value`` strings are keyword arguments."""
    positional, implicit = [], {}
    for item in arg:
        match = _KWARG_STRING.match(item) if isinstance(item, str) else None
        if match:
            implicit[match.group(1)] = match.group(2)
        else:
            positional.append(item)
    return positional, implicit


def check(
    fun: str,
    arg: list[Any],
    kwarg: dict[str, Any],
    allowed: Iterable[str | Entry],
    extra_kwargs: Mapping[str, Iterable[str]] | None = None,
) -> None:
    """Raise :class:`BadArgument` or :class:`Forbidden` unless ``fun(*arg, **kwarg)`` is allowed.

    ``extra_kwargs``: keyword names an administrator allowed per function on top of
    :data:`SAFE_KWARGS` (``{"docker.logs": ["follow"]}``); :data:`NEVER_KWARGS` stay refused."""
    entries = [e if isinstance(e, Entry) else parse_entry(e) for e in allowed]
    positional, implicit = split_kwarg_strings(list(arg or []))
    kwarg = dict(kwarg or {})
    for field, names in (("kwarg", kwarg), ("arg", implicit)):
        never = sorted(set(names) & NEVER_KWARGS)
        if never:
            raise BadArgument(
                field,
                f'Keyword argument "{never[0]}" is never allowed: it would change what the '
                "device renders or where it reads it from, or render a value as a template.",
            )
    if why := calls_other_functions(fun):
        raise RunsOtherFunctions(fun, why)
    if not any(e.allows(fun, positional) for e in entries):
        shown = ", ".join(str(e) for e in entries) or "none"
        if any(fnmatch.fnmatchcase(fun, e.fun) for e in entries):
            raise Forbidden(f'"{fun}" with the positional arguments {positional!r}', shown)
        raise Forbidden(f'"{fun}"', shown)
    safe = SAFE_KWARGS.get(fun, frozenset()) | (
        frozenset((extra_kwargs or {}).get(fun, ())) - NEVER_KWARGS
    )
    for field, names in (("kwarg", kwarg), ("arg", implicit)):
        extra = sorted(set(names) - safe)
        if extra:
            allowed_names = ", ".join(sorted(safe)) or "none"
            raise BadArgument(
                field,
                f'Keyword argument "{extra[0]}" is not allowed for {fun} '
                f"(allowed keyword arguments: {allowed_names}).",
            )


MASKED = "***"


def _public_arguments(fun: str) -> bool:
    """Functions of the safe default take no secret (a container name, a state name, a count)."""
    return any(fnmatch.fnmatchcase(fun, parse_entry(e).fun) for e in SAFE_DEFAULT)


def audit_summary(fun: str, arg: list[Any], kwarg: dict[str, Any]) -> dict[str, Any]:
    """What an audit row may keep of ``fun(*arg, **kwarg)``: never an argument that may be a secret.

    A safe-default function keeps its positional arguments and the values of the keyword
    arguments in its :data:`SAFE_KWARGS` set; any other keyword value is ``"***"``. Any other
    function (``docker.login``, ``cmd.run``, ...) keeps only the number of positional arguments
    and the keyword names, every value ``"***"``. ``name=value`` strings count as keywords.
    """
    positional, implicit = split_kwarg_strings(list(arg or []))
    names = {**implicit, **dict(kwarg or {})}
    if not _public_arguments(fun):
        return {
            "function": fun,
            "arg_count": len(positional),
            "kwarg": {str(k): MASKED for k in names},
        }
    safe = SAFE_KWARGS.get(fun, frozenset())
    shown_arg = []
    for item in arg or []:
        match = _KWARG_STRING.match(item) if isinstance(item, str) else None
        if match and match.group(1) not in safe:
            item = f"{match.group(1)}={MASKED}"
        shown_arg.append(item)
    return {
        "function": fun,
        "arg": shown_arg,
        "kwarg": {str(k): (v if k in safe else MASKED) for k, v in dict(kwarg or {}).items()},
    }
