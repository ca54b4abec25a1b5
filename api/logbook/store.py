"""Writing samples: field catalog, idempotent insert, rollup maintenance.

Idempotency: samples are inserted with ``ON CONFLICT (field_id, ts) DO
NOTHING ... RETURNING`` -- the first value written for a (device, field, ts)
wins, a re-sent sample is skipped, and only the rows really inserted are
added to the rollups, so a retried batch changes nothing. On PostgreSQL two
concurrent writers of the same sample are serialised by the conflict check
itself; rollup rows are updated with ``count = count + excluded.count``.
"""
from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from .tables import NUMERIC_TYPES, ROLLUP_WIDTHS, fields, rollups, samples


class BatchRejected(Exception):
    """The batch conflicts with the field catalog; ``errors`` is the 400 body."""

    def __init__(self, errors):
        super().__init__(errors)
        self.errors = errors


def _insert(conn, table):
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def field_catalog(conn, device_id):
    """{name: (field_id, field_type)} of one device."""
    rows = conn.execute(
        sa.select(fields.c.name, fields.c.id, fields.c.field_type).where(fields.c.device_id == device_id)
    )
    return {name: (field_id, field_type) for name, field_id, field_type in rows}


def _resolve_fields(conn, device_id, batch):
    """Field ids for every name in the batch, creating new fields; errors on type clashes."""
    wanted = {}
    for sample in batch:
        wanted.setdefault(sample.field, sample.field_type)
    catalog = field_catalog(conn, device_id)
    missing = [name for name in wanted if name not in catalog]
    if missing:
        conn.execute(
            _insert(conn, fields).on_conflict_do_nothing(),
            [{"device_id": device_id, "name": name, "field_type": wanted[name]} for name in missing],
        )
        catalog = field_catalog(conn, device_id)
    errors = {}
    for sample in batch:
        known_type = catalog[sample.field][1]
        if sample.field_type != known_type:
            errors[str(sample.index)] = {
                "field_type": [f"field '{sample.field}' of this device is {known_type}, not {sample.field_type}"]
            }
    if errors:
        raise BatchRejected({"records": errors})
    return {name: field_id for name, (field_id, _) in catalog.items()}


def _row(field_id, sample):
    row = {"field_id": field_id, "ts": sample.ts, "value_float": None, "value_int": None,
           "value_text": None, "lat": None, "lon": None}
    kind, value = sample.field_type, sample.value
    if kind == "float":
        row["value_float"] = value
    elif kind in ("long", "bool"):
        row["value_int"] = int(value)
    elif kind == "string":
        row["value_text"] = value
    else:
        row["lat"], row["lon"] = value
    return row


def write(conn, device_id, batch):
    """Write validated samples of one device in the caller's transaction.

    Returns the number of samples newly stored (duplicates are skipped).
    Raises :class:`BatchRejected` when a record's type clashes with the catalog;
    the caller's transaction must then be rolled back.
    """
    field_ids = _resolve_fields(conn, device_id, batch)
    by_key = {}
    for sample in batch:
        by_key.setdefault((field_ids[sample.field], sample.ts), sample)
    rows = [_row(field_id, sample) for (field_id, _), sample in by_key.items()]
    inserted = conn.execute(
        _insert(conn, samples).on_conflict_do_nothing().returning(samples.c.field_id, samples.c.ts),
        rows,
    ).all()
    _add_to_rollups(conn, [(key, by_key[key]) for key in map(tuple, inserted)])
    return len(inserted)


def _add_to_rollups(conn, inserted):
    cells = defaultdict(lambda: [0, 0.0, None, None, 0])  # count, sum, min, max, max_ts
    for (field_id, ts), sample in inserted:
        if sample.field_type not in NUMERIC_TYPES:
            continue
        value = float(sample.value)
        for width in ROLLUP_WIDTHS:
            cell = cells[(field_id, width, ts - ts % width)]
            cell[0] += 1
            cell[1] += value
            cell[2] = value if cell[2] is None or value < cell[2] else cell[2]
            cell[3] = value if cell[3] is None or value > cell[3] else cell[3]
            cell[4] = max(cell[4], ts)
    if not cells:
        return
    stmt = _insert(conn, rollups)
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[rollups.c.field_id, rollups.c.width, rollups.c.start],
        set_={
            "count": rollups.c["count"] + new["count"],
            "sum": rollups.c["sum"] + new["sum"],
            "min": sa.case((new["min"] < rollups.c["min"], new["min"]), else_=rollups.c["min"]),
            "max": sa.case((new["max"] > rollups.c["max"], new["max"]), else_=rollups.c["max"]),
            "max_ts": sa.case((new["max_ts"] > rollups.c["max_ts"], new["max_ts"]), else_=rollups.c["max_ts"]),
        },
    )
    conn.execute(
        stmt,
        [
            {"field_id": f, "width": w, "start": s, "count": c[0], "sum": c[1], "min": c[2], "max": c[3], "max_ts": c[4]}
            for (f, w, s), c in cells.items()
        ],
    )
