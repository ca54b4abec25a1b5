"""Logbook bodies and parameters (docs/logbook.md), declared once: the OpenAPI components and
parameters of ``/logbook/storage/*`` are generated from these models, and they validate.

* :class:`LogbookWrite` validates a write body straight from its JSON bytes
  (``LogbookWrite.model_validate_json``, pydantic-core): the envelope, and each record as one
  of five typed records chosen by ``field_type`` (a discriminated union of TypedDicts, so a
  valid record costs no Python object beyond its dict). Its constraints are native
  pydantic-core ones and deliberately never looser than the rules of
  :mod:`api.logbook.records`; a body it refuses is decoded by :func:`api.payload.loads` and
  judged record by record by those rules, which name every problem with today's messages
  (``tests/unit/test_logbook_schemas.py`` checks that both agree).
* :class:`LogbookReadQuery` / :class:`LogbookFieldsQuery`: the query parameters of the read
  and fields endpoints; their fields carry the rules (:func:`api.fields.rule`) that
  :func:`api.logbook.query.parse` runs.
* :class:`LogbookWritten`, :class:`LogbookRow`, :class:`LogbookField`: what the endpoints
  answer (the views build them as dicts).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Ge, Le, Lt
from pydantic import ConfigDict, Field, Strict
from typing_extensions import TypedDict

from api.bodies import RequestBody, ResponseBody, doc
from api.fields import NON_BLANK, Check, FieldError, checks, rule
from api.logbook import timestamps
from api.logbook.tables import FIELD_TYPES

MAX_BATCH = 50_000
MAX_FIELD_NAME = 255
MAX_STRING = 65_536
INT64 = 2**63
MAX_EPOCH_MS = timestamps.MAX_US // timestamps.US_PER_MS
MAX_BUCKETS = 10_000
DEFAULT_SIZE = 10_000
MAX_SIZE = 100_000

# What a time value looks like as a string, for OpenAPI and the write fast path: epoch
# milliseconds as digits, or an ISO-8601 date-time of 1971..9998 (so that no offset moves it out
# of 1970..9999) with Z, an offset or nothing (= UTC). The server also reads other ISO-8601
# forms (a date alone, a space instead of T, 29 February) and whitespace around the value.
_YEAR = r"(197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
_DATE = rf"{_YEAR}-((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])|(0[13-9]|1[0-2])-(29|30)|(0[13578]|1[02])-31)"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
TIME_PATTERN = (
    rf"^([0-9]{{1,14}}(\.[0-9]{{1,3}})?|{_DATE}T{_TIME}(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)$"
)
TIME_DOC = "ISO-8601 date-time (Z or an offset; none = UTC) or epoch milliseconds"
# its length is the Field's (min_length, max_length) below; this adds the pattern
FIELD_NAME_DOC = doc(
    "Field name: 1-255 characters, not only spaces, no NUL.",
    pattern=NON_BLANK["pattern"],
    example="obd.bat.voltage",
)

# a finite JSON number; pydantic's strict float takes a JSON integer too (as the rules do)
_Finite = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Timestamp = Annotated[
    Annotated[int, Strict(), Ge(0), Le(MAX_EPOCH_MS)]
    | Annotated[float, Strict(), Field(allow_inf_nan=False), Ge(0), Le(MAX_EPOCH_MS)]
    # the pattern is the document's; the model takes any string and api.logbook.records reads
    # it with timestamps.parse (naive, date-only, ... forms stay on the hot path)
    | Annotated[str, Strict(), Field(json_schema_extra={"pattern": TIME_PATTERN})],
    Field(description=TIME_DOC, examples=["2020-07-09T10:11:53.811839Z", 1594289513811]),
]
# the pattern (not only spaces, no NUL) is checked once per series of a batch by
# api.logbook.records._good_name rather than on every record here
FieldName = Annotated[str, Strict(), Field(min_length=1, max_length=MAX_FIELD_NAME), FIELD_NAME_DOC]


class _Record(TypedDict):
    # Unknown keys are refused (the document says so); the refusal is the length check of
    # api.logbook.records._columns, as pydantic-core's extra="forbid" costs a fifth of the
    # validation of a 50,000-record batch.
    __pydantic_config__ = ConfigDict(  # type: ignore[misc]
        extra="allow", json_schema_extra={"additionalProperties": False}
    )

    ts: Timestamp
    field: FieldName


class LogbookFloatRecord(_Record):
    field_type: Literal["float"]
    value: _Finite


class LogbookLongRecord(_Record):
    field_type: Literal["long"]
    value: Annotated[int, Strict(), Ge(-INT64), Lt(INT64)]


class LogbookBoolRecord(_Record):
    field_type: Literal["bool"]
    value: Annotated[bool, Strict()]


class LogbookStringRecord(_Record):
    field_type: Literal["string"]
    value: Annotated[
        str, Strict(), Field(max_length=MAX_STRING, pattern=r"^[^\x00]*$"), doc("No NUL.")
    ]


class LogbookGeoPoint(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    lat: Annotated[_Finite, Ge(-90), Le(90)]
    lon: Annotated[_Finite, Ge(-180), Le(180)]


class LogbookGeoPointRecord(_Record):
    field_type: Literal["geo_point"]
    value: LogbookGeoPoint


LogbookRecord = Annotated[
    LogbookFloatRecord
    | LogbookLongRecord
    | LogbookBoolRecord
    | LogbookStringRecord
    | LogbookGeoPointRecord,
    Field(discriminator="field_type"),
]
RECORD_MODELS = {
    "float": LogbookFloatRecord,
    "long": LogbookLongRecord,
    "bool": LogbookBoolRecord,
    "string": LogbookStringRecord,
    "geo_point": LogbookGeoPointRecord,
}
assert tuple(RECORD_MODELS) == FIELD_TYPES


class LogbookWrite(RequestBody):
    """``POST /logbook/storage/write/``: samples of one device, all stored or none."""

    device_id: Annotated[str, Strict(), Field(pattern=NON_BLANK["pattern"]), doc("Device id.")]
    records: Annotated[list[LogbookRecord], Field(min_length=1, max_length=MAX_BATCH)]

    @classmethod
    def openapi_components(cls, schemas: dict[str, Any]) -> None:
        """The record union under one name in ``/openapi.json``: the five typed records,
        chosen by field_type."""
        records = schemas[cls.__name__]["properties"]["records"]
        schemas["LogbookRecord"] = records.pop("items")
        records["items"] = {"$ref": "#/components/schemas/LogbookRecord"}


# -- query parameters (strings; each rule names the parameter's problem) -------------------


AGGREGATIONS = {"avg": "avg", "average": "avg", "min": "min", "max": "max", "sum": "sum"}


def _either_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" for c in word)


_AGGREGATION_PATTERN = (
    r"^\s*(" + "|".join(_either_case(w) for w in (*AGGREGATIONS, "none")) + r")?\s*$"
)
_INTERVAL_PATTERN = r"^\s*0*[1-9][0-9]*(ms|s|m|h|d|w)\s*$"
_TEXT = {"pattern": NON_BLANK["pattern"]}


@checks(**_TEXT)
def check_device_id(value: Any) -> str:
    """A device id parameter or body field; blank is missing."""
    if not isinstance(value, str) or not value.strip():
        raise FieldError("this field is required")
    return value


def check_field_type(value: str) -> str:
    if value not in FIELD_TYPES:
        raise FieldError(f"'{value}' is not a field type; expected one of {', '.join(FIELD_TYPES)}")
    return value


@checks(pattern=TIME_PATTERN)
def check_time(value: str) -> int:
    """-> epoch microseconds."""
    try:
        return timestamps.parse(value)
    except timestamps.TimeError as exc:
        raise FieldError(str(exc)) from None


@checks(pattern=_AGGREGATION_PATTERN)
def check_aggregation(value: str) -> str | None:
    """avg|average|min|max|sum (any case) -> avg|min|max|sum; none -> None."""
    name = (value or "none").strip().lower()
    if name == "none":
        return None
    if name not in AGGREGATIONS:
        raise FieldError(
            f"'{value}' is not an aggregation; expected avg, average, min, max, sum or none"
        )
    return AGGREGATIONS[name]


@checks(minimum=1, maximum=MAX_SIZE)
def check_size(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= MAX_SIZE:
        raise FieldError(f"expected an integer from 1 to {MAX_SIZE}")
    return number


class LogbookFieldsQuery(RequestBody):
    """``GET /logbook/storage/fields/``."""

    device_id: Annotated[str, rule(check_device_id), doc("Device id.")]


# Parameters read as sent here and judged by api.logbook.query (the series' name, the interval
# with the aggregation and window it goes with); their pattern is what OpenAPI shows of them.
field_name = Check(lambda value: value, **_TEXT)
interval_text = Check(lambda value: value, pattern=_INTERVAL_PATTERN)


class LogbookReadQuery(RequestBody):
    """``GET /logbook/storage/read/``: samples of one field over [from_utc, to_utc). A blank
    parameter counts as absent. Rules across parameters (400 naming the parameter):
    from_utc <= to_utc; ``interval`` is required with an aggregation and is otherwise
    ignored; at most 10,000 buckets; string and geo_point fields are not aggregated."""

    device_id: Annotated[str, rule(check_device_id), doc("Device id.")]
    field: Annotated[str, rule(field_name), doc("Field name.")]
    field_type: Annotated[Literal[FIELD_TYPES], rule(check_field_type), doc("Field type.")]  # type: ignore[valid-type]
    from_utc: Annotated[str, rule(check_time), doc(f"Window start, inclusive: {TIME_DOC}.")]
    to_utc: Annotated[str, rule(check_time), doc(f"Window end, exclusive: {TIME_DOC}.")]
    aggregation: Annotated[
        str,
        rule(check_aggregation),
        doc("avg, average, min, max or sum in any case; absent, blank or none = raw samples."),
    ] = None  # type: ignore[assignment]
    interval: Annotated[
        str,
        rule(interval_text),
        doc(
            "Bucket width with an aggregation: a positive integer and ms, s, m, h, d or w "
            f"(500ms, 30s, 10m, 1h, 1d, 1w); at most {MAX_BUCKETS} buckets in the window. "
            "Ignored without an aggregation."
        ),
    ] = None  # type: ignore[assignment]
    size: Annotated[
        int,
        rule(check_size),
        doc(f"Row cap (default {DEFAULT_SIZE})."),
    ] = DEFAULT_SIZE


# -- responses --------------------------------------------------------------------------


class LogbookWritten(ResponseBody):
    device_id: str
    received: Annotated[int, doc("Samples in the batch.")]
    written: Annotated[int, doc("Samples that were new.")]


class LogbookLocation(ResponseBody):
    lat: float
    lon: float


class LogbookRow(ResponseBody):
    """Aggregated: ``{ts (bucket start, ms, Z), max_ts (epoch ms), value}``; raw:
    ``{ts (µs, Z), value}``; raw geo_point: ``{ts, location: {lat, lon}}``."""

    ts: Annotated[str, doc(example="2020-07-09T10:00:00.000Z")]
    max_ts: Annotated[int, doc(example=1594289021415)] = None  # type: ignore[assignment]
    value: float | int | bool | str = None  # type: ignore[assignment]
    location: LogbookLocation = None  # type: ignore[assignment]


class LogbookField(ResponseBody):
    field: str
    field_type: Literal[FIELD_TYPES]  # type: ignore[valid-type]
