"""Search the minion's own log files, newest line first.

The Salt execution module ``minionutil`` is a thin wrapper around this module;
everything here is plain Python and takes the minion's ``log_file`` option as
an argument instead of reading ``__opts__``.

Parameters shared by :func:`last_logs`, :func:`last_errors` and
:func:`last_startup`:

``file``
    ``"minion"`` (default) is the minion's own log file, the ``log_file``
    option. Any other value is a file name relative to the directory of that
    log file (the Salt log directory, usually ``/var/log/salt``), e.g.
    ``"master"`` or ``"minion.1"``. Absolute paths and names that leave the
    log directory (``../``, symlinks pointing out) are refused.

Rotated logs
    The scan continues into the rotated copies of the file once the file
    itself is exhausted, newest copy first: ``minion.1``, ``minion.2.gz``,
    ... (logrotate's numbered scheme, compressed or not) and then
    ``minion-YYYYMMDD[.gz]`` (``dateext``), newest date first.

``until``
    A regular expression marking how far back to look. Lines are scanned from
    the end of the log towards its beginning; the first (newest) line that
    matches ``until`` is the last line examined (it is still returned if it
    matches ``match``). The special value ``"$"`` (default) means no marker:
    scan back to the beginning of the oldest rotated file.

``match``
    A regular expression (``re.search``, so it can match anywhere in the
    line). Only matching lines are returned, plus their context lines.

``count``
    Maximum number of matching lines; ``0`` (default) means no maximum other
    than ``limit``.

``before`` / ``after``
    Context lines, like ``grep -B`` / ``grep -A``: ``before`` lines that were
    logged *before* (older than) each match and ``after`` lines logged *after*
    (newer than) it. When context is asked for, a ``"--"`` line separates
    groups that are not adjacent in the log, as grep does.

``limit``
    Maximum number of log lines returned (matches plus context, separators not
    counted). ``0`` means no limit.

The result is a list of lines (strings without the line break), newest first.
"""

from __future__ import annotations

import collections
import gzip
import io
import logging
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

log = logging.getLogger(__name__)

UNTIL_END = "$"
# Salt's minion logs this once per start, before anything else of that start.
STARTUP_MARKER = "Setting up the Salt Minion"
SEPARATOR = "--"

# Salt's level numbers; a level name matches itself and every higher level.
LEVELS = {
    "garbage": 1,
    "trace": 5,
    "debug": 10,
    "profile": 15,
    "info": 20,
    "warning": 30,
    "error": 40,
    "critical": 50,
}

_BLOCK_SIZE = 64 * 1024
_NUMBERED = re.compile(r"^\.(\d+)(\.gz)?$")
_DATED = re.compile(r"^-(\d{8,14})(\.gz)?$")


class LogQueryError(ValueError):
    """A parameter of a log query is wrong; the message names it."""


# --- locating files -------------------------------------------------------


def log_dir(log_file: str) -> str:
    """The Salt log directory: where the minion's ``log_file`` lives."""
    if not log_file or "://" in str(log_file):
        raise LogQueryError(
            f"the minion's log_file option ({log_file!r}) is not a local file, "
            "so there is no log directory to read"
        )
    return os.path.dirname(os.path.abspath(log_file))


def resolve(log_file: str, file: str = "minion") -> str:
    """Path of the log named ``file``; refuses names escaping the log directory."""
    if not isinstance(file, str) or not file.strip():
        raise LogQueryError("file: must be a non-empty log file name")
    base = os.path.realpath(log_dir(log_file))
    if file == "minion":
        return os.path.abspath(log_file)
    if os.path.isabs(file):
        raise LogQueryError(
            f"file: {file!r} is an absolute path; give a name relative to the log directory {base}"
        )
    path = os.path.realpath(os.path.join(base, file))
    if os.path.commonpath([base, path]) != base:
        raise LogQueryError(f"file: {file!r} is outside the log directory {base}")
    return path


def rotations(path: str) -> list[str]:
    """``path`` followed by its rotated copies, newest first (existing files only)."""
    directory, name = os.path.split(path)
    numbered, dated = [], []
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        entries = []
    for entry in entries:
        if not entry.startswith(name) or entry == name:
            continue
        suffix = entry[len(name) :]
        if m := _NUMBERED.match(suffix):
            numbered.append((int(m.group(1)), entry))
        elif m := _DATED.match(suffix):
            dated.append((m.group(1), entry))
    ordered = [e for _, e in sorted(numbered)] + [e for _, e in sorted(dated, reverse=True)]
    files = [path] if os.path.isfile(path) else []
    return files + [
        os.path.join(directory, e) for e in ordered if os.path.isfile(os.path.join(directory, e))
    ]


def log_files(log_file: str) -> list[str]:
    """Names of the regular files in the log directory, sorted."""
    directory = log_dir(log_file)
    return sorted(e for e in os.listdir(directory) if os.path.isfile(os.path.join(directory, e)))


# --- reading backwards ----------------------------------------------------


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r")


def _reverse_plain(path: str) -> Iterator[str]:
    """Lines of a plain file, last line first, reading fixed-size blocks from the end."""
    with open(path, "rb") as fh:
        # Only what exists now: the minion keeps appending while we read.
        position = fh.seek(0, io.SEEK_END)
        tail = b""
        while position > 0:
            step = min(_BLOCK_SIZE, position)
            position -= step
            fh.seek(position)
            block = fh.read(step) + tail
            lines = block.split(b"\n")
            tail = lines.pop(0)
            for raw in reversed(lines):
                yield _decode(raw)
        yield _decode(tail)


def _reverse_gzip(path: str) -> Iterator[str]:
    # Rotated copies are bounded by the rotation size; reading one whole is fine.
    with gzip.open(path, "rb") as fh:
        lines = fh.read().split(b"\n")
    for raw in reversed(lines):
        yield _decode(raw)


def reverse_lines(paths: Iterable[str]) -> Iterator[str]:
    """Every line of ``paths`` (given newest file first), newest line first."""
    for path in paths:
        reader = _reverse_gzip if path.endswith(".gz") else _reverse_plain
        first = True
        for line in reader(path):
            # The final line break of a file yields an empty "last line": skip it.
            if first and line == "":
                first = False
                continue
            first = False
            yield line


# --- searching ------------------------------------------------------------


def _regex(name: str, pattern: object) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise LogQueryError(f"{name}: must be a regular expression string, got {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise LogQueryError(
            f"{name}: {pattern!r} is not a valid regular expression: {exc}"
        ) from None


def _count(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise LogQueryError(f"{name}: must be a whole number >= 0, got {value!r}") from None
    if isinstance(value, bool) or number < 0 or (isinstance(value, float) and value != number):
        raise LogQueryError(f"{name}: must be a whole number >= 0, got {value!r}")
    return number


def search(  # noqa: C901 - one pass over the log: match, count, context and the until marker share the loop's state
    lines: Iterable[str],
    until: str = UNTIL_END,
    match: str = ".*",
    count: int = 0,
    before: int = 0,
    after: int = 0,
    limit: int = 100,
) -> list[str]:
    """Apply the query to ``lines`` given newest first; see the module docstring."""
    match_re = _regex("match", match)
    until_re = None if until == UNTIL_END else _regex("until", until)
    count, before, after, limit = (
        _count("count", count),
        _count("before", before),
        _count("after", after),
        _count("limit", limit),
    )
    context = before > 0 or after > 0

    out: list[str] = []
    emitted = 0  # lines in ``out`` that are log lines (not separators)
    last_index = None  # index (in newest-first order) of the last emitted line
    newer: collections.deque[tuple[int, str]] = collections.deque(
        maxlen=after
    )  # (index, line) not emitted, for ``after`` context
    older_wanted = 0  # ``before`` context still to take
    matches = 0

    def emit(index: int, line: str) -> bool:
        nonlocal emitted, last_index
        if context and last_index is not None and index != last_index + 1:
            out.append(SEPARATOR)
        out.append(line)
        emitted += 1
        last_index = index
        return bool(limit) and emitted >= limit

    for index, line in enumerate(lines):
        stop_here = until_re is not None and until_re.search(line) is not None
        is_match = (not count or matches < count) and match_re.search(line) is not None
        if is_match:
            matches += 1
            for item in newer:
                if emit(*item):
                    return out
            newer.clear()
            if emit(index, line):
                return out
            older_wanted = before
        elif older_wanted:
            older_wanted -= 1
            if emit(index, line):
                return out
        else:
            if after:
                newer.append((index, line))
            if count and matches >= count:
                break
        if stop_here:
            break
    return out


# --- the queries ------------------------------------------------------------


def _lines(log_file: str, file: str) -> Iterator[str]:
    path = resolve(log_file, file)
    paths = rotations(path)
    if not paths:
        raise LogQueryError(f"file: no log file {path} (nor rotated copies of it)")
    return reverse_lines(paths)


def last_logs(
    log_file: str,
    file: str = "minion",
    until: str = UNTIL_END,
    match: str = ".*",
    count: int = 0,
    before: int = 0,
    after: int = 0,
    limit: int = 100,
) -> list[str]:
    """Newest lines of the log ``file`` matching ``match``, newest first."""
    # Validate everything before touching the file system.
    search([], until, match, count, before, after, limit)
    return search(_lines(log_file, file), until, match, count, before, after, limit)


def level_pattern(level: str) -> str:
    """Regex matching Salt log lines at ``level`` or above (``[ERROR   ]`` style)."""
    if not isinstance(level, str) or level.lower() not in LEVELS:
        raise LogQueryError(f"level: {level!r} is not one of {', '.join(LEVELS)}")
    floor = LEVELS[level.lower()]
    names = "|".join(n.upper() for n, v in LEVELS.items() if v >= floor)
    return rf"\[\s*(?:{names})\s*\]"


def last_errors(
    log_file: str,
    file: str = "minion",
    until: str = UNTIL_END,
    level: str = "error",
    count: int = 0,
    before: int = 0,
    after: int = 0,
    limit: int = 100,
) -> list[str]:
    """Newest lines logged at ``level`` or above (default ERROR and CRITICAL)."""
    return last_logs(log_file, file, until, level_pattern(level), count, before, after, limit)


def last_startup(
    log_file: str,
    file: str = "minion",
    until: str = UNTIL_END,
    match: str = STARTUP_MARKER,
    limit: int = 100,
) -> list[str]:
    """The log of the newest start: the newest line matching ``match`` and the
    lines logged after it, at most ``limit`` lines counted from the start line
    on, returned newest first. Empty if no start line is found before ``until``.
    """
    match_re = _regex("match", match)
    until_re = None if until == UNTIL_END else _regex("until", until)
    limit = _count("limit", limit)
    # The lines right after the marker are the oldest ones seen when the marker
    # turns up, so keep a window of the last ``limit - 1`` lines read.
    window: collections.deque[str] = collections.deque(maxlen=(limit - 1) if limit else None)
    for line in _lines(log_file, file):
        if match_re.search(line):
            return list(window) + [line]
        if until_re is not None and until_re.search(line):
            break
        window.append(line)
    return []
