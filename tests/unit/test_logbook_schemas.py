"""The logbook write model (api/logbook/schemas.py) against the record rules (api/logbook/records.py).

The model validates a write straight from its bytes (``records.from_json``); a body it refuses
goes the usual way (``api.payload.loads`` + ``records.validate``). Behaviour stays the same only
if the model never accepts what the rules refuse and reads the same values as ``json.loads``:
every body below, hand-picked edge or random mutation, is judged both ways.
"""

from __future__ import annotations

import json
import random

import pytest

from api.logbook import records
from api.logbook.schemas import MAX_EPOCH_MS, TIME_PATTERN, LogbookReadQuery

TS = [
    0,
    1,
    -1,
    1594289000000,
    MAX_EPOCH_MS,
    MAX_EPOCH_MS + 1,
    1594289000000.5,
    -0.0001,
    1e300,
    True,
    None,
    "2020-07-09T10:11:53.811839Z",
    "2020-07-09T12:11:53+02:00",
    "2020-07-09T10:11:53",
    "2020-07-09",
    "2020-02-30T00:00:00Z",
    "1970-01-01T00:00:00+01:00",
    "1594289000000",
    " 1594289000000 ",
    "-5",
    "yesterday",
    "",
    [],
]
FIELDS = ["v", "obd.bat.voltage", "", " ", "\x1c", "\u3000", "a\x00", "a" * 255, "a" * 256, 5, None]
VALUES = [
    0,
    1,
    -1,
    1.5,
    -0.0,
    2**53 + 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    10**30,
    1e308,
    True,
    False,
    None,
    "",
    "text",
    "a\x00b",
    "x" * 65_537,
    {"lat": 57.0, "lon": 9.9},
    {"lat": 90, "lon": -180},
    {"lat": 91, "lon": 0},
    {"lat": True, "lon": 0},
    {"lat": 1, "lon": 2, "alt": 3},
    {"lat": 1},
    [57, 9],
]
TYPES = ["float", "long", "bool", "string", "geo_point", "double", None]
FITTING = {
    "float": [0, 1.5, -0.0, 2**63, 1e308],
    "long": [0, -1, 2**63 - 1, -(2**63)],
    "bool": [True, False],
    "string": ["", "text", "x" * 65_536],
    "geo_point": [{"lat": 57.0, "lon": 9.9}, {"lat": -90, "lon": 180}],
}


def reference(records_list):
    """What the rules alone make of a list of records: (columns, errors)."""
    columns, errors = {}, {}
    for index, record in enumerate(records_list):
        sample, problems = records._validate_slowly(record)
        if problems:
            errors[str(index)] = problems
            continue
        field, field_type, ts, value = sample
        ts_column, values = columns.setdefault((field, field_type), ([], []))
        ts_column.append(ts)
        values.append(value)
    return columns, errors


def as_columns(batch):
    return {key: (series.ts, series.values) for key, series in batch.series.items()}


def same(a, b):
    # NaN never reaches a column; -0.0 == 0.0 but the sign is kept, so compare reprs
    return repr(a) == repr(b)


def judge(raw: bytes):
    """Both ways must agree: the model path, when it accepts, gives the rules' columns."""
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    fast = records.from_json(raw)
    usual_errors = None
    if isinstance(body, dict) and isinstance(body.get("records"), list) and body["records"]:
        batch, usual_errors = records.validate(body["records"])
        expected, expected_errors = reference(body["records"])
        assert usual_errors == ({"records": expected_errors} if expected_errors else {})
        if not expected_errors:
            assert same(as_columns(batch), expected)
    if fast is not None:
        device_id, batch = fast
        assert isinstance(body, dict) and device_id == body["device_id"] and device_id.strip()
        assert usual_errors == {}, "the model accepted a body the rules refuse"
        assert same(as_columns(batch), reference(body["records"])[0])
        assert len(batch.records) == len(body["records"])
    return fast


def body_of(*recs, device_id="dev"):
    return json.dumps({"device_id": device_id, "records": list(recs)}).encode()


def test_a_plain_batch_takes_the_model_path():
    raw = body_of(
        *(
            {"ts": 1594289000000 + i, "field": "v", "field_type": "float", "value": i / 3}
            for i in range(50)
        ),
        {
            "ts": "2020-07-09T10:11:53.811839Z",
            "field": "p",
            "field_type": "geo_point",
            "value": {"lat": 1, "lon": 2},
        },
        {"ts": 1, "field": "s", "field_type": "string", "value": "héllo"},
        {"ts": "2020-07-09T10:11:53", "field": "s", "field_type": "string", "value": "naive ts"},
        {"ts": "2020-07-09", "field": "s", "field_type": "string", "value": "a date alone"},
        {"ts": 1, "field": "b", "field_type": "bool", "value": True},
        {"ts": 1, "field": "l", "field_type": "long", "value": -(2**63)},
    )
    assert judge(raw) is not None


@pytest.mark.parametrize("ts", TS, ids=repr)
def test_timestamps(ts):
    judge(body_of({"ts": ts, "field": "v", "field_type": "float", "value": 1.0}))


@pytest.mark.parametrize("field", FIELDS, ids=repr)
def test_field_names(field):
    judge(body_of({"ts": 1, "field": field, "field_type": "float", "value": 1.0}))


@pytest.mark.parametrize("field_type", TYPES)
@pytest.mark.parametrize("value", VALUES, ids=lambda v: repr(v)[:30])
def test_values_of_every_type(field_type, value):
    judge(body_of({"ts": 1, "field": "v", "field_type": field_type, "value": value}))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"device_id": "d", "records": [{"ts": 1, "field": "v", "field_type": "float", "value": NaN}]}',
        b'{"device_id": "d", "records": [{"ts": 1, "field": "v", "field_type": "float", "value": 1e400}]}',
        b'{"device_id": "d", "records": [{"ts": 1, "field": "v", "field_type": "float", "value": '
        + b"9" * 400
        + b"}]}",
        b'{"device_id": "d", "records": [{"ts": 1, "field": "v", "field_type": "float", "value": '
        + str(2**64 + 2**11).encode()
        + b"}]}",
        b'{"device_id": "d", "records": [{"ts": 1, "field": "v", "field_type": "float", "value": 1, "value": 2}]}',
        b'{"device_id": "d", "records": [{"ts": 1, "field": "\\ud800", "field_type": "float", "value": 1}]}',
        b'{"device_id": "d", "records": [{"ts": 1, "field": "v", "field_type": "string", "value": "\\udc00"}]}',
        b'\xef\xbb\xbf{"device_id": "d", "records": [{"ts": 1, "field": "v", "field_type": "bool", "value": true}]}',
        '{"device_id": "d", "records": [{"ts": 1, "field": "v", "field_type": "bool", "value": true}]}'.encode(
            "utf-16"
        ),
        b'{"device_id": " ", "records": [{"ts": 1, "field": "v", "field_type": "bool", "value": true}]}',
        b'{"records": [{"ts": 1, "field": "v", "field_type": "bool", "value": true}]}',
        b'{"device_id": "d", "records": []}',
        b'{"device_id": "d", "records": [1, 2]}',
        b'[{"device_id": "d"}]',
        b'{"device_id": "d", "records": [{"ts": 1, "field": "v", "field_type": "bool", "value": true}], "x": NaN}',
    ],
)
def test_bodies_json_loads_reads_otherwise_or_not_at_all(raw):
    judge(raw)


def test_random_mutations_agree():
    rng = random.Random(20261129)
    keys = ("ts", "field", "field_type", "value")
    accepted = 0
    for _ in range(3000):
        batch = []
        for _ in range(rng.randint(1, 4)):
            record = {
                "ts": rng.choice(TS[:5] + TS[11:13]) if rng.random() < 0.7 else rng.choice(TS),
                "field": rng.choice(FIELDS[:2]) if rng.random() < 0.8 else rng.choice(FIELDS),
                "field_type": rng.choice(TYPES[:5]) if rng.random() < 0.9 else rng.choice(TYPES),
                "value": rng.choice(VALUES),
            }
            if rng.random() < 0.6:
                record["value"] = rng.choice(FITTING.get(record["field_type"], VALUES))
            if rng.random() < 0.05:
                del record[rng.choice(keys)]
            if rng.random() < 0.05:
                record["unit"] = "V"
            batch.append(record)
        accepted += judge(body_of(*batch)) is not None
    assert accepted > 300  # the mutations do reach the model path


def test_time_pattern_accepts_only_what_the_server_reads():
    import re

    from api.logbook import timestamps

    pattern = re.compile(TIME_PATTERN)
    for text in ("2020-07-09T10:11:53.811839Z", "9998-12-31T23:59", "1971-01-01T00:00:00-23:59"):
        assert pattern.match(text) and timestamps.parse(text)
    for text in ("1970-01-01T00:00:00+01:00", "2020-02-30T00:00:00Z", "2020-07-09 10:00"):
        assert not pattern.match(text)


def test_read_parameters_come_from_the_model(client):
    operation = client.get("/openapi.json").json["paths"]["/logbook/storage/read/"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert list(parameters) == list(LogbookReadQuery.model_fields)
    required = {name for name, p in parameters.items() if p["required"]}
    assert required == {"device_id", "field", "field_type", "from_utc", "to_utc"}
    assert parameters["from_utc"]["schema"]["pattern"] == TIME_PATTERN
