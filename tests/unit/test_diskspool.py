"""berth.diskspool, the one on-disk queue: order, bounds, crashes, several processes at once; and
the upgrade in place of the three queues it replaced (their older files moved in, nothing lost)."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import sqlite3
import time

import pytest

from berth import diskspool as spool_mod
from berth.diskspool import Spool, SpoolFull
from berth.release import commands
from berth.telemetry.spool import Spool as LogbookSpool

CTX = multiprocessing.get_context("fork")


def make(path, max_entries=1000, max_bytes=1_000_000):
    return Spool(path, name="test-queue", max_entries=max_entries, max_bytes=max_bytes)


def test_fifo_durable_and_private(tmp_path):
    queue = make(tmp_path / "q")
    paths = [queue.put({"n": n}) for n in range(5)]
    assert queue.entries() == paths
    again = make(tmp_path / "q")  # e.g. after a restart
    assert [again.load(p)["n"] for p in again.entries()] == [0, 1, 2, 3, 4]
    assert oct((tmp_path / "q").stat().st_mode & 0o777) == "0o700"
    assert oct(paths[0].stat().st_mode & 0o777) == "0o600"
    assert len(again) == 5 and again.size_bytes() == sum(p.stat().st_size for p in paths)


def test_drain_acknowledges_then_removes_and_stops_at_the_first_unsent(tmp_path):
    queue = make(tmp_path / "q")
    for n in range(4):
        queue.put({"n": n})
    sent = []
    assert queue.drain(lambda p: p["n"] < 2 and not sent.append(p["n"])) == 2
    assert sent == [0, 1]
    assert [queue.load(p)["n"] for p in queue.entries()] == [2, 3]


def _die_while_sending(directory):
    def send(payload):
        os._exit(3)  # the receiver may have it; the acknowledgement never happens

    make(directory).drain(send)


def test_a_crash_between_send_and_acknowledgement_sends_again(tmp_path):
    queue = make(tmp_path / "q")
    queue.put({"n": 1})
    child = CTX.Process(target=_die_while_sending, args=(str(tmp_path / "q"),))
    child.start()
    child.join(30)
    assert child.exitcode == 3
    again = []
    assert make(tmp_path / "q").drain(lambda p: again.append(p) or True) == 1
    assert again == [{"n": 1}]


def _die_before_rename(directory):
    def crash(src, dst):
        os._exit(4)

    os.replace = crash  # only in this forked child
    make(directory).put({"torn": True})


def test_a_crash_between_write_and_rename_leaves_no_entry(tmp_path, monkeypatch):
    queue = make(tmp_path / "q")
    queue.put({"n": 1})
    child = CTX.Process(target=_die_before_rename, args=(str(tmp_path / "q"),))
    child.start()
    child.join(30)
    assert child.exitcode == 4
    temps = list((tmp_path / "q").glob(".*.tmp"))
    assert len(temps) == 1  # the dead writer's temp file: invisible to readers
    assert [queue.load(p) for p in queue.entries()] == [{"n": 1}]
    queue.put({"n": 2})
    assert temps[0].exists()  # young: it might be a live writer's
    old = time.time() - spool_mod.STALE_TEMP_SECONDS - 1
    os.utime(temps[0], (old, old))
    queue.put({"n": 3})
    assert not temps[0].exists()
    assert [queue.load(p)["n"] for p in queue.entries()] == [1, 2, 3]


def test_a_failed_write_leaves_neither_entry_nor_temp(tmp_path, monkeypatch):
    queue = make(tmp_path / "q")

    def fail(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(spool_mod.os, "replace", fail)
    with pytest.raises(OSError, match="disk gone"):
        queue.put({"n": 1})
    assert queue.entries() == [] and not list((tmp_path / "q").glob(".*.tmp"))


def test_a_full_spool_drops_its_oldest_and_says_which_spool(tmp_path, caplog):
    queue = make(tmp_path / "q", max_entries=3)
    with caplog.at_level(logging.WARNING, logger="berth.diskspool"):
        for n in range(5):
            queue.put({"n": n})
    assert [queue.load(p)["n"] for p in queue.entries()] == [2, 3, 4]
    assert "spool test-queue is full" in caplog.text and "dropped its 1 oldest entry" in caplog.text


def test_the_byte_bound_drops_as_many_as_needed(tmp_path):
    queue = make(tmp_path / "q", max_bytes=120)
    for n in range(3):
        queue.put({"pad": "x" * 20, "n": n})  # 36 bytes each
    queue.put({"pad": "y" * 60})  # 70 bytes: two of the old ones must go
    assert [queue.load(p).get("n") for p in queue.entries()] == [2, None]
    assert queue.size_bytes() == 106
    with pytest.raises(SpoolFull, match="spool test-queue: an entry of 130 bytes"):
        queue.put({"pad": "z" * 120})
    assert len(queue) == 2  # nothing dropped for an entry that can never fit


def test_an_unreadable_entry_is_moved_aside(tmp_path):
    queue = make(tmp_path / "q")
    queue.put({"n": 1})
    queue.entries()[0].write_text("{not json")
    queue.put({"n": 2})
    sent = []
    assert queue.drain(lambda p: sent.append(p) or True) == 1
    assert sent == [{"n": 2}] and len(list((tmp_path / "q" / "unreadable").iterdir())) == 1


def _write_many(directory, writer, count, max_entries):
    queue = make(directory, max_entries=max_entries)
    for i in range(count):
        queue.put({"w": writer, "i": i})


def _drain_until(directory, stop_file, out_file):
    queue = make(directory)
    got = []
    while True:
        last = os.path.exists(stop_file)
        queue.drain(lambda p: got.append(p) or True)
        if last:
            break
        time.sleep(0.01)
    with open(out_file, "w") as handle:
        json.dump(got, handle)


def test_writers_and_readers_in_several_processes_lose_and_double_nothing(tmp_path):
    directory = str(tmp_path / "q")
    stop, out = tmp_path / "stop", tmp_path / "out"
    readers = [
        CTX.Process(target=_drain_until, args=(directory, str(stop), str(out) + str(r)))
        for r in range(2)
    ]
    writers = [CTX.Process(target=_write_many, args=(directory, w, 40, 1000)) for w in range(4)]
    for p in readers + writers:
        p.start()
    for p in writers:
        p.join(60)
        assert p.exitcode == 0
    stop.touch()
    for p in readers:
        p.join(60)
        assert p.exitcode == 0
    got = [
        tuple(e.values()) for r in range(2) for e in json.loads((tmp_path / f"out{r}").read_text())
    ]
    assert sorted(got) == [(w, i) for w in range(4) for i in range(40)]  # each exactly once
    assert make(directory).entries() == []


def test_the_bound_holds_with_writers_in_several_processes(tmp_path):
    directory = str(tmp_path / "q")
    writers = [CTX.Process(target=_write_many, args=(directory, w, 30, 25)) for w in range(4)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(60)
        assert p.exitcode == 0
    queue = make(directory)
    assert len(queue) == 25
    kept = [queue.load(p) for p in queue.entries()]
    for w in range(4):  # what is left of each writer is its newest, in order
        mine = [e["i"] for e in kept if e["w"] == w]
        assert mine == sorted(mine)


# -- upgrade in place: the older files of the three users ---------------------------------


def test_a_device_upgraded_in_place_sends_the_results_its_old_outbox_held(tmp_path):
    opts = {"docker.release_state_dir": str(tmp_path), "id": "dev-1"}
    old = [{"release_id": n, "outcome": "succeeded"} for n in (7, 8)]
    (tmp_path / commands.RESULTS_OUTBOX).write_text(json.dumps({"events": old}))
    (tmp_path / (commands.RESULTS_OUTBOX + ".lock")).write_text("")
    commands.queue_result(opts, {"release_id": 9, "outcome": "failed"})
    assert not (tmp_path / commands.RESULTS_OUTBOX).exists()
    sent = []
    assert commands.flush_results(opts, lambda e: sent.append(e) or True) == 3
    assert [e["release_id"] for e in sent] == [7, 8, 9]  # the old ones first, none lost


def test_an_old_outbox_is_kept_when_it_cannot_be_moved(tmp_path, monkeypatch):
    opts = {"docker.release_state_dir": str(tmp_path)}
    (tmp_path / commands.RESULTS_OUTBOX).write_text(json.dumps({"events": [{"release_id": 1}]}))

    def fail(self, payload):
        raise OSError("disk full")

    monkeypatch.setattr(Spool, "put_locked", fail)
    with pytest.raises(OSError):
        commands.flush_results(opts, lambda e: True)
    assert (tmp_path / commands.RESULTS_OUTBOX).exists()  # nothing lost: moved on a later try


def test_an_old_sqlite_logbook_spool_is_moved_in_on_first_use(tmp_path):
    path = str(tmp_path / "berth_logbook_spool.sqlite3")
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE spool (id INTEGER PRIMARY KEY AUTOINCREMENT, record TEXT NOT NULL)"
        )
        conn.executemany(
            "INSERT INTO spool (record) VALUES (?)",
            [
                (json.dumps({"ts": i, "field": "f", "field_type": "long", "value": i}),)
                for i in range(2500)
            ],
        )
    conn.close()
    logbook = LogbookSpool(path)
    assert not os.path.exists(path) and (tmp_path / "berth_logbook_spool").is_dir()
    assert len(logbook) == 2500
    assert [r["value"] for _, r in logbook.oldest(3)] == [0, 1, 2]
    logbook.add([{"field": "f", "field_type": "long", "value": 9999}])
    batch = logbook.oldest(2400)
    logbook.remove([row_id for row_id, _ in batch])
    assert [r["value"] for _, r in logbook.oldest(10)] == [*range(2400, 2500)][:10]
    assert len(LogbookSpool(path)) == 101


def test_a_master_report_spool_of_earlier_versions_is_read_as_it_is(tmp_path):
    from berth.master.report_spool import Spool as ReportSpool

    directory = tmp_path / "spool"
    directory.mkdir()
    (directory / "00000000000000000001-abcdef01.json").write_text(json.dumps({"unit_id": "m-1"}))
    reports = ReportSpool(str(directory))
    newer = reports.put({"unit_id": "m-2"})
    assert [reports.load(p)["unit_id"] for p in reports.entries()] == ["m-1", "m-2"]
    assert reports.status(newer) == "spooled"
    reports.reject(newer)
    assert reports.status(newer) == "rejected"
