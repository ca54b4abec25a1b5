"""The device spool (a real SQLite file) and the shipper loop's plumbing."""

import pytest

from berth.telemetry import shipper
from berth.telemetry.spool import Spool, SpoolError


def rec(i):
    return {"ts": 1000 + i, "field": "f", "field_type": "long", "value": i}


def test_fifo_and_durable(tmp_path):
    path = str(tmp_path / "cache" / "spool.sqlite3")
    spool = Spool(path)
    spool.add([rec(i) for i in range(5)])
    spool.add([rec(i) for i in range(5, 8)])
    again = Spool(path)  # e.g. after a reboot
    batch = again.oldest(3)
    assert [r["value"] for _, r in batch] == [0, 1, 2]
    again.remove([row_id for row_id, _ in batch])
    assert [r["value"] for _, r in spool.oldest(10)] == [3, 4, 5, 6, 7]
    assert len(spool) == 5


def test_a_bad_record_spools_nothing_of_its_batch(tmp_path):
    spool = Spool(str(tmp_path / "s.sqlite3"))
    with pytest.raises(SpoolError, match="record 1: missing value"):
        spool.add([rec(0), {"field": "f", "field_type": "long"}])
    assert len(spool) == 0


def test_samples_without_ts_are_stamped_when_taken(tmp_path):
    spool = Spool(str(tmp_path / "s.sqlite3"))
    spool.add([{"field": "f", "field_type": "bool", "value": True}])
    ((_, record),) = spool.oldest(1)
    assert isinstance(record["ts"], int) and record["ts"] > 1_600_000_000_000


def test_event_data_shapes():
    assert shipper.records_of({"records": [rec(1)], "_stamp": "x"}) == [rec(1)]
    assert shipper.records_of({**rec(2), "_stamp": "x"}) == [rec(2)]
    with pytest.raises(SpoolError):
        shipper.records_of({"nothing": 1})


def test_refreshing_config_retries_while_incomplete_and_survives_errors():
    answers = iter(
        [RuntimeError("master down"), {"url": "u"}, {"url": "u", "token": "t", "device_id": "d"}]
    )

    def fetch():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    config = shipper.RefreshingConfig(fetch, max_age=3600, retry=0)
    assert config() == {}
    assert config() == {"url": "u"}
    assert config() == {"url": "u", "token": "t", "device_id": "d"}
    assert config() == {
        "url": "u",
        "token": "t",
        "device_id": "d",
    }  # complete: cached, not fetched again


def test_run_spools_events_and_does_not_send_without_config(tmp_path):
    spool = Spool(str(tmp_path / "s.sqlite3"))
    events = iter([{"records": [rec(1), rec(2)]}, {"bad": 1}, None])
    turns = iter([True, True, True, False])
    shipper.run(
        spool,
        "unit-1",
        lambda: {},
        lambda timeout: next(events),
        interval=0,
        keep_running=lambda: next(turns),
    )
    assert [r["value"] for _, r in spool.oldest(10)] == [1, 2]
