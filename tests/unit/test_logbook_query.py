"""Read-parameter parsing, time handling and the aggregation plan (no database)."""

import pytest

from api.logbook import aggregate, query, timestamps
from api.logbook.tables import HOUR_US, MINUTE_US


@pytest.mark.parametrize(
    "text,us",
    [
        ("500ms", 500_000),
        ("30s", 30_000_000),
        ("10m", 600_000_000),
        ("1h", 3_600_000_000),
        ("1d", 86_400_000_000),
        ("2w", 1_209_600_000_000),
    ],
)
def test_intervals(text, us):
    assert query.parse_interval(text) == us


@pytest.mark.parametrize("text", ["", "10", "m", "0s", "-1m", "1.5h", "10 m", "1M", "1y"])
def test_bad_intervals(text):
    with pytest.raises(ValueError):
        query.parse_interval(text)


@pytest.mark.parametrize(
    "value,us",
    [
        ("2020-07-09T10:11:53.811839Z", 1594289513811839),
        ("2020-07-09T12:11:53.811839+02:00", 1594289513811839),
        ("2020-07-09T12:11:53.811839 02:00", 1594289513811839),  # '+' decoded to a space
        ("2020-07-09T10:11:53.811839", 1594289513811839),  # naive = UTC
        (1594289513811, 1594289513811000),
        (1594289513811.5, 1594289513811500),
        ("1594289513811", 1594289513811000),
    ],
)
def test_timestamps(value, us):
    assert timestamps.parse(value) == us


@pytest.mark.parametrize(
    "value", ["soon", True, None, [], float("nan"), -1, "1969-12-31T23:59:59Z"]
)
def test_bad_timestamps(value):
    with pytest.raises(timestamps.TimeError):
        timestamps.parse(value)


def test_formats():
    assert timestamps.iso_ms(1594289021415999) == "2020-07-09T10:03:41.415Z"
    assert timestamps.iso_us(1594289513811839) == "2020-07-09T10:11:53.811839Z"
    assert timestamps.epoch_ms(1594289021415999) == 1594289021415


def test_parse_normalises_aggregation_names():
    args = {
        "device_id": "d",
        "field": "f",
        "field_type": "float",
        "from_utc": "2020-01-01T00:00:00Z",
        "to_utc": "2020-01-01T10:00:00Z",
        "aggregation": "AVERAGE",
        "interval": "1h",
    }
    parsed, errors = query.parse(args)
    assert errors == {}
    assert (
        parsed.aggregation == "avg"
        and parsed.interval_us == HOUR_US
        and parsed.size == query.DEFAULT_SIZE
    )
    parsed, _ = query.parse({**args, "aggregation": "None"})
    assert parsed.aggregation is None and parsed.interval_us is None


def test_all_missing_parameters_are_named_at_once():
    _, errors = query.parse({})
    assert set(errors) == set(query.REQUIRED)


def test_plan_uses_only_rollups_that_fit_in_an_interval():
    assert aggregate.plan_levels(30 * 1_000_000) == [(aggregate.RAW, None)]
    assert aggregate.plan_levels(7 * MINUTE_US) == [(MINUTE_US, None), (aggregate.RAW, MINUTE_US)]
    assert aggregate.plan_levels(HOUR_US) == [
        (HOUR_US, None),
        (10 * MINUTE_US, HOUR_US),
        (MINUTE_US, 10 * MINUTE_US),
        (aggregate.RAW, MINUTE_US),
    ]
