"""The API on SQLite (issue 20, item 4): every connection is in WAL (readers do not wait for the
writer) with a busy timeout (a second writer waits for the write lock instead of failing with
"database is locked"), ``BERTH_SQLITE_BUSY_SECONDS`` (default 10 s), a bad value stops the start.
Always on a SQLite file of its own, whatever ``BERTH_TEST_DATABASE_URL`` says."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import text

from api import create_app
from api.extensions import db
from tests.fixtures.api import TEST_SECRET_KEY


def sqlite_app(tmp_path):
    return create_app(
        {
            "DATABASE_URL": "sqlite:///" + str(tmp_path / "berth.sqlite3"),
            "SECRET_KEY": TEST_SECRET_KEY,
            "INSTANCE_PATH": str(tmp_path / "instance"),
        }
    )


def pragmas(app, *names):
    with app.app_context():
        try:
            return [db.session.execute(text(f"PRAGMA {n}")).scalar() for n in names]
        finally:
            db.session.remove()
            db.engine.dispose()


def test_connections_are_wal_with_a_busy_timeout(tmp_path, monkeypatch):
    monkeypatch.delenv("BERTH_SQLITE_BUSY_SECONDS", raising=False)
    app = sqlite_app(tmp_path)
    names = ("journal_mode", "busy_timeout", "foreign_keys", "synchronous")
    assert pragmas(app, *names) == ["wal", 10_000, 1, 1]  # synchronous 1: NORMAL


def test_busy_timeout_is_a_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTH_SQLITE_BUSY_SECONDS", "3")
    assert pragmas(sqlite_app(tmp_path), "busy_timeout") == [3000]
    for bad in ("0", "soon", "-1"):
        monkeypatch.setenv("BERTH_SQLITE_BUSY_SECONDS", bad)
        with pytest.raises(ValueError, match="BERTH_SQLITE_BUSY_SECONDS"):
            sqlite_app(tmp_path / bad)


def test_a_writer_waits_for_another_writers_lock_and_a_reader_does_not(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTH_SQLITE_BUSY_SECONDS", "20")
    app = sqlite_app(tmp_path)
    with app.app_context():
        db.session.execute(text("CREATE TABLE t (x INTEGER)"))
        db.session.commit()
        holder = sqlite3.connect(
            str(tmp_path / "berth.sqlite3"), isolation_level=None, check_same_thread=False
        )
        holder.execute("BEGIN IMMEDIATE")  # another worker's write transaction
        holder.execute("INSERT INTO t VALUES (1)")
        released = threading.Timer(1.5, holder.execute, ("COMMIT",))
        released.start()
        try:
            assert db.session.execute(text("SELECT count(*) FROM t")).scalar() == 0  # no wait
            db.session.commit()
            start = time.monotonic()
            db.session.execute(text("INSERT INTO t VALUES (2)"))
            db.session.commit()
            waited = time.monotonic() - start
        finally:
            released.join()
            holder.close()
        assert db.session.execute(text("SELECT count(*) FROM t")).scalar() == 2
        assert 1.0 < waited < 15, waited  # waited for the lock, not the full timeout
        db.session.remove()
        db.engine.dispose()
