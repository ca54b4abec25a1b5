"""Parsing and checking the parameters of GET /logbook/storage/read/."""

import re
from typing import NamedTuple

from . import timestamps
from .tables import FIELD_TYPES, NUMERIC_TYPES

MAX_BUCKETS = 10_000
DEFAULT_SIZE = 10_000
MAX_SIZE = 100_000
AGGREGATIONS = {"avg": "avg", "average": "avg", "min": "min", "max": "max", "sum": "sum"}
_UNITS_US = {
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
    "w": 604_800_000_000,
}
_INTERVAL = re.compile(r"^(\d+)(ms|s|m|h|d|w)$")
REQUIRED = ("device_id", "field", "field_type", "from_utc", "to_utc")


class ReadQuery(NamedTuple):
    device_id: str
    field: str
    field_type: str
    from_us: int
    to_us: int
    aggregation: str | None  # avg|min|max|sum, None = raw samples
    interval_us: int | None
    size: int


def parse_interval(text):
    """'10m' -> microseconds; raises ValueError with a message."""
    match = _INTERVAL.match(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise ValueError(
            f"'{text}' is not an interval: a positive integer followed by ms, s, m, h, d or w (e.g. 500ms, 10m, 1h)"
        )
    return int(match.group(1)) * _UNITS_US[match.group(2)]


def parse(args):
    """Query-string mapping -> (ReadQuery | None, errors)."""
    errors = {}
    for name in REQUIRED:
        if not (args.get(name) or "").strip():
            errors[name] = ["this parameter is required"]
    field_type = args.get("field_type")
    if field_type and field_type not in FIELD_TYPES:
        errors["field_type"] = [
            f"'{field_type}' is not a field type; expected one of {', '.join(FIELD_TYPES)}"
        ]
    times = {}
    for name in ("from_utc", "to_utc"):
        if args.get(name) and name not in errors:
            try:
                times[name] = timestamps.parse(args[name])
            except timestamps.TimeError as exc:
                errors[name] = [str(exc)]
    if len(times) == 2 and times["from_utc"] > times["to_utc"]:
        errors["from_utc"] = ["from_utc is after to_utc"]

    aggregation = (args.get("aggregation") or "none").strip().lower()
    if aggregation == "none":
        aggregation = None
    elif aggregation not in AGGREGATIONS:
        errors["aggregation"] = [
            f"'{args['aggregation']}' is not an aggregation; expected avg, average, min, max, sum or none"
        ]
    else:
        aggregation = AGGREGATIONS[aggregation]
        if field_type in FIELD_TYPES and field_type not in NUMERIC_TYPES:
            errors["aggregation"] = [
                f"a {field_type} field cannot be aggregated; omit aggregation for raw samples"
            ]

    interval_us = None
    if aggregation and "aggregation" not in errors:
        if not (args.get("interval") or "").strip():
            errors["interval"] = ["this parameter is required with an aggregation"]
        else:
            try:
                interval_us = parse_interval(args["interval"])
            except ValueError as exc:
                errors["interval"] = [str(exc)]
    if interval_us and len(times) == 2 and "from_utc" not in errors:
        count = -(-(times["to_utc"] - times["from_utc"]) // interval_us)
        if count > MAX_BUCKETS:
            errors["interval"] = [
                f"{count} buckets between from_utc and to_utc; at most {MAX_BUCKETS} allowed"
            ]

    size = DEFAULT_SIZE
    if args.get("size") not in (None, ""):
        try:
            size = int(args["size"])
            if not 1 <= size <= MAX_SIZE:
                raise ValueError
        except ValueError:
            errors["size"] = [f"expected an integer from 1 to {MAX_SIZE}"]
    if errors:
        return None, errors
    return ReadQuery(
        args["device_id"].strip(),
        args["field"],
        field_type,
        times["from_utc"],
        times["to_utc"],
        aggregation,
        interval_us,
        size,
    ), {}
