"""Configuration from the environment: ``DATABASE_URL``, ``BERTH_SECRET_KEY``, ``BERTH_INSTANCE_PATH``,
the account page's session lifetimes (``BERTH_SESSION_IDLE_SECONDS``, ``BERTH_SESSION_MAX_SECONDS``),
``BERTH_TRUSTED_PROXIES`` (how many reverse proxies in front of the API add ``X-Forwarded-For``),
``BERTH_SQLITE_BUSY_SECONDS`` (how long a SQLite writer waits for another's write lock)."""

from __future__ import annotations

import os
import secrets
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

SECRET_KEY_FILE = "secret_key"
SQLITE_FILE = "berth.sqlite3"

# Account-page sessions end after this long without a request, and this long after the login
# whatever happens (docs/security.md, "Login and sessions").
SESSION_LIFETIMES = {"BERTH_SESSION_IDLE_SECONDS": 30 * 60, "BERTH_SESSION_MAX_SECONDS": 12 * 3600}

# SQLite has one writer at a time: another waits this long for the write lock before "database is
# locked" (docs/architecture.md "Databases").
SQLITE_BUSY_SECONDS = 10


def normalize_database_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` mean psycopg 3, the only PostgreSQL driver installed."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_or_create_secret_key(instance_path: str) -> str:
    """Read ``<instance>/secret_key``; create it (0600) on first run.

    Written to a temporary file and hard-linked into place so concurrent workers
    starting together all end up with the same key.
    """
    path = Path(instance_path) / SECRET_KEY_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    fd, tmp = tempfile.mkstemp(dir=instance_path, prefix=".secret_key.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48) + "\n")
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    return path.read_text().strip()


def _positive_seconds(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        seconds = int(value)
    except ValueError:
        seconds = 0
    if seconds < 1:
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    return seconds


def trusted_proxies(overrides: dict) -> int:
    """``BERTH_TRUSTED_PROXIES``: the number of proxies (load balancers) in front of the API, each
    appending the address it got the request from to ``X-Forwarded-For``; that many entries,
    counted from the end, are believed, so the client address (login throttling, audit) is the
    client's and not the balancer's. 0 (default): the header is ignored. Set it only where the
    API is reachable through those proxies alone, or a client names its own address."""
    value = str(overrides.get("BERTH_TRUSTED_PROXIES", os.environ.get("BERTH_TRUSTED_PROXIES", "")))
    if not value.strip():
        return 0
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise ValueError(
            f"BERTH_TRUSTED_PROXIES must be a number of proxies (0 or more), not {value!r}"
        )
    return count


def base_config(instance_path: str, overrides: dict) -> dict:
    url = (
        overrides.get("SQLALCHEMY_DATABASE_URI")
        or overrides.get("DATABASE_URL")
        or os.environ.get("DATABASE_URL")
    )
    if not url:
        url = "sqlite:///" + str(Path(instance_path) / SQLITE_FILE)
    secret = overrides.get("SECRET_KEY") or os.environ.get("BERTH_SECRET_KEY")
    if not secret:
        secret = load_or_create_secret_key(instance_path)
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        # the driver's timeout is SQLite's busy timeout (sqlite3_busy_timeout)
        busy = _positive_seconds("BERTH_SQLITE_BUSY_SECONDS", SQLITE_BUSY_SECONDS)
        engine_options: dict[str, Any] = {"connect_args": {"timeout": busy}}
    else:
        engine_options = {"pool_pre_ping": True}
    return {
        "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
        "SECRET_KEY": secret,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
        "BERTH_TRUSTED_PROXIES": trusted_proxies(overrides),
        **{name: _positive_seconds(name, default) for name, default in SESSION_LIFETIMES.items()},
    }


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        # WAL lets several gunicorn workers read while one writes (the busy timeout: connect_args).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
