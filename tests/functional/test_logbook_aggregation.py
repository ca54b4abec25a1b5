"""Aggregated reads checked against values computed here, independently, from the samples written."""

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

UTC = UTC
START = datetime(2020, 7, 9, 0, 0, tzinfo=UTC)


def epoch_ms(moment):
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def make_samples(seed=5, hours=50, gap=(20, 23)):
    """Irregular samples every 0.2..9 s over ``hours``, none in the ``gap`` hours (empty buckets)."""
    rng = random.Random(seed)
    out, t = [], START
    end = START + timedelta(hours=hours)
    while t < end:
        t += timedelta(milliseconds=rng.randint(200, 9000))
        if gap[0] <= (t - START) / timedelta(hours=1) < gap[1]:
            continue
        out.append((t, round(rng.uniform(11.0, 14.5), 4), rng.randint(-(2**40), 2**40)))
    return out


def expected(samples, start, end, interval, aggregation, pick):
    groups = {}
    for moment, *values in samples:
        if start <= moment < end:
            groups.setdefault((moment - start) // interval, []).append((moment, pick(values)))
    rows = []
    for k in sorted(groups):
        values = [v for _, v in groups[k]]
        value = {
            "avg": sum(values) / len(values),
            "min": min(values),
            "max": max(values),
            "sum": sum(values),
        }[aggregation]
        bucket = (start + k * interval).astimezone(UTC)
        rows.append(
            {
                "ts": bucket.strftime("%Y-%m-%dT%H:%M:%S.") + f"{bucket.microsecond // 1000:03d}Z",
                "max_ts": epoch_ms(max(m for m, _ in groups[k])),
                "value": value,
            }
        )
    return rows


@pytest.fixture
def loaded(logbook):
    samples = make_samples()
    records = []
    for moment, volts, counter in samples:
        ts = moment.isoformat().replace("+00:00", "Z")
        records.append(
            {"ts": ts, "field": "obd.bat.voltage", "field_type": "float", "value": volts}
        )
        records.append(
            {"ts": epoch_ms(moment), "field": "odo.counter", "field_type": "long", "value": counter}
        )
    for start in range(0, len(records), 20_000):
        response = logbook.write(records[start : start + 20_000])
        assert response.status_code == 201, response.json
    return samples


WINDOWS = [
    # from_utc, to_utc, interval -- (alignment, partial last bucket, empty buckets, offsets)
    ("2020-07-09T00:00:00Z", "2020-07-11T02:00:00Z", "1h"),
    ("2020-07-09T00:00:00.000Z", "2020-07-09T10:00:00.000Z", "1h"),  # 10 h at 1h -> 10 buckets
    (
        "2020-07-09T03:17:29.250Z",
        "2020-07-10T05:00:00Z",
        "1h",
    ),  # unaligned start, partial last bucket
    (
        "2020-07-09T12:07:00+02:00",
        "2020-07-10T01:00:00+01:00",
        "10m",
    ),  # offsets in from_utc / to_utc
    ("2020-07-09T10:00:00-05:30", "2020-07-10T04:13:00Z", "7m"),
    ("2020-07-09T06:00:01.5Z", "2020-07-09T09:00:00Z", "45s"),
    ("2020-07-09T00:00:00Z", "2020-07-11T00:00:00Z", "3h"),  # crosses the empty hours 20..23
    ("2020-07-09T05:30:00Z", "2020-07-11T05:30:00Z", "1d"),  # two days, the second one partial
    ("2020-07-09T01:00:00Z", "2020-07-09T01:02:00Z", "500ms"),
    ("2020-07-09T00:59:30Z", "2020-07-10T00:00:00Z", "90m"),
]


def parse(text):
    return datetime.fromisoformat(text)


def test_every_aggregation_matches_an_independent_computation(logbook, loaded):
    # one load, many windows: loading is the slow part
    for from_utc, to_utc, interval in WINDOWS:
        check_window(logbook, loaded, from_utc, to_utc, interval)


def check_window(logbook, loaded, from_utc, to_utc, interval):
    step = {
        "ms": timedelta(milliseconds=1),
        "s": timedelta(seconds=1),
        "m": timedelta(minutes=1),
        "h": timedelta(hours=1),
        "d": timedelta(days=1),
    }
    unit = "ms" if interval.endswith("ms") else interval[-1]
    interval_td = int(interval[: -len(unit)]) * step[unit]
    for spelled, aggregation in [
        ("avg", "avg"),
        ("AVERAGE", "avg"),
        ("Min", "min"),
        ("max", "max"),
        ("SUM", "sum"),
    ]:
        for field, field_type, pick in [
            ("obd.bat.voltage", "float", lambda v: v[0]),
            ("odo.counter", "long", lambda v: v[1]),
        ]:
            response = logbook.read(
                field=field,
                field_type=field_type,
                from_utc=from_utc,
                to_utc=to_utc,
                aggregation=spelled,
                interval=interval,
            )
            assert response.status_code == 200, response.json
            rows = response.json
            want = expected(loaded, parse(from_utc), parse(to_utc), interval_td, aggregation, pick)
            assert rows, (from_utc, to_utc, interval)
            assert [r["ts"] for r in rows] == [w["ts"] for w in want], (
                from_utc,
                interval,
                spelled,
                field,
            )
            assert [r["max_ts"] for r in rows] == [w["max_ts"] for w in want]
            for row, wanted in zip(rows, want, strict=False):
                assert row["value"] == pytest.approx(wanted["value"], rel=1e-12), (
                    from_utc,
                    interval,
                    spelled,
                    row,
                )
                if field_type == "long" and aggregation != "avg":
                    assert isinstance(row["value"], int)


def test_ten_hours_at_one_hour_gives_ten_buckets_aligned_to_from_utc(logbook, loaded):
    rows = logbook.read(
        field="obd.bat.voltage",
        field_type="float",
        from_utc="2020-07-09T00:30:00Z",
        to_utc="2020-07-09T10:30:00Z",
        aggregation="avg",
        interval="1h",
    ).json
    assert [r["ts"] for r in rows] == [f"2020-07-09T{h:02d}:30:00.000Z" for h in range(10)]


def test_empty_buckets_are_omitted(logbook, loaded):
    rows = logbook.read(
        field="obd.bat.voltage",
        field_type="float",
        from_utc="2020-07-09T18:00:00Z",
        to_utc="2020-07-10T01:00:00Z",
        aggregation="max",
        interval="1h",
    ).json
    hours = [r["ts"][11:13] for r in rows]
    assert hours == ["18", "19", "23", "00"]  # the data has nothing from 20:00 to 23:00


def test_bool_fields_aggregate_as_zero_and_one(logbook):
    flags = [True, False, True, True, False, True]
    records = [
        {
            "ts": f"2021-01-01T00:00:{i * 10:02d}Z",
            "field": "ign.on",
            "field_type": "bool",
            "value": flag,
        }
        for i, flag in enumerate(flags)
    ]
    assert logbook.write(records).status_code == 201
    window = dict(
        field="ign.on",
        field_type="bool",
        from_utc="2021-01-01T00:00:00Z",
        to_utc="2021-01-01T00:01:00Z",
        interval="1m",
    )
    assert logbook.read(aggregation="sum", **window).json[0]["value"] == 4
    assert logbook.read(aggregation="avg", **window).json[0]["value"] == pytest.approx(4 / 6)
    assert logbook.read(aggregation="min", **window).json[0]["value"] is False
    assert logbook.read(aggregation="max", **window).json[0]["value"] is True


def test_large_window_reads_hour_rollups_with_exact_edges(logbook):
    """30 days at one sample a minute; unaligned edges must still be exact."""
    base = datetime(2022, 3, 1, tzinfo=UTC)
    samples = [
        (base + timedelta(minutes=i, seconds=i % 60), math.sin(i / 97.0) * 100)
        for i in range(30 * 24 * 60)
    ]
    records = [
        {"ts": epoch_ms(m), "field": "temp", "field_type": "float", "value": v} for m, v in samples
    ]
    for start in range(0, len(records), 20_000):
        assert logbook.write(records[start : start + 20_000]).status_code == 201
    for from_utc, to_utc in [
        ("2022-03-01T00:00:00Z", "2022-03-31T00:00:00Z"),
        ("2022-03-02T07:13:31.5Z", "2022-03-29T22:41:07Z"),
    ]:
        rows = logbook.read(
            field="temp",
            field_type="float",
            from_utc=from_utc,
            to_utc=to_utc,
            aggregation="sum",
            interval="1h",
        ).json
        want = expected(
            [(m, v) for m, v in samples],
            parse(from_utc),
            parse(to_utc),
            timedelta(hours=1),
            "sum",
            lambda v: v[0],
        )
        assert len(rows) == len(want) > 600
        for row, wanted in zip(rows, want, strict=False):
            assert row["ts"] == wanted["ts"] and row["max_ts"] == wanted["max_ts"]
            assert row["value"] == pytest.approx(wanted["value"], rel=1e-9, abs=1e-9)
