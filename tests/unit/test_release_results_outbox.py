"""The device's on-disk queue of result events (``berth.release.commands``): the minion daemon
and the sleep hook's ``salt-call --local`` change it at the same time without losing events."""

from __future__ import annotations

import multiprocessing

from berth.release import commands


def _opts(tmp_path):
    return {"docker.release_state_dir": str(tmp_path)}


def _queue_many(state_dir, writer, count):
    for i in range(count):
        commands.queue_result({"docker.release_state_dir": state_dir}, {"w": writer, "i": i})


def test_concurrent_writers_lose_nothing(tmp_path):
    ctx = multiprocessing.get_context("fork")
    writers = [ctx.Process(target=_queue_many, args=(str(tmp_path), w, 10)) for w in range(4)]
    for p in writers:
        p.start()
    for p in writers:
        p.join(30)
        assert p.exitcode == 0
    sent = []
    assert commands.flush_results(_opts(tmp_path), lambda e: sent.append(e) or True) == 40
    assert sorted((e["w"], e["i"]) for e in sent) == [(w, i) for w in range(4) for i in range(10)]
    assert not (tmp_path / commands.RESULTS_OUTBOX).exists()


def test_an_event_queued_while_flushing_stays_queued(tmp_path):
    opts = _opts(tmp_path)
    commands.queue_result(opts, {"n": 1})
    commands.queue_result(opts, {"n": 2})

    def send(event):
        if event["n"] == 1:  # the hook queues a failure while the daemon sends
            commands.queue_result(opts, {"n": 3})
        return True

    assert commands.flush_results(opts, send) == 2
    left = []
    assert commands.flush_results(opts, lambda e: left.append(e) or True) == 1
    assert left == [{"n": 3}]


def test_unsent_events_stay_in_order(tmp_path):
    opts = _opts(tmp_path)
    for n in range(3):
        commands.queue_result(opts, {"n": n})
    assert commands.flush_results(opts, lambda e: e["n"] == 0) == 1
    rest = []
    commands.flush_results(opts, lambda e: rest.append(e["n"]) or True)
    assert rest == [1, 2]
