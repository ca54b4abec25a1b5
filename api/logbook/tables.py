"""Logbook tables (SQLAlchemy Core): field catalog, narrow samples, rollups.

* ``logbook_fields``  one row per (device, field name) with its type; its id
  names the series in the two other tables.
* ``logbook_samples`` one row per sample, primary key (field_id, ts) -- a
  clustered ``WITHOUT ROWID`` table on SQLite, a primary-key B-tree on
  PostgreSQL. ``ts`` is epoch microseconds. The value sits in the column of
  its type: float -> value_float, long/bool -> value_int, string -> value_text,
  geo_point -> lat/lon.
* ``logbook_rollups`` count/sum/min/max/max_ts per (field_id, width, start)
  for numeric fields, maintained at ingest for widths of 1 minute, 10 minutes
  and 1 hour; aggregated reads answer whole cells from here.
"""

import sqlalchemy as sa

from api.extensions import db

FIELD_TYPES = ("float", "long", "bool", "string", "geo_point")
NUMERIC_TYPES = ("float", "long", "bool")

MINUTE_US = 60 * 1_000_000
HOUR_US = 60 * MINUTE_US
# coarse to fine; each width divides the next coarser one
ROLLUP_WIDTHS = (HOUR_US, 10 * MINUTE_US, MINUTE_US)

metadata = db.metadata

fields = sa.Table(
    "logbook_fields",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "device_id", sa.String(36), sa.ForeignKey("devices.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("field_type", sa.String(16), nullable=False),
    sa.UniqueConstraint("device_id", "name"),
)

samples = sa.Table(
    "logbook_samples",
    metadata,
    sa.Column(
        "field_id",
        sa.Integer,
        sa.ForeignKey("logbook_fields.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("ts", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("value_float", sa.Double),
    sa.Column("value_int", sa.BigInteger),
    sa.Column("value_text", sa.Text),
    sa.Column("lat", sa.Double),
    sa.Column("lon", sa.Double),
    sqlite_with_rowid=False,
)

rollups = sa.Table(
    "logbook_rollups",
    metadata,
    sa.Column(
        "field_id",
        sa.Integer,
        sa.ForeignKey("logbook_fields.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("width", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("start", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("sum", sa.Double, nullable=False),
    sa.Column("min", sa.Double, nullable=False),
    sa.Column("max", sa.Double, nullable=False),
    sa.Column("max_ts", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,
)
