"""The admin CLI, run as operators run it: ``flask --app api ...`` in a subprocess."""

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from api.accounts.models import ApiToken
from api.extensions import db
from tests.fixtures.api import TEST_SECRET_KEY

FLASK = str(Path(sys.executable).with_name("flask"))


@pytest.fixture
def flask_cli(app, api_database_url, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": api_database_url,
        "BERTH_SECRET_KEY": TEST_SECRET_KEY,
        "BERTH_INSTANCE_PATH": str(tmp_path / "cli-instance"),
    }

    def run(*args, check=True):
        proc = subprocess.run(
            [FLASK, "--app", "api", *args], env=env, capture_output=True, text=True, timeout=60
        )
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    return run


def test_cli_account_user_token_flow(app, client, flask_cli):
    assert "created account" in flask_cli("accounts", "create", "acme").stdout
    flask_cli("users", "create", "Ops@Example.com", "--account", "acme", "--password", "pw1")
    out = flask_cli("tokens", "create", "ops@example.com", "--name", "laptop").stdout
    token = out.strip().splitlines()[-1]
    assert token.startswith("berth_") and " " not in token
    headers = {"Authorization": f"APIToken {token}"}
    assert client.get("/devices/", headers=headers).status_code == 200
    device = client.post("/devices/", json={"unit_id": "m-1"}, headers=headers).json

    out = flask_cli(
        "tokens", "create", "ops@example.com", "--scope", "device", "--device", device["id"]
    ).stdout
    device_token = out.strip().splitlines()[-1]
    with app.app_context():
        from sqlalchemy import select

        from api.crypto import token_digest

        row = db.session.scalars(
            select(ApiToken).where(ApiToken.digest == token_digest(device_token))
        ).one()
        assert row.scope == "device" and row.device_id == device["id"]

    out = flask_cli(
        "tokens",
        "create",
        "ops@example.com",
        "--scope",
        "master",
        "--expires",
        "2099-01-01T00:00:00Z",
    )
    master = out.stdout.strip().splitlines()[-1]
    with app.app_context():
        row = db.session.scalars(
            select(ApiToken).where(ApiToken.digest == token_digest(master))
        ).one()
        assert row.expires == datetime(2099, 1, 1, tzinfo=UTC) and row.scope == "master"

    with app.app_context():
        token_id = db.session.scalars(
            select(ApiToken.id).where(ApiToken.digest == token_digest(token))
        ).one()
    flask_cli("tokens", "revoke", str(token_id))
    r = client.get("/devices/", headers=headers)
    assert r.status_code == 401 and r.json == {"detail": "Invalid token."}


def test_cli_errors_are_clear(flask_cli):
    flask_cli("accounts", "create", "acme")
    proc = flask_cli("accounts", "create", "acme", check=False)
    assert proc.returncode != 0 and "already exists" in proc.stderr
    proc = flask_cli(
        "users", "create", "a@b.c", "--account", "nope", "--password", "x", check=False
    )
    assert proc.returncode != 0 and "no account named 'nope'" in proc.stderr
    proc = flask_cli("tokens", "create", "ghost@example.com", check=False)
    assert proc.returncode != 0 and "no user" in proc.stderr
    flask_cli("users", "create", "a@b.c", "--account", "acme", "--password", "x")
    proc = flask_cli("tokens", "create", "a@b.c", "--scope", "device", check=False)
    assert proc.returncode != 0 and "needs a device" in proc.stderr
    proc = flask_cli("tokens", "create", "a@b.c", "--expires", "tomorrow", check=False)
    assert proc.returncode != 0 and "ISO-8601" in proc.stderr
    proc = flask_cli("tokens", "revoke", "424242", check=False)
    assert proc.returncode != 0 and "no token" in proc.stderr


def test_db_upgrade_command_is_idempotent(flask_cli):
    proc = flask_cli("db", "upgrade")
    assert proc.returncode == 0
    assert "(head)" in flask_cli("db", "current").stdout
