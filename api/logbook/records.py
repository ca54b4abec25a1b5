"""Validation of a write batch: every record is checked before anything is written.

The body is declared by :class:`api.logbook.schemas.LogbookWrite`, which validates it
(:func:`from_json`: straight from the request's bytes, the ingest hot path). A body the model
refuses is decoded as every other body is (:func:`api.payload.loads`) and judged here record by
record (:func:`validate`), so a 400 names each bad record by index with today's messages.

``validate(records)`` returns ``(batch, errors)``: ``batch`` is a :class:`Batch`
(the valid samples grouped by (field, field_type) into :class:`Series`, each
two columns in record order), ``errors`` maps the record index (as a string,
as in the 400 body) to ``{key: [message]}``.

Columns rather than one object per sample: a batch holds up to 50,000
samples, and a tuple or NamedTuple per sample is most of what validation
would otherwise cost; the columns also turn into insert parameters and rollup
cells with slice operations.
"""

import math
from typing import Annotated, Any

from pydantic import Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from api.logbook.schemas import (
    INT64,
    MAX_BATCH,
    MAX_EPOCH_MS,
    MAX_FIELD_NAME,
    MAX_STRING,
    LogbookRecord,
    LogbookWrite,
)

from . import timestamps
from .tables import FIELD_TYPES

__all__ = ["INT64", "MAX_BATCH", "MAX_EPOCH_MS", "MAX_FIELD_NAME", "MAX_STRING"]

# a record the model refuses stays the request's own object (left to right: Any only then)
_RECORDS_OR_RAW = TypeAdapter(
    list[Annotated[LogbookRecord | Any, Field(union_mode="left_to_right")]]
)


class Series:
    """The valid samples of one (field, field_type) of a batch, in record order."""

    __slots__ = ("field", "field_type", "ts", "values")

    def __init__(self, field, field_type):
        self.field = field
        self.field_type = field_type
        self.ts = []  # epoch microseconds
        self.values = []  # float | int | bool | str | (lat, lon)

    def __len__(self):
        return len(self.ts)


class Batch:
    """The valid samples of a write: ``series`` maps (field, field_type) to a
    :class:`Series`, in the order each pair first appears; ``records`` is the
    request's list (to name records by index when the catalog rejects a type)."""

    __slots__ = ("records", "series")

    def __init__(self, records):
        self.records = records
        self.series = {}

    def __len__(self):
        return sum(len(series) for series in self.series.values())

    def add(self, field, field_type):
        series = self.series.get((field, field_type))
        if series is None:
            series = self.series[(field, field_type)] = Series(field, field_type)
        return series


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _check_float(value):
    if type(value) is float and math.isfinite(value):
        return value, None
    if not _number(value):
        return None, "expected a finite number"
    return float(value), None


def _check_long(value):
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        return None, "expected an integer"
    if not -INT64 <= value < INT64:
        return None, "integer out of the 64-bit range"
    return value, None


def _check_bool(value):
    if not isinstance(value, bool):
        return None, "expected true or false"
    return value, None


def _unicode(text):
    """False for a string with a lone surrogate (a valid JSON escape, but no
    database can store it: it has no UTF-8 encoding)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_string(value):
    if not isinstance(value, str):
        return None, "expected a string"
    if len(value) > MAX_STRING:
        return None, f"string longer than {MAX_STRING} characters"
    if "\x00" in value:  # PostgreSQL text cannot hold it
        return None, "NUL characters are not allowed"
    if not _unicode(value):
        return None, "lone surrogates are not allowed"
    return value, None


def _check_geo_point(value):
    if not isinstance(value, dict) or set(value) != {"lat", "lon"}:
        return None, 'expected {"lat": number, "lon": number}'
    lat, lon = value["lat"], value["lon"]
    if not (_number(lat) and -90 <= lat <= 90):
        return None, "lat must be a number in [-90, 90]"
    if not (_number(lon) and -180 <= lon <= 180):
        return None, "lon must be a number in [-180, 180]"
    return (float(lat), float(lon)), None


VALUE_CHECKS = {
    "float": _check_float,
    "long": _check_long,
    "bool": _check_bool,
    "string": _check_string,
    "geo_point": _check_geo_point,
}


def from_json(raw):
    """The request's bytes -> ``(device_id, batch)`` when :class:`LogbookWrite` accepts them and
    every record passes, else None (then :func:`api.payload.loads` and :func:`validate` judge
    the body as usual, every problem named).

    pydantic-core's JSON reader accepts a subset of what ``json.loads`` reads, with the same
    values (duplicate keys: the last one; floats correctly rounded, an integer beyond 64 bits
    given to a float field rounded as ``float(int)`` does); what it refuses (a BOM, UTF-16,
    lone surrogates, anything malformed) takes the usual path, which answers as before.
    ``tests/unit/test_logbook_schemas.py`` holds it to that."""
    try:
        body = LogbookWrite.model_validate_json(raw)
    except PydanticValidationError:
        return None
    batch = _columns(body.records)
    return None if batch is None else (body.device_id, batch)


def validate(records):
    """-> (batch, errors); errors is {} when the whole batch is valid. Each record the model
    accepts costs what it costs on the hot path; the others are judged by the rules, which name
    their problems (or accept them: the model is stricter in places, e.g. ``1.0`` for a long)."""
    batch = Batch(records)
    if not isinstance(records, list):
        return batch, {"records": ["expected a list of records"]}
    if not records:
        return batch, {"records": ["at least one record is required"]}
    if len(records) > MAX_BATCH:
        return batch, {"records": [f"at most {MAX_BATCH} records per batch, got {len(records)}"]}
    return _columns(_RECORDS_OR_RAW.validate_python(records), records)


def _columns(items, raw=None):  # noqa: C901 - ingest's hot loop: each remaining rule inlined, one pass per batch
    """Records the model accepted -> a :class:`Batch` (``raw`` None: the first record that
    breaks a rule ends it, the result is None), or ``(batch, errors)`` (``raw``: the request's
    records, ``items`` their validation, a record the model refused being ``raw``'s own object).
    The rules left to this step: an unknown key, a field name of only spaces (``str.isspace``)
    or with a NUL or a lone surrogate, a string value with a lone surrogate, a time string
    ``timestamps.parse`` refuses; a record breaking one is judged by ``_validate_slowly``.
    Series usually come in runs: a series' name is checked once per run, and a numeric sample
    costs two appends."""
    batch = Batch(items if raw is None else raw)
    errors = {}
    last_field = last_type = None
    kind = add_ts = add_value = None
    parse = timestamps.parse
    for index, record in enumerate(items):
        # len: an unknown key (see LogbookWrite's records); ``is``: refused by the model
        if (raw is None or record is not raw[index]) and len(record) == 4:
            field, field_type = record["field"], record["field_type"]
            if field_type == last_type and field == last_field:
                good = True
            elif good := _good_name(field):
                series = batch.add(field, field_type)
                last_field, last_type = field, field_type
                kind = field_type if field_type in ("string", "geo_point") else None
                add_ts, add_value = series.ts.append, series.values.append
            if good:
                ts, value = record["ts"], record["value"]
                try:
                    ts = ts * 1000 if type(ts) is int else parse(ts)
                except timestamps.TimeError:
                    ts = None
                if kind == "geo_point":
                    value = (value["lat"], value["lon"])
                elif kind == "string" and not _unicode(value):
                    ts = None
                if ts is not None:
                    add_ts(ts)
                    add_value(value)
                    continue
        if raw is None:
            return None
        sample, problems = _validate_slowly(raw[index])
        if problems:
            errors[str(index)] = problems
            continue
        field, field_type, ts, value = sample
        series = batch.add(field, field_type)
        series.ts.append(ts)
        series.values.append(value)
        last_field = last_type = None  # the cached appends may be another series'
    if raw is None:
        return batch
    return batch, ({"records": errors} if errors else {})


def _good_name(field):
    return (
        type(field) is str
        and 0 < len(field) <= MAX_FIELD_NAME
        and not field.isspace()
        and "\x00" not in field
        and _unicode(field)
    )


def _validate_slowly(record):  # noqa: C901 - one branch per rule of a record, each adding its DRF message
    """-> ((field, field_type, ts, value), None) or (None, problems)."""
    if not isinstance(record, dict):
        return None, {"non_field_errors": ["expected an object with ts, field, field_type, value"]}
    problems = {}
    unknown = set(record) - {"ts", "field", "field_type", "value"}
    if unknown:
        problems["non_field_errors"] = [f"unknown keys: {', '.join(sorted(unknown))}"]
    ts = field = field_type = value = None
    if "ts" not in record:
        problems["ts"] = ["this field is required"]
    else:
        try:
            ts = timestamps.parse(record["ts"])
        except timestamps.TimeError as exc:
            problems["ts"] = [str(exc)]
    field = record.get("field")
    if not isinstance(field, str) or not field.strip():
        problems["field"] = ["expected a non-empty field name"]
    elif len(field) > MAX_FIELD_NAME:
        problems["field"] = [f"field name longer than {MAX_FIELD_NAME} characters"]
    elif "\x00" in field:
        problems["field"] = ["NUL characters are not allowed in a field name"]
    elif not _unicode(field):
        problems["field"] = ["lone surrogates are not allowed in a field name"]
    field_type = record.get("field_type")
    if field_type not in FIELD_TYPES:
        problems["field_type"] = [f"expected one of {', '.join(FIELD_TYPES)}"]
    elif "value" not in record:
        problems["value"] = ["this field is required"]
    else:
        value, message = VALUE_CHECKS[field_type](record["value"])
        if message:
            problems["value"] = [f"{message} for a {field_type} field"]
    if problems:
        return None, problems
    return (field, field_type, ts, value), None
