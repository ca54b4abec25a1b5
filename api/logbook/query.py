"""Parsing and checking the parameters of GET /logbook/storage/read/."""

import re
from typing import NamedTuple

from api.bodies import parse as parse_model
from api.logbook.schemas import DEFAULT_SIZE, MAX_BUCKETS, MAX_SIZE, LogbookReadQuery

from .tables import NUMERIC_TYPES

__all__ = ["DEFAULT_SIZE", "MAX_BUCKETS", "MAX_SIZE", "ReadQuery", "parse", "parse_interval"]

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
# a blank parameter is an absent one; these are judged as soon as they are not empty
_TAKEN_AS_GIVEN = ("field_type", "aggregation", "size")


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


def parse(args):  # noqa: C901 - one rule per query parameter, then the rules across them, in the order their errors are reported
    """Query-string mapping -> (ReadQuery | None, errors): each parameter by the rule of its
    :class:`~api.logbook.schemas.LogbookReadQuery` field, then the rules across parameters."""
    present = {}
    for name in LogbookReadQuery.model_fields:
        value = args.get(name)
        if value and (name in _TAKEN_AS_GIVEN or value.strip()):
            present[name] = value
    parsed = parse_model(LogbookReadQuery, present, optional=REQUIRED)
    errors = parsed.errors
    for name in REQUIRED:
        if name not in present:
            errors[name] = ["this parameter is required"]
    if "from_utc" in parsed and "to_utc" in parsed and parsed["from_utc"] > parsed["to_utc"]:
        errors["from_utc"] = ["from_utc is after to_utc"]

    field_type = parsed.get("field_type")
    aggregation = parsed.get("aggregation")
    if aggregation and field_type not in (None, *NUMERIC_TYPES):
        errors["aggregation"] = [
            f"a {field_type} field cannot be aggregated; omit aggregation for raw samples"
        ]

    interval_us = None
    if aggregation and "aggregation" not in errors:
        if "interval" not in present:
            errors["interval"] = ["this parameter is required with an aggregation"]
        else:
            try:
                interval_us = parse_interval(present["interval"])
            except ValueError as exc:
                errors["interval"] = [str(exc)]
    if interval_us and "from_utc" in parsed and "to_utc" in parsed and "from_utc" not in errors:
        count = -(-(parsed["to_utc"] - parsed["from_utc"]) // interval_us)
        if count > MAX_BUCKETS:
            errors["interval"] = [
                f"{count} buckets between from_utc and to_utc; at most {MAX_BUCKETS} allowed"
            ]
    if errors:
        return None, errors
    return ReadQuery(
        present["device_id"].strip(),
        present["field"],
        field_type,
        parsed["from_utc"],
        parsed["to_utc"],
        aggregation,
        interval_us,
        parsed["size"],
    ), {}
