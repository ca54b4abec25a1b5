"""``bench/fanout_bench.py`` stopped by SIGTERM or SIGINT while its minions start leaves nothing
running: no API, salt-master, salt-api, salt-syndic or minion process (nor anything they spawned),
no Docker engine of its own (issue 22: a SIGTERM once left 100 minions and their engines
running); once with one master, once with a top master and a syndic master."""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.fixtures.docker import REPO, TESTBED

pytestmark = [pytest.mark.docker, pytest.mark.salt_daemons]

BENCH = REPO / "bench" / "fanout_bench.py"


def _cmdline(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return ""


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _minions_starting(bench: psutil.Process) -> list[psutil.Process]:
    try:
        kids = bench.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in kids if "salt-minion" in _cmdline(p)]


def _leftovers(state: str, engines_dir: pathlib.Path, prefix: str, started, groups):
    left = [p for p in started if _alive(p)]
    for proc in psutil.process_iter():
        line = _cmdline(proc)
        if not _alive(proc) or proc.pid == os.getpid():
            continue
        group = _group(proc.pid)
        if state in line or f"{engines_dir}/{prefix}" in line or (group and group in groups):
            left.append(proc)
    return sorted({p.pid: _cmdline(p) for p in left}.items())


@pytest.mark.parametrize(
    ("sig", "syndics"),
    [(signal.SIGTERM, 1), (signal.SIGINT, 0)],
    ids=["SIGTERM-top-master-and-a-syndic", "SIGINT-one-master"],
)
def test_fanout_bench_stops_all_it_started_when_signalled(sig, syndics, testbed, tmp_path):
    engines_dir = (
        pathlib.Path(os.environ.get("BERTH_TESTBED_DIR", "/var/lib/berth-testbed")) / "engines"
    )
    out = tmp_path / "bench.out"
    with open(out, "w") as log:
        bench = subprocess.Popen(
            [
                sys.executable,
                str(BENCH),
                "--minions",
                "2",
                "--syndics",
                str(syndics),
                "--sizes",
                "2",
                "--repeat",
                "1",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **testbed.env()},
            start_new_session=True,
        )
    prefix = f"fanout-{bench.pid % 10000}-"
    state, started, groups = None, [], set()
    try:
        parent = psutil.Process(bench.pid)
        # masters and salt-api first: minutes on a loaded machine
        deadline = time.monotonic() + 420
        while len(_minions_starting(parent)) < 2:
            assert bench.poll() is None, out.read_text()
            assert time.monotonic() < deadline, out.read_text()
            time.sleep(0.2)
        state = re.search(r"state in (\S+)", out.read_text()).group(1)
        started = parent.children(recursive=True)
        groups = {_group(p.pid) for p in started} - {None, os.getpgid(os.getpid())}
        # the masters (a top master, salt-api, and each lower master with its salt-syndic)
        titles = [_cmdline(p) for p in started]
        assert sum("salt-api" in t for t in titles) >= 1, titles
        assert sum("salt-syndic" in t for t in titles) >= syndics, titles
        assert sum("salt-master" in t for t in titles) >= 1 + syndics, titles
        engines = sorted(p.name for p in engines_dir.glob(prefix + "*"))
        assert engines == [prefix + "0", prefix + "1"]
        assert any(f"{engines_dir}/{prefix}" in _cmdline(p) for p in psutil.process_iter())

        bench.send_signal(sig)
        assert bench.wait(180) != 0
        text = out.read_text()
        assert f"stopped by {sig.name}" in text, text
        assert "stopped everything it started" in text, text
        assert _leftovers(state, engines_dir, prefix, started, groups) == []
        assert list(engines_dir.glob(prefix + "*")) == []
        assert not pathlib.Path(state).exists()
    finally:
        if bench.poll() is None:
            os.killpg(bench.pid, signal.SIGKILL)
        # a bench that failed to clean up must not leave this run's daemons behind
        for engine in engines_dir.glob(prefix + "*"):
            subprocess.run([str(TESTBED), "engine-down", engine.name], timeout=120)
            shutil.rmtree(engine, ignore_errors=True)
        for pid, _ in _leftovers(state, engines_dir, prefix, started, groups) if state else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if state:
            shutil.rmtree(state, ignore_errors=True)
