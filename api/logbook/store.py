"""Writing samples: field catalog, idempotent insert, rollup maintenance.

Idempotency: samples are inserted with ``ON CONFLICT (field_id, ts) DO
NOTHING ... RETURNING`` -- the first value written for a (device, field, ts)
wins, a re-sent sample is skipped, and only the rows really inserted are
added to the rollups, so a retried batch changes nothing. On PostgreSQL two
concurrent writers of the same sample are serialised by the conflict check
itself; rollup rows are updated with ``count = count + excluded.count``.
"""
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
    pairs = {(sample.field, sample.field_type) for sample in batch}
    wanted = {}
    for sample in batch:  # the first type named for a new field is its type
        if sample.field not in wanted:
            wanted[sample.field] = sample.field_type
            if len(wanted) == len(pairs):
                break
    catalog = field_catalog(conn, device_id)
    missing = [name for name in wanted if name not in catalog]
    if missing:
        conn.execute(
            _insert(conn, fields).on_conflict_do_nothing(),
            [{"device_id": device_id, "name": name, "field_type": wanted[name]} for name in missing],
        )
        catalog = field_catalog(conn, device_id)
    if any(catalog[name][1] != field_type for name, field_type in pairs):
        errors = {}
        for sample in batch:
            known_type = catalog[sample.field][1]
            if sample.field_type != known_type:
                errors[str(sample.index)] = {
                    "field_type": [f"field '{sample.field}' of this device is {known_type}, not {sample.field_type}"]
                }
        raise BatchRejected({"records": errors})
    return {name: field_id for name, (field_id, _) in catalog.items()}


# the value columns each type fills; a statement binds only those (binding the
# NULLs of the other columns costs more than the insert itself)
VALUE_COLUMNS = {"float": ("value_float",), "long": ("value_int",), "bool": ("value_int",),
                 "string": ("value_text",), "geo_point": ("lat", "lon")}
MAX_PARAMETERS = 8000  # per statement; SQLite allows 32766


def _rows(field_type, field_ids, batch):
    """(field_id, ts, *values) tuples for samples of one type."""
    if field_type == "geo_point":
        return [(field_ids[s.field], s.ts, s.value[0], s.value[1]) for s in batch]
    if field_type == "bool":
        return [(field_ids[s.field], s.ts, int(s.value)) for s in batch]
    return [(field_ids[s.field], s.ts, s.value) for s in batch]


def _insert_new(conn, columns, rows):
    """Insert (field_id, ts, *values) rows, skipping existing (field_id, ts); returns the rows inserted.

    A duplicate inside the batch is skipped like one already stored (the first wins).

    Multi-row VALUES statements on the driver cursor: the per-row parameter
    processing of a Core executemany costs more than the insert itself.
    """
    names = ("field_id", "ts", *columns)
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    one = "(" + ", ".join([mark] * len(names)) + ")"
    head = f"INSERT INTO {samples.name} ({', '.join(names)}) VALUES "
    tail = f" ON CONFLICT (field_id, ts) DO NOTHING RETURNING {', '.join(names)}"
    per_statement = MAX_PARAMETERS // len(names)
    cursor = conn.connection.driver_connection.cursor()
    inserted = []
    try:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            cursor.execute(head + ", ".join([one] * len(chunk)) + tail, [v for row in chunk for v in row])
            inserted.extend(cursor.fetchall())
    finally:
        cursor.close()
    return inserted


def write(conn, device_id, batch):
    """Write validated samples of one device in the caller's transaction.

    Returns the number of samples newly stored (duplicates are skipped).
    Raises :class:`BatchRejected` when a record's type clashes with the catalog;
    the caller's transaction must then be rolled back.
    """
    field_ids = _resolve_fields(conn, device_id, batch)
    by_type = {}
    for sample in batch:
        by_type.setdefault(sample.field_type, []).append(sample)
    written, numeric = 0, []
    for field_type, same_type in by_type.items():
        inserted = _insert_new(conn, VALUE_COLUMNS[field_type], _rows(field_type, field_ids, same_type))
        written += len(inserted)
        if field_type in NUMERIC_TYPES:
            numeric.extend(inserted)
    _add_to_rollups(conn, numeric)
    return written


def _add_to_rollups(conn, inserted):
    """Add newly inserted (field_id, ts, numeric value) rows to every rollup width."""
    finest, *coarser = sorted(ROLLUP_WIDTHS)
    cells = {}  # (field_id, width, start) -> [count, sum, min, max, max_ts]
    for field_id, ts, value in inserted:
        value = float(value)
        key = (field_id, finest, ts - ts % finest)
        cell = cells.get(key)
        if cell is None:
            cells[key] = [1, value, value, value, ts]
        else:
            cell[0] += 1
            cell[1] += value
            if value < cell[2]:
                cell[2] = value
            if value > cell[3]:
                cell[3] = value
            if ts > cell[4]:
                cell[4] = ts
    if not cells:
        return
    for width in coarser:  # coarser cells are sums of the finest ones
        for (field_id, _, start), (count, total, low, high, newest) in list(cells.items()):
            if _ != finest:
                continue
            key = (field_id, width, start - start % width)
            cell = cells.get(key)
            if cell is None:
                cells[key] = [count, total, low, high, newest]
            else:
                cell[0] += count
                cell[1] += total
                cell[2] = min(cell[2], low)
                cell[3] = max(cell[3], high)
                cell[4] = max(cell[4], newest)
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
