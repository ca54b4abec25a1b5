"""User-supplied strings are escaped in logs: a project name with a newline cannot forge a log line.

Installed once per process (``install()``, from ``create_app``): every log record's string
arguments have control characters (and the Unicode line/paragraph separators) replaced by
``\\n``-style escapes before they are formatted. Messages themselves are code, not user input.
"""

from __future__ import annotations

import logging
import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text: str) -> str:
    return _CONTROL.sub(
        lambda m: _NAMED.get(
            m.group(),
            f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else f"\\u{ord(m.group()):04x}",
        ),
        text,
    )


def _clean(value):
    if isinstance(value, str):
        return escape(value)
    return value


_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        if isinstance(record.args, tuple):
            record.args = tuple(_clean(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _clean(v) for k, v in record.args.items()}
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
