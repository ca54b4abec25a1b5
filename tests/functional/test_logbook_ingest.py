"""The write path's shortcuts keep its guarantees (real database; SQLite, or PostgreSQL with BERTH_TEST_DATABASE_URL).

* A statement whose rows all went in is not asked for them again (no RETURNING); one that skipped some
  is rolled back to its savepoint and re-run with RETURNING: rollups count exactly the rows inserted,
  across several statements per batch, out-of-order samples and duplicates inside a batch.
* The savepoints never commit: a write rolled back by its caller leaves nothing.
* Bodies decoded by orjson give the answers json.loads gave (big integers, NaN, duplicate keys, UTF-16, ...).
"""

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from api.extensions import db
from api.logbook import records, store
from api.logbook.store import MAX_PARAMETERS
from api.logbook.tables import fields, rollups, samples

BASE_MS = 1594252800000  # 2020-07-09T00:00:00Z
ROWS_PER_STATEMENT = MAX_PARAMETERS // 3  # float samples: field_id, ts, value_float


def record(i, value, field="v"):
    return {"ts": BASE_MS + i * 1000, "field": field, "field_type": "float", "value": value}


def iso_ms(ms):
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def expected(stored, interval_s, aggregation, start_ms=BASE_MS, end_ms=None):
    """Buckets computed here from {ts_ms: value}, aligned to start_ms."""
    groups = {}
    for ts, value in sorted(stored.items()):
        if ts >= start_ms and (end_ms is None or ts < end_ms):
            groups.setdefault((ts - start_ms) // (interval_s * 1000), []).append((ts, value))
    rows = []
    for k in sorted(groups):
        values = [v for _, v in groups[k]]
        value = {
            "avg": sum(values) / len(values),
            "min": min(values),
            "max": max(values),
            "sum": sum(values),
        }[aggregation]
        rows.append(
            {
                "ts": iso_ms(start_ms + k * interval_s * 1000),
                "max_ts": groups[k][-1][0],
                "value": value,
            }
        )
    return rows


def check_reads(logbook, stored, field="v"):
    last = max(stored)
    window = {"from_utc": iso_ms(BASE_MS), "to_utc": iso_ms(last + 1000)}
    raw = logbook.read(field=field, field_type="float", size=100_000, **window).json
    assert [(r["ts"], r["value"]) for r in raw] == [
        (iso_ms(ts)[:-1] + "000Z", value) for ts, value in sorted(stored.items())
    ]
    for aggregation in ("avg", "min", "max", "sum"):
        for interval_s, start_ms in (
            (60, BASE_MS),
            (600, BASE_MS),
            (3600, BASE_MS),
            (420, BASE_MS + 17_500),
        ):
            params = {"from_utc": iso_ms(start_ms), "to_utc": window["to_utc"]}
            rows = logbook.read(
                field=field,
                field_type="float",
                aggregation=aggregation,
                interval=f"{interval_s}s",
                **params,
            ).json
            want = expected(stored, interval_s, aggregation, start_ms)
            assert [(r["ts"], r["max_ts"]) for r in rows] == [(w["ts"], w["max_ts"]) for w in want]
            for row, wanted in zip(rows, want, strict=False):
                assert row["value"] == pytest.approx(wanted["value"], rel=1e-12, abs=1e-9)


def test_overlapping_shuffled_batches_over_several_statements_count_each_sample_once(logbook):
    rng = random.Random(7)
    n = 2 * ROWS_PER_STATEMENT + 500  # three statements
    first = [record(i, round(rng.uniform(11, 14), 4)) for i in range(n)]
    response = logbook.write(first)
    assert response.status_code == 201 and response.json["written"] == n
    stored = {r["ts"]: r["value"] for r in first}

    # half old (other values: the first written wins), half new, shuffled, and new ones sent twice in the batch
    second = [record(i, round(rng.uniform(0, 5), 4)) for i in range(n // 2, n + n // 2)]
    repeats = [
        record(i, -1.0) for i in range(n, n + 300)
    ]  # same ts as new ones, later in the batch: skipped
    batch = second + repeats
    rng.shuffle(batch)
    new_first = {}
    for r in batch:  # the first occurrence in the batch of a new ts is the one stored
        if r["ts"] not in stored:
            new_first.setdefault(r["ts"], r["value"])
    response = logbook.write(batch)
    assert response.status_code == 201
    assert response.json == {
        "device_id": logbook.device.id,
        "received": len(batch),
        "written": len(new_first),
    }
    stored.update(new_first)
    check_reads(logbook, stored)

    again = logbook.write(batch)  # a retry changes nothing
    assert again.json["written"] == 0
    check_reads(logbook, stored)

    # a first statement all new, a second one all old
    third = [record(i, 3.5) for i in range(n + n // 2, n + n // 2 + ROWS_PER_STATEMENT)] + first[
        :50
    ]
    assert logbook.write(third).json["written"] == ROWS_PER_STATEMENT
    stored.update({r["ts"]: r["value"] for r in third[:ROWS_PER_STATEMENT]})
    check_reads(logbook, stored)


def test_new_samples_out_of_order_and_interleaved_fields(logbook):
    rng = random.Random(11)
    a = [record(i, round(rng.uniform(-50, 50), 3), field="a") for i in range(0, 7200, 3)]
    b = [record(i, round(rng.uniform(0, 1), 5), field="b") for i in range(7200)]
    batch = a + b
    rng.shuffle(batch)
    response = logbook.write(batch)
    assert response.status_code == 201 and response.json["written"] == len(batch)
    check_reads(logbook, {r["ts"]: r["value"] for r in a}, field="a")
    check_reads(logbook, {r["ts"]: r["value"] for r in b}, field="b")


def test_savepoints_do_not_commit_a_write_its_caller_rolls_back(app, device):
    """The insert's SAVEPOINT/RELEASE runs inside the request's transaction: a rollback undoes everything,
    on the all-new path and on the re-run-with-RETURNING path alike."""
    with app.app_context():
        batch, errors = records.validate(
            [record(i, 1.0 + i) for i in range(ROWS_PER_STATEMENT + 10)]
        )
        assert not errors
        assert store.write(db.session.connection(), device.id, batch) == ROWS_PER_STATEMENT + 10
        db.session.commit()

        def counts():
            return [
                db.session.scalar(select(func.count()).select_from(table))
                for table in (fields, samples, rollups)
            ]

        before = counts()
        batch, errors = records.validate(
            [record(i, 2.0) for i in range(ROWS_PER_STATEMENT, 3 * ROWS_PER_STATEMENT)]
            + [record(0, 5.0, field="w")]
        )
        assert not errors
        assert (
            store.write(db.session.connection(), device.id, batch)
            == 2 * ROWS_PER_STATEMENT - 10 + 1
        )
        db.session.rollback()
        assert counts() == before
        sums = db.session.scalars(
            select(rollups.c.sum).where(rollups.c.width == 3_600_000_000)
        ).all()
        assert sum(sums) == pytest.approx(sum(1.0 + i for i in range(ROWS_PER_STATEMENT + 10)))


def post(logbook, body):
    return logbook.client.post(
        "/logbook/storage/write/",
        data=body,
        content_type="application/json",
        headers=logbook.token.headers,
    )


@pytest.mark.parametrize(
    "value,field_type,fragment",
    [
        ("-9223372036854775809", "long", "64-bit"),  # orjson alone would read -2**63: in range
        ("18446744073709551616", "long", "64-bit"),
        (
            "NaN",
            "float",
            "finite number",
        ),  # json.loads accepts the literal; a sample must be finite
        ("Infinity", "float", "finite number"),
        ("-1e400", "float", "finite number"),
        ('"a\\ud800"', "string", "lone surrogates"),
    ],
)
def test_literals_orjson_reads_otherwise_are_judged_as_before(logbook, value, field_type, fragment):
    body = (
        f'{{"device_id": "{logbook.device.id}", "records": [{{"ts": {BASE_MS}, "field": "x", '
        f'"field_type": "{field_type}", "value": {value}}}]}}'
    )
    response = post(logbook, body.encode())
    assert response.status_code == 400
    assert fragment in response.json["records"]["0"]["value"][0]
    assert logbook.fields().json == []


@pytest.mark.parametrize("field_type", ["float", "geo_point"])
def test_an_integer_too_large_for_a_float_is_a_400(logbook, field_type):
    """400 digits: json.loads reads an int that no float can hold (this was a 500)."""
    big = "9" * 400
    value = big if field_type == "float" else f'{{"lat": {big}, "lon": 0}}'
    body = (
        f'{{"device_id": "{logbook.device.id}", "records": [{{"ts": {BASE_MS}, "field": "x", '
        f'"field_type": "{field_type}", "value": {value}}}]}}'
    )
    response = post(logbook, body.encode())
    assert response.status_code == 400, response.data[:200]
    assert list(response.json["records"]["0"]) == ["value"]
    assert logbook.fields().json == []


def test_longs_at_the_64_bit_edges_are_stored_exactly(logbook):
    body = (
        f'{{"device_id": "{logbook.device.id}", "records": ['
        f'{{"ts": {BASE_MS}, "field": "n", "field_type": "long", "value": -9223372036854775808}},'
        f'{{"ts": {BASE_MS + 1}, "field": "n", "field_type": "long", "value": 9223372036854775807}}]}}'
    )
    assert post(logbook, body.encode()).status_code == 201
    rows = logbook.read(
        field="n", field_type="long", from_utc=iso_ms(BASE_MS), to_utc=iso_ms(BASE_MS + 2)
    ).json
    assert [r["value"] for r in rows] == [-(2**63), 2**63 - 1]


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe{}",  # not UTF-8, not UTF-16 either
        b'{"device_id": "\xc3"}',
        b'{"device_id": 1,}',
        b'{"records": [01]}',
    ],
)
def test_malformed_bodies_give_the_json_loads_message(logbook, body):
    try:
        json.loads(body)
    except ValueError as exc:
        message = f"JSON parse error - {exc}"
    response = post(logbook, body)
    assert response.status_code == 400 and response.json == {"detail": message}


def test_duplicate_keys_utf16_and_bom_bodies_read_as_before(logbook):
    text = (
        f'{{"device_id": "{logbook.device.id}", "records": ['
        f'{{"ts": {BASE_MS}, "field": "é", "field_type": "float", "value": 1.0, "value": 2.0}}]}}'
    )
    assert post(logbook, text.encode()).json["written"] == 1  # the last "value" counts
    assert (
        post(logbook, text.encode("utf-16")).json["written"] == 0
    )  # same sample, decoded as json.loads did
    assert post(logbook, b"\xef\xbb\xbf" + text.encode()).status_code == 201
    rows = logbook.read(
        field="é", field_type="float", from_utc=iso_ms(BASE_MS), to_utc=iso_ms(BASE_MS + 1)
    ).json
    assert [r["value"] for r in rows] == [2.0]


@pytest.mark.parametrize(
    "record_json,key,fragment",
    [
        (
            '{"ts": 1e306, "field": "v", "field_type": "float", "value": 1}',
            "ts",
            "range",
        ),  # was a 500 (overflow)
        (
            '{"ts": 1, "field": "v\\udc80", "field_type": "float", "value": 1}',
            "field",
            "lone surrogates",
        ),
    ],
)
def test_unstorable_records_are_400s_by_index(logbook, record_json, key, fragment):
    good = json.dumps(record(0, 1.0))
    body = f'{{"device_id": "{logbook.device.id}", "records": [{good}, {record_json}]}}'
    response = post(logbook, body.encode())
    assert response.status_code == 400 and list(response.json["records"]) == ["1"]
    assert fragment in response.json["records"]["1"][key][0]


def test_a_device_id_with_a_lone_surrogate_is_not_found(logbook):
    body = '{"device_id": "x\\ud800", "records": [' + json.dumps(record(0, 1.0)) + "]}"
    assert post(logbook, body.encode()).status_code == 404


def test_strings_and_points_that_need_quoting_round_trip(logbook):
    """PostgreSQL binds each column of a series as one array: its quoting must not change a value."""
    texts = [
        "NULL",
        "",
        " ",
        '"',
        "\\",
        "{a,b}",
        '{"x": [1, 2]}',
        "it's",
        "é😀",
        "a\nb\tc",
        ",",
        "()",
    ]
    batch = [
        {"ts": BASE_MS + i, "field": "note", "field_type": "string", "value": text}
        for i, text in enumerate(texts)
    ]
    batch += [
        {
            "ts": BASE_MS + i,
            "field": "pos",
            "field_type": "geo_point",
            "value": {"lat": -90 + i, "lon": 180 - i * 0.5},
        }
        for i in range(3)
    ]
    assert logbook.write(batch).json["written"] == len(texts) + 3
    window = {"from_utc": iso_ms(BASE_MS), "to_utc": iso_ms(BASE_MS + 100)}
    assert [
        r["value"] for r in logbook.read(field="note", field_type="string", **window).json
    ] == texts
    assert [
        r["location"] for r in logbook.read(field="pos", field_type="geo_point", **window).json
    ] == [{"lat": -90.0, "lon": 180.0}, {"lat": -89.0, "lon": 179.5}, {"lat": -88.0, "lon": 179.0}]
