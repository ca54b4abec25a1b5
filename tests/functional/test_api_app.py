"""App factory configuration, the secret key file, migrations vs models, SQLite foreign keys."""

import os
import stat

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from api import create_app
from api.extensions import db


def test_defaults_sqlite_in_instance_and_generates_secret_key(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("BERTH_SECRET_KEY", raising=False)
    instance = tmp_path / "inst"
    app = create_app({"INSTANCE_PATH": str(instance)})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance / 'berth.sqlite3'}"
    key_file = instance / "secret_key"
    assert app.config["SECRET_KEY"] == key_file.read_text().strip()
    assert len(app.config["SECRET_KEY"]) >= 40
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    again = create_app({"INSTANCE_PATH": str(instance)})
    assert again.config["SECRET_KEY"] == app.config["SECRET_KEY"]


def test_environment_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db.example:5432/berth")
    monkeypatch.setenv("BERTH_SECRET_KEY", "from-env")
    monkeypatch.setenv("BERTH_INSTANCE_PATH", str(tmp_path / "i"))
    app = create_app()
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@db.example:5432/berth"
    assert app.config["SECRET_KEY"] == "from-env"
    assert app.instance_path == str(tmp_path / "i")
    assert not (tmp_path / "i" / "secret_key").exists()


def test_migrations_match_models(app):
    with app.app_context():
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert diff == []


def test_foreign_keys_enforced_on_any_database(app):
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1
        with pytest.raises(IntegrityError):
            db.session.execute(
                text(
                    "INSERT INTO projects (account_id, name, description, created) VALUES (424242, 'p', '', :now)"
                ),
                {"now": "2020-01-01 00:00:00"},
            )
            db.session.flush()
        db.session.rollback()
