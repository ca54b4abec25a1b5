"""Flask extensions shared by the whole application."""

from typing import Any, cast

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import CursorResult, MetaData, Result

# Stable constraint names so Alembic migrations are identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
migrate = Migrate()


def rowcount(result: Result[Any]) -> int:
    """The rows an ``UPDATE``/``DELETE`` matched (its result is a :class:`CursorResult`; the
    session's ``execute`` is typed as returning any ``Result``)."""
    return cast(CursorResult[Any], result).rowcount
