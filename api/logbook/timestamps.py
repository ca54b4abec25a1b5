"""Logbook time values: everything is stored as integer epoch microseconds (UTC).

Accepted on input: ISO-8601 strings (``Z``, ``+02:00`` offsets, naive = UTC)
and epoch milliseconds as JSON numbers (or digit strings in query parameters).
"""

import math
import re
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_MS = 1_000
US_PER_S = 1_000_000
# year 10000 is where ISO formatting stops working
MAX_US = (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)

# a '+' in an unencoded query string arrives as a space: "...T02:00:00 02:00"
_SPACED_OFFSET = re.compile(r"^(.*T.*\d) (\d{2}:?\d{2})$")
_EPOCH_MS = re.compile(r"^-?\d+(\.\d+)?$")


class TimeError(ValueError):
    """A value that is not a usable timestamp; the message says why."""


def parse(value) -> int:
    """ISO-8601 string or epoch milliseconds (number) -> epoch microseconds."""
    if isinstance(value, bool):
        raise TimeError("expected an ISO-8601 string or epoch milliseconds, got a boolean")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise TimeError("epoch milliseconds must be a finite number")
        if (
            not -1 < value < MAX_US // US_PER_MS + 1
        ):  # before round(): 1e306 ms would overflow to infinity
            raise TimeError("timestamp out of range (1970-01-01 .. 9999-12-31)")
        us = round(value * US_PER_MS) if isinstance(value, float) else value * US_PER_MS
    elif isinstance(value, str):
        text = value.strip()
        if _EPOCH_MS.match(text):
            return parse(float(text) if "." in text else int(text))
        us = _parse_iso(text)
    else:
        raise TimeError("expected an ISO-8601 string or epoch milliseconds")
    if not 0 <= us <= MAX_US:
        raise TimeError("timestamp out of range (1970-01-01 .. 9999-12-31)")
    return us


def _parse_iso(text: str) -> int:
    match = _SPACED_OFFSET.match(text)
    if match:
        text = f"{match.group(1)}+{match.group(2)}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise TimeError(f"'{text}' is not an ISO-8601 date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)


_NAIVE_EPOCH = datetime(1970, 1, 1)


def iso_ms(us: int) -> str:
    """Bucket start as in the seed: '2020-07-09T10:03:37.566Z'."""
    return (_NAIVE_EPOCH + timedelta(microseconds=us)).isoformat(timespec="milliseconds") + "Z"


def iso_us(us: int) -> str:
    """Raw sample time as in the seed: '2020-07-09T10:11:53.811839Z'."""
    return (_NAIVE_EPOCH + timedelta(microseconds=us)).isoformat(timespec="microseconds") + "Z"


def epoch_ms(us: int) -> int:
    return us // US_PER_MS
