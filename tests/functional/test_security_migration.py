"""Migration 0007_tenancy on a database with data: every existing device stays served (its
minion enrolled in its account) and accounts that could execute every command move to the
safe default, which the migration says."""

import os

import pytest
from sqlalchemy import text

from api import create_app
from api.extensions import db
from api.settings import normalize_database_url
from tests.fixtures.api import TEST_SECRET_KEY, _create_private_pg_database

pytestmark = pytest.mark.db


@pytest.fixture
def migrating_app(tmp_path):
    configured = os.environ.get("BERTH_TEST_DATABASE_URL")
    if configured:
        url, drop = _create_private_pg_database(normalize_database_url(configured))
    else:
        url, drop = "sqlite:///" + str(tmp_path / "m.sqlite3"), lambda: None
    app = create_app(
        {"DATABASE_URL": url, "SECRET_KEY": TEST_SECRET_KEY, "INSTANCE_PATH": str(tmp_path / "i")}
    )
    yield app
    with app.app_context():
        db.engine.dispose()
    drop()


def test_existing_devices_stay_enrolled_and_allow_all_accounts_get_the_safe_default(
    migrating_app, capsys
):
    from flask_migrate import upgrade

    with migrating_app.app_context():
        upgrade(revision="0006_audit_log")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO accounts (id, name, created) VALUES (1, 'open', CURRENT_TIMESTAMP), (2, 'tight', CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO devices (id, account_id, unit_id, display, created) VALUES "
                    "('d1', 1, 'minion-1', '', CURRENT_TIMESTAMP), ('d2', 2, 'minion-2', '', CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO execute_settings (account_id, allowed_commands, updated) "
                    "VALUES (2, '[\"docker.*\"]', CURRENT_TIMESTAMP)"
                )
            )
        capsys.readouterr()
        upgrade()
        out = capsys.readouterr().out
        assert "1 account(s) that could execute every command now use the safe default" in out
        assert "open" in out and "tight" not in out
        with db.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT unit_id, account_id, method FROM minion_enrollments ORDER BY unit_id")
            ).all()
        assert [tuple(r) for r in rows] == [
            ("minion-1", 1, "migration"),
            ("minion-2", 2, "migration"),
        ]


def test_enrollments_keep_working_through_0013_with_no_recorded_master(migrating_app):
    """Migration 0013 adds the master credential an enrollment came through; existing rows get
    none (served_device lets the first master that may serve them record itself), and the
    downgrade drops it again."""
    from flask_migrate import downgrade, upgrade

    with migrating_app.app_context():
        upgrade(revision="0012_session_last_seen")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO accounts (id, name, created) VALUES (1, 'acme', CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO minion_enrollments (unit_id, account_id, method, enrolled_at) "
                    "VALUES ('m-1', 1, 'master_sync', CURRENT_TIMESTAMP)"
                )
            )
        upgrade(revision="0013_enrollment_master")
        with db.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT unit_id, method, master FROM minion_enrollments")
            ).all()
        assert [tuple(r) for r in rows] == [("m-1", "master_sync", None)]
        downgrade(revision="0012_session_last_seen")
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT unit_id FROM minion_enrollments")).scalars().all() == [
                "m-1"
            ]
