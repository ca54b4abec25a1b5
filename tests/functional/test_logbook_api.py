"""POST /logbook/storage/write/, GET /logbook/storage/read/ and /fields/ on a real database."""

import pytest

WINDOW = {"from_utc": "2020-07-09T00:00:00Z", "to_utc": "2020-07-10T00:00:00Z"}
POSITIONS = [
    {
        "ts": "2020-07-09T10:11:53.811839Z",
        "field": "track.pos.loc",
        "field_type": "geo_point",
        "value": {"lat": 57.04699, "lon": 9.93909},
    },
    {
        "ts": "2020-07-09T10:11:59.248421Z",
        "field": "track.pos.loc",
        "field_type": "geo_point",
        "value": {"lat": 57.04697, "lon": 9.93808},
    },
]


def volts(n, start_ms=1594289000000, step_ms=1000, field="obd.bat.voltage"):
    return [
        {
            "ts": start_ms + i * step_ms,
            "field": field,
            "field_type": "float",
            "value": 12.0 + i / 10,
        }
        for i in range(n)
    ]


def test_geo_point_rows_are_ts_and_location(logbook):
    response = logbook.write(POSITIONS)
    assert response.status_code == 201
    assert response.json == {"device_id": logbook.device.id, "received": 2, "written": 2}
    rows = logbook.read(field="track.pos.loc", field_type="geo_point", **WINDOW).json
    assert rows == [
        {"ts": "2020-07-09T10:11:53.811839Z", "location": {"lat": 57.04699, "lon": 9.93909}},
        {"ts": "2020-07-09T10:11:59.248421Z", "location": {"lat": 57.04697, "lon": 9.93808}},
    ]


def test_raw_rows_of_every_scalar_type(logbook):
    records = [
        {
            "ts": "2020-07-09T10:00:00Z",
            "field": "v",
            "field_type": "float",
            "value": 13.600000381469727,
        },
        {"ts": "2020-07-09T12:00:00+02:00", "field": "n", "field_type": "long", "value": 2**62},
        {"ts": 1594288800000, "field": "b", "field_type": "bool", "value": True},
        {"ts": "2020-07-09T10:00:00.5Z", "field": "s", "field_type": "string", "value": "fix ✓"},
    ]
    assert logbook.write(records).status_code == 201
    assert logbook.read(field="v", field_type="float", **WINDOW).json == [
        {"ts": "2020-07-09T10:00:00.000000Z", "value": 13.600000381469727}
    ]
    assert logbook.read(field="n", field_type="long", **WINDOW).json == [
        {"ts": "2020-07-09T10:00:00.000000Z", "value": 2**62}
    ]
    assert logbook.read(field="b", field_type="bool", **WINDOW).json == [
        {"ts": "2020-07-09T10:00:00.000000Z", "value": True}
    ]
    assert logbook.read(field="s", field_type="string", **WINDOW).json == [
        {"ts": "2020-07-09T10:00:00.500000Z", "value": "fix ✓"}
    ]


def test_window_is_half_open_and_size_caps_raw_rows(logbook):
    assert logbook.write(volts(10)).status_code == 201
    rows = logbook.read(
        field="obd.bat.voltage",
        field_type="float",
        from_utc="2020-07-09T10:03:21Z",
        to_utc="2020-07-09T10:03:26Z",
    ).json
    assert [r["ts"][17:19] for r in rows] == ["21", "22", "23", "24", "25"]  # 10:03:26 is excluded
    capped = logbook.read(field="obd.bat.voltage", field_type="float", size=3, **WINDOW).json
    assert [r["value"] for r in capped] == [12.0, 12.1, 12.2]  # oldest first


def test_seed_battery_example_shape(logbook):
    assert logbook.write(volts(5)).status_code == 201
    rows = logbook.read(
        field="obd.bat.voltage",
        field_type="float",
        aggregation="avg",
        interval="10m",
        from_utc="2020-07-09T10:00:00.000Z",
        to_utc="2020-07-09T11:00:00.000Z",
    ).json
    assert rows == [
        {"ts": "2020-07-09T10:00:00.000Z", "max_ts": 1594289004000, "value": pytest.approx(12.2)}
    ]


def test_unknown_field_reads_empty_and_fields_lists_the_catalog(logbook):
    assert logbook.write(volts(2) + POSITIONS).status_code == 201
    assert logbook.read(field="nope", field_type="float", **WINDOW).json == []
    response = logbook.fields()
    assert response.status_code == 200
    assert response.json == [
        {"field": "obd.bat.voltage", "field_type": "float"},
        {"field": "track.pos.loc", "field_type": "geo_point"},
    ]


def test_retried_batch_duplicates_nothing(logbook):
    batch = volts(120)
    assert logbook.write(batch).json["written"] == 120
    again = logbook.write(batch)
    assert again.status_code == 201 and again.json == {
        "device_id": logbook.device.id,
        "received": 120,
        "written": 0,
    }
    overlapping = logbook.write(volts(60, start_ms=1594289000000 + 90_000))  # 30 old + 30 new
    assert overlapping.json["written"] == 30
    raw = logbook.read(field="obd.bat.voltage", field_type="float", **WINDOW).json
    assert len(raw) == 150 and len({r["ts"] for r in raw}) == 150
    # the rollups did not count the re-sent samples either
    total = logbook.read(
        field="obd.bat.voltage", field_type="float", aggregation="sum", interval="1d", **WINDOW
    ).json
    assert total[0]["value"] == pytest.approx(
        sum(12.0 + i / 10 for i in range(120)) + sum(12.0 + i / 10 for i in range(30, 60))
    )
    count = logbook.read(
        field="obd.bat.voltage", field_type="float", aggregation="avg", interval="1h", **WINDOW
    ).json
    assert count[0]["max_ts"] == 1594289000000 + 149_000


def test_first_value_written_wins(logbook):
    assert (
        logbook.write(
            [{"ts": 1594289000000, "field": "v", "field_type": "float", "value": 1.0}]
        ).json["written"]
        == 1
    )
    assert (
        logbook.write(
            [{"ts": 1594289000000, "field": "v", "field_type": "float", "value": 2.0}]
        ).json["written"]
        == 0
    )
    assert [r["value"] for r in logbook.read(field="v", field_type="float", **WINDOW).json] == [1.0]


@pytest.mark.parametrize(
    "record,key,fragment",
    [
        ({"ts": "yesterday", "field": "v", "field_type": "float", "value": 1}, "ts", "ISO-8601"),
        ({"field": "v", "field_type": "float", "value": 1}, "ts", "required"),
        ({"ts": 1, "field": "", "field_type": "float", "value": 1}, "field", "field name"),
        (
            {"ts": 1, "field": "v", "field_type": "double", "value": 1},
            "field_type",
            "expected one of",
        ),
        ({"ts": 1, "field": "v", "field_type": "float", "value": "13.5"}, "value", "number"),
        ({"ts": 1, "field": "v", "field_type": "long", "value": 1.5}, "value", "integer"),
        ({"ts": 1, "field": "v", "field_type": "bool", "value": 1}, "value", "true or false"),
        ({"ts": 1, "field": "v", "field_type": "string", "value": 5}, "value", "string"),
        (
            {"ts": 1, "field": "v", "field_type": "geo_point", "value": {"lat": 91, "lon": 0}},
            "value",
            "lat",
        ),
        ({"ts": 1, "field": "v", "field_type": "geo_point", "value": [57, 9]}, "value", "lat"),
        ({"ts": 1, "field": "v", "field_type": "float"}, "value", "required"),
        ({"ts": -5, "field": "v", "field_type": "float", "value": 1}, "ts", "range"),
        ({"ts": 10**30, "field": "v", "field_type": "float", "value": 1}, "ts", "range"),
        ({"ts": 1, "field": "v\x00", "field_type": "float", "value": 1}, "field", "NUL"),
        ({"ts": 1, "field": "v", "field_type": "string", "value": "a\x00b"}, "value", "NUL"),
        ({"ts": 1, "field": "v", "field_type": "long", "value": 2**63}, "value", "64-bit"),
        (
            {"ts": 1, "field": "v", "field_type": "float", "value": 1, "unit": "V"},
            "non_field_errors",
            "unknown keys",
        ),
    ],
)
def test_a_bad_record_is_reported_by_index_and_nothing_is_written(logbook, record, key, fragment):
    batch = volts(5)
    batch.insert(3, record)
    response = logbook.write(batch)
    assert response.status_code == 400
    assert list(response.json) == ["records"] and list(response.json["records"]) == ["3"]
    assert fragment in " ".join(response.json["records"]["3"][key])
    assert logbook.read(field="obd.bat.voltage", field_type="float", **WINDOW).json == []
    assert logbook.fields().json == []


def test_type_clash_with_the_catalog_is_a_400_and_nothing_is_written(logbook):
    assert logbook.write(volts(1)).status_code == 201
    batch = volts(3, start_ms=1594289100000)
    batch.append(
        {"ts": 1594289200000, "field": "obd.bat.voltage", "field_type": "long", "value": 3}
    )
    batch.append({"ts": 1594289200000, "field": "new.one", "field_type": "float", "value": 3})
    response = logbook.write(batch)
    assert response.status_code == 400
    assert response.json == {
        "records": {
            "3": {"field_type": ["field 'obd.bat.voltage' of this device is float, not long"]}
        }
    }
    assert len(logbook.read(field="obd.bat.voltage", field_type="float", **WINDOW).json) == 1
    assert [f["field"] for f in logbook.fields().json] == [
        "obd.bat.voltage"
    ]  # new.one was rolled back


@pytest.mark.parametrize(
    "body,key",
    [
        ({"records": []}, "device_id"),
        ({"device_id": "DEVICE"}, "records"),
        ({"device_id": "DEVICE", "records": []}, "records"),
        ({"device_id": "DEVICE", "records": {"ts": 1}}, "records"),
    ],
)
def test_write_body_errors(logbook, client, body, key):
    if body.get("device_id") == "DEVICE":
        body["device_id"] = logbook.device.id
    response = client.post("/logbook/storage/write/", json=body, headers=logbook.token.headers)
    assert response.status_code == 400 and key in response.json


BASE = {"field": "obd.bat.voltage", "field_type": "float", **WINDOW}


@pytest.mark.parametrize(
    "change,key,fragment",
    [
        ({"device_id": None}, "device_id", "required"),
        ({"field": None}, "field", "required"),
        ({"field_type": None}, "field_type", "required"),
        ({"from_utc": None}, "from_utc", "required"),
        ({"to_utc": None}, "to_utc", "required"),
        ({"from_utc": "2020-13-45"}, "from_utc", "ISO-8601"),
        ({"to_utc": "noon"}, "to_utc", "ISO-8601"),
        ({"from_utc": "2020-07-11T00:00:00Z"}, "from_utc", "after to_utc"),
        ({"field_type": "double"}, "field_type", "not a field type"),
        ({"aggregation": "median", "interval": "1h"}, "aggregation", "not an aggregation"),
        ({"aggregation": "avg"}, "interval", "required"),
        ({"aggregation": "avg", "interval": "10 minutes"}, "interval", "not an interval"),
        ({"aggregation": "avg", "interval": "0s"}, "interval", "not an interval"),
        ({"aggregation": "avg", "interval": "1M"}, "interval", "not an interval"),
        ({"aggregation": "avg", "interval": "1s"}, "interval", "86400 buckets"),
        (
            {
                "aggregation": "avg",
                "interval": "1h",
                "field": "track.pos.loc",
                "field_type": "geo_point",
            },
            "aggregation",
            "geo_point field cannot be aggregated",
        ),
        (
            {"aggregation": "sum", "interval": "1h", "field_type": "string"},
            "aggregation",
            "string field cannot be aggregated",
        ),
        ({"size": "0"}, "size", "integer"),
        ({"size": "many"}, "size", "integer"),
        ({"field_type": "long"}, "field_type", "is float, not long"),
    ],
)
def test_read_errors_name_the_parameter(logbook, change, key, fragment):
    assert logbook.write(volts(3)).status_code == 201
    params = {"device_id": logbook.device.id, **BASE, **change}
    params = {k: v for k, v in params.items() if v is not None}
    response = logbook.client.get(
        "/logbook/storage/read/", query_string=params, headers=logbook.token.headers
    )
    assert response.status_code == 400, response.json
    assert fragment in " ".join(response.json[key]), response.json


def test_exactly_ten_thousand_buckets_is_allowed(logbook):
    assert logbook.write(volts(3)).status_code == 201
    response = logbook.read(
        aggregation="avg",
        interval="1s",
        from_utc="2020-07-09T10:00:00Z",
        to_utc="2020-07-09T12:46:40Z",
        field="obd.bat.voltage",
        field_type="float",
    )
    assert response.status_code == 200 and len(response.json) == 3


def test_unencoded_plus_offset_in_query_string(logbook, client):
    assert logbook.write(volts(3)).status_code == 201
    url = (
        f"/logbook/storage/read/?device_id={logbook.device.id}&field=obd.bat.voltage&field_type=float"
        "&from_utc=2020-07-09T12:03:20+02:00&to_utc=2020-07-09T12:03:22+02:00"
    )
    rows = client.get(url, headers=logbook.token.headers).json
    assert [r["ts"] for r in rows] == ["2020-07-09T10:03:20.000000Z", "2020-07-09T10:03:21.000000Z"]


def test_device_token_writes_only_its_own_device(
    logbook, api_factory, account, device, device_token
):
    assert logbook.write(volts(1), token=device_token).status_code == 201
    other = api_factory.device(account)
    response = logbook.write(volts(1), device=other, token=device_token)
    assert response.status_code == 403
    # reading is for operators (user tokens)
    assert logbook.read(token=device_token, **BASE).status_code == 403


def test_another_accounts_device_is_not_found(logbook, api_factory):
    foreign = api_factory.device()  # a device of another account
    assert logbook.write(volts(1), device=foreign).status_code == 404
    assert logbook.write(volts(1), device="no-such-device").status_code == 404
    assert logbook.write(volts(1), device="nul\x00device").status_code == 404
    assert logbook.read(**{**BASE, "device_id": foreign.id}).status_code == 404
    assert logbook.fields(device_id=foreign.id).status_code == 404
    foreign_user = api_factory.token("user", account=api_factory.account())
    assert logbook.read(token=foreign_user, **BASE).status_code == 404


def test_without_a_token_is_401(logbook, client):
    response = client.post(
        "/logbook/storage/write/", json={"device_id": logbook.device.id, "records": volts(1)}
    )
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "APIToken"
    assert client.get("/logbook/storage/read/", query_string=BASE).status_code == 401


def test_malformed_json_is_a_400_not_a_500(logbook, client):
    response = client.post(
        "/logbook/storage/write/",
        data="{nope",
        content_type="application/json",
        headers=logbook.token.headers,
    )
    assert response.status_code == 400


def test_openapi_documents_the_logbook(client):
    document = client.get("/openapi.json").json
    for path in ("/logbook/storage/write/", "/logbook/storage/read/", "/logbook/storage/fields/"):
        assert path in document["paths"]
    parameters = {
        p["name"] for p in document["paths"]["/logbook/storage/read/"]["get"]["parameters"]
    }
    assert {
        "device_id",
        "field",
        "field_type",
        "from_utc",
        "to_utc",
        "aggregation",
        "interval",
        "size",
    } <= parameters
    assert "LogbookRecord" in document["components"]["schemas"]
