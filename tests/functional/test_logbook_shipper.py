"""Device spool + sender against the real API in its own process, stopped and started."""

import pytest

from berth.telemetry.sender import Sender, drain
from berth.telemetry.spool import Spool

WINDOW = {"from_utc": "2021-05-01T00:00:00Z", "to_utc": "2021-05-02T00:00:00Z"}
T0 = 1619827200000  # 2021-05-01T00:00:00Z


def samples(first, count):
    return [
        {
            "ts": T0 + i * 1000,
            "field": "obd.bat.voltage",
            "field_type": "float",
            "value": 12 + i / 1000,
        }
        for i in range(first, first + count)
    ]


def stored(logbook):
    return logbook.read(field="obd.bat.voltage", field_type="float", size=100_000, **WINDOW).json


def stored_sum(logbook):
    rows = logbook.read(
        field="obd.bat.voltage", field_type="float", aggregation="sum", interval="1d", **WINDOW
    ).json
    return rows[0]["value"] if rows else 0


def test_offline_spooling_then_drain_delivers_exactly_the_samples(
    logbook, logbook_server, device, device_token, tmp_path
):
    spool = Spool(str(tmp_path / "spool.sqlite3"))
    sender = Sender(logbook_server.url, device_token.token, device.id, timeout=5)
    spool.add(samples(0, 1500))
    logbook_server.stop()  # the car drives into a tunnel
    assert drain(spool, sender, batch_size=400) == 0
    spool.add(samples(1500, 700))
    assert len(Spool(spool.path)) == 2200  # durable: a fresh handle on the file sees everything
    assert stored(logbook) == []

    logbook_server.start()
    assert drain(spool, sender, batch_size=400) == 2200
    assert len(spool) == 0
    rows = stored(logbook)
    assert [r["value"] for r in rows] == [s["value"] for s in samples(0, 2200)]
    assert stored_sum(logbook) == pytest.approx(sum(s["value"] for s in samples(0, 2200)))


def test_crash_between_send_and_acknowledgement_resends_without_doubling(
    logbook, logbook_server, device, device_token, tmp_path
):
    spool = Spool(str(tmp_path / "spool.sqlite3"))
    sender = Sender(logbook_server.url, device_token.token, device.id, timeout=5)
    spool.add(samples(0, 900))
    # the first batch reaches the API, then the device dies before removing it from the spool
    first = [record for _, record in spool.oldest(500)]
    assert sender.send(first)["written"] == 500
    assert len(spool) == 900

    assert drain(spool, sender, batch_size=500) == 900  # re-sends the 500, then the rest
    assert len(spool) == 0
    rows = stored(logbook)
    assert len(rows) == 900 and len({r["ts"] for r in rows}) == 900
    assert stored_sum(logbook) == pytest.approx(sum(s["value"] for s in samples(0, 900)))


def test_records_the_api_rejects_for_good_do_not_block_the_spool(
    logbook, logbook_server, device, device_token, tmp_path
):
    spool = Spool(str(tmp_path / "spool.sqlite3"))
    spool.add(samples(0, 3))
    spool.add(
        [{"ts": T0 + 5000, "field": "obd.bat.voltage", "field_type": "float", "value": "n/a"}]
    )
    spool.add(samples(10, 3))
    sender = Sender(logbook_server.url, device_token.token, device.id, timeout=5)
    assert drain(spool, sender, batch_size=100) == 6
    assert len(spool) == 0
    assert len(stored(logbook)) == 6


def test_a_wrong_token_keeps_the_records(logbook_server, device, tmp_path):
    spool = Spool(str(tmp_path / "spool.sqlite3"))
    spool.add(samples(0, 10))
    assert drain(spool, Sender(logbook_server.url, "not-a-token", device.id, timeout=5)) == 0
    assert len(spool) == 10
