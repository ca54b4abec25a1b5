"""A durable FIFO of logbook records in a SQLite file on the device.

Records survive restarts and power loss (WAL, synchronous=FULL). They leave the
spool only after the API acknowledged them, so a crash between sending and
acknowledging re-sends them -- harmless, the API is idempotent on
(device, field, ts).
"""

import json
import os
import sqlite3
import time
from contextlib import closing

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY AUTOINCREMENT, record TEXT NOT NULL)"
)


class SpoolError(ValueError):
    """A record that cannot be spooled; the message says which and why."""


def _normalise(index, record):
    if not isinstance(record, dict):
        raise SpoolError(
            f"record {index}: expected a mapping with field, field_type, value and optionally ts"
        )
    missing = [key for key in ("field", "field_type", "value") if key not in record]
    if missing:
        raise SpoolError(f"record {index}: missing {', '.join(missing)}")
    record = dict(record)
    # stamp the sample when it is taken, not when it is finally sent
    record.setdefault("ts", int(time.time() * 1000))
    return record


class Spool:
    def __init__(self, path) -> None:
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with closing(self._connect()) as conn, conn:
            conn.execute(SCHEMA)

    def _connect(self):
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def add(self, records):
        """Append records (all or none); returns how many were spooled."""
        rows = [
            (json.dumps(_normalise(n, record), separators=(",", ":")),)
            for n, record in enumerate(records)
        ]
        with closing(self._connect()) as conn, conn:
            conn.executemany("INSERT INTO spool (record) VALUES (?)", rows)
        return len(rows)

    def oldest(self, limit):
        """[(id, record)] of the oldest ``limit`` records, oldest first."""
        with closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT id, record FROM spool ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [(row_id, json.loads(text)) for row_id, text in rows]

    def remove(self, ids) -> None:
        with closing(self._connect()) as conn, conn:
            conn.executemany("DELETE FROM spool WHERE id = ?", [(row_id,) for row_id in ids])

    def __len__(self):
        with closing(self._connect()) as conn:
            return conn.execute("SELECT count(*) FROM spool").fetchone()[0]
