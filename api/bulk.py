"""Large id lists in SQL as ONE JSON parameter instead of thousands of bind parameters.

``IN (:id_1, ..., :id_10000)`` costs more to build and compile than to run, and hits
bind-parameter limits; ``json_each`` (SQLite) / ``jsonb_array_elements_text``
(PostgreSQL) turn a JSON array into rows inside the database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB

from api.extensions import db


def id_rows(ids: Sequence[str]):
    """A one-column (``value``) table of ``ids``, usable in FROM, ``IN (SELECT ...)`` and INSERT ... SELECT."""
    if db.session.get_bind().dialect.name == "postgresql":
        return (
            func.jsonb_array_elements_text(bindparam(None, list(ids), type_=JSONB))
            .table_valued("value")
            .alias("ids")
        )
    return func.json_each(json.dumps(list(ids))).table_valued("value").alias("ids")


def id_select(ids: Sequence[str]):
    """``SELECT value FROM <ids>``, e.g. for ``column.in_(id_select(ids))``."""
    rows = id_rows(ids)
    return select(rows.c.value)


def dialect_insert(table):
    """``INSERT`` of the session's database dialect: it has ``on_conflict_do_nothing`` /
    ``on_conflict_do_update`` (an upsert, on SQLite and PostgreSQL alike)."""
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)
