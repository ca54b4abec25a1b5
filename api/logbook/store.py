"""Writing samples: field catalog, idempotent insert, rollup maintenance.

Idempotency: samples are inserted with ``ON CONFLICT (field_id, ts) DO
NOTHING`` -- the first value written for a (device, field, ts) wins, a
re-sent sample is skipped, and only the rows really inserted are added to the
rollups, so a retried batch changes nothing. Which rows were inserted: each
statement runs inside a savepoint; when its row count says every row went in
(the usual case: new data), the rows are the ones sent; otherwise the
statement is rolled back to the savepoint and run again with ``RETURNING``,
which names the rows inserted (SQLite's ``RETURNING`` costs more than the
insert itself, so it is only paid when something was skipped). On PostgreSQL
two concurrent writers of the same sample are serialised by the conflict check
itself; rollup rows are updated with ``count = count + excluded.count``.
"""

import functools
import itertools
from bisect import bisect_left

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
        sa.select(fields.c.name, fields.c.id, fields.c.field_type).where(
            fields.c.device_id == device_id
        )
    )
    return {name: (field_id, field_type) for name, field_id, field_type in rows}


def _resolve_fields(conn, device_id, batch):
    """Field ids for every name in the batch, creating new fields; errors on type clashes."""
    wanted = {}
    for field, field_type in batch.series:  # the first type named for a new field is its type
        wanted.setdefault(field, field_type)
    catalog = field_catalog(conn, device_id)
    missing = [name for name in wanted if name not in catalog]
    if missing:
        conn.execute(
            _insert(conn, fields).on_conflict_do_nothing(),
            [
                {"device_id": device_id, "name": name, "field_type": wanted[name]}
                for name in missing
            ],
        )
        catalog = field_catalog(conn, device_id)
    clashes = {pair for pair in batch.series if catalog[pair[0]][1] != pair[1]}
    if clashes:
        errors = {}
        for index, record in enumerate(batch.records):  # every record is valid: name them by index
            if (record["field"], record["field_type"]) in clashes:
                known_type = catalog[record["field"]][1]
                errors[str(index)] = {
                    "field_type": [
                        f"field '{record['field']}' of this device is {known_type}, not {record['field_type']}"
                    ]
                }
        raise BatchRejected({"records": errors})
    return {name: field_id for name, (field_id, _) in catalog.items()}


# the value columns each type fills; a statement binds only those (binding the
# NULLs of the other columns costs more than the insert itself)
VALUE_COLUMNS = {
    "float": ("value_float",),
    "long": ("value_int",),
    "bool": ("value_int",),
    "string": ("value_text",),
    "geo_point": ("lat", "lon"),
}
MAX_PARAMETERS = 8000  # per statement; SQLite allows 32766


def _columns(series):
    """The ts column and the value column(s) of a series, as the table stores them."""
    values = series.values
    if series.field_type == "geo_point":
        return series.ts, [lat for lat, _ in values], [lon for _, lon in values]
    if series.field_type == "bool":
        return series.ts, [int(value) for value in values]
    return series.ts, values


@functools.lru_cache(maxsize=32)
def _values_sql(columns, rows, returning):
    """SQLite: a multi-row VALUES insert of ``rows`` (field_id, ts, *columns) rows."""
    names = ", ".join(("field_id", "ts", *columns))
    one = "(" + ", ".join(["?"] * (2 + len(columns))) + ")"
    sql = f"INSERT INTO {samples.name} ({names}) VALUES {', '.join([one] * rows)} ON CONFLICT (field_id, ts) DO NOTHING"
    return sql + f" RETURNING {names}" if returning else sql


SQL_TYPES = {
    "value_float": "double precision",
    "value_int": "bigint",
    "value_text": "text",
    "lat": "double precision",
    "lon": "double precision",
}


@functools.lru_cache(maxsize=32)
def _unnest_sql(columns, returning):
    """PostgreSQL: one insert of a whole series, each column bound as one array
    (half the time of multi-row VALUES, whose 8,000 parameters PostgreSQL parses one by one)."""
    names = ", ".join(("field_id", "ts", *columns))
    arrays = ", ".join(["%s::bigint[]", *(f"%s::{SQL_TYPES[column]}[]" for column in columns)])
    sql = (
        f"INSERT INTO {samples.name} ({names}) SELECT %s::integer, u.* FROM unnest({arrays}) AS u "
        "ON CONFLICT (field_id, ts) DO NOTHING"
    )
    return sql + f" RETURNING {names}" if returning else sql


def _insert_or_return(cursor, plain, returning, parameters, rows):
    """Run ``plain`` (an insert of ``rows`` rows that skips conflicts) in a savepoint.

    -> None when every row went in, else the rows it inserts, from ``returning``
    (the same insert with RETURNING) run instead.
    """
    cursor.execute("SAVEPOINT logbook_insert")
    cursor.execute(plain, parameters)
    if cursor.rowcount == rows:
        cursor.execute("RELEASE SAVEPOINT logbook_insert")
        return None
    # something was skipped: ask which rows go in
    cursor.execute("ROLLBACK TO SAVEPOINT logbook_insert")
    cursor.execute("RELEASE SAVEPOINT logbook_insert")
    cursor.execute(returning, parameters)
    return cursor.fetchall()


def _insert_new(conn, field_id, names, columns):
    """Insert the samples of one series -- ``columns`` is (ts, *values) for the
    table columns ``names`` -- skipping existing (field_id, ts).

    Returns ``(written, inserted)``: the number of rows inserted, and either
    None when every row was inserted, or the list of the (field_id, ts, *values)
    rows inserted. A duplicate inside the batch is skipped like one already
    stored (the first wins).

    Statements on the driver cursor: the per-row parameter processing of a
    Core executemany costs more than the insert itself.
    """
    rows = len(columns[0])
    driver = conn.connection.driver_connection
    cursor = driver.cursor()
    try:
        if conn.dialect.name == "postgresql":
            inserted = _insert_or_return(
                cursor,
                _unnest_sql(names, False),
                _unnest_sql(names, True),
                [field_id, *columns],
                rows,
            )
            return (rows, None) if inserted is None else (len(inserted), inserted)
        if not driver.in_transaction:
            # pysqlite opens the transaction only before an INSERT; a SAVEPOINT
            # outside one would be the transaction, and its RELEASE a COMMIT
            cursor.execute("BEGIN")
        width = 1 + len(columns)
        flat = [field_id] * (width * rows)  # field_id, ts, *values, field_id, ts, ...
        for offset, column in enumerate(columns, 1):
            flat[offset::width] = column
        per_statement = (MAX_PARAMETERS // width) * width
        written, inserted = 0, None
        for start in range(0, len(flat), per_statement):
            chunk = flat[start : start + per_statement]
            count = len(chunk) // width
            returned = _insert_or_return(
                cursor,
                _values_sql(names, count, False),
                _values_sql(names, count, True),
                chunk,
                count,
            )
            if returned is None:
                written += count
                if inserted is not None:
                    inserted.extend(zip(*[iter(chunk)] * width, strict=False))
                continue
            if inserted is None:
                inserted = list(zip(*[iter(flat[:start])] * width, strict=False))
            inserted.extend(returned)
            written += len(returned)
        return written, inserted
    finally:
        cursor.close()


def write(conn, device_id, batch):
    """Write the validated :class:`~.records.Batch` of one device in the caller's transaction.

    Returns the number of samples newly stored (duplicates are skipped).
    Raises :class:`BatchRejected` when a record's type clashes with the catalog;
    the caller's transaction must then be rolled back.
    """
    field_ids = _resolve_fields(conn, device_id, batch)
    written, cells = 0, {}
    for series in batch.series.values():
        field_id = field_ids[series.field]
        count, inserted = _insert_new(
            conn, field_id, VALUE_COLUMNS[series.field_type], _columns(series)
        )
        written += count
        if series.field_type in NUMERIC_TYPES and count:
            if inserted is None:
                _add_series_cells(cells, field_id, series)
            else:
                _add_row_cells(cells, inserted)
    _upsert_rollups(conn, cells)
    return written


FINEST, *COARSER = sorted(ROLLUP_WIDTHS)


def _add_series_cells(cells, field_id, series):
    """Add every sample of a (wholly inserted) numeric series to the finest rollup cells."""
    ts = series.ts
    values = (
        series.values if series.field_type == "float" else [float(value) for value in series.values]
    )
    # every sample was inserted, so no two share a ts: sorted means strictly increasing
    if sorted(ts) != ts:
        _add_row_cells(cells, zip(itertools.repeat(field_id), ts, values))
        return
    # strictly increasing: each cell is a slice, summed in record order
    start, end, width = 0, len(ts), FINEST
    while start < end:
        cell_start = ts[start] - ts[start] % width
        stop = bisect_left(ts, cell_start + width, start)
        part = values[start:stop]
        _merge(
            cells,
            (field_id, width, cell_start),
            [stop - start, sum(part), min(part), max(part), ts[stop - 1]],
        )
        start = stop


def _add_row_cells(cells, rows):
    """Add (field_id, ts, numeric value) rows to the finest rollup cells."""
    finest = FINEST
    for field_id, ts, value in rows:
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


def _merge(cells, key, new):
    cell = cells.get(key)
    if cell is None:
        cells[key] = new
    else:
        cell[0] += new[0]
        cell[1] += new[1]
        cell[2] = min(cell[2], new[2])
        cell[3] = max(cell[3], new[3])
        cell[4] = max(cell[4], new[4])


ROLLUP_COLUMNS = ("field_id", "width", "start", "count", "sum", "min", "max", "max_ts")


@functools.lru_cache(maxsize=32)
def _upsert_sql(mark, rows):
    table = rollups.name
    one = "(" + ", ".join([mark] * len(ROLLUP_COLUMNS)) + ")"
    names = ", ".join(f'"{name}"' for name in ROLLUP_COLUMNS)

    def extreme(name, op):
        return f'"{name}" = CASE WHEN excluded."{name}" {op} {table}."{name}" THEN excluded."{name}" ELSE {table}."{name}" END'

    return (
        f"INSERT INTO {table} ({names}) VALUES {', '.join([one] * rows)} "
        f'ON CONFLICT ("field_id", "width", "start") DO UPDATE SET '
        f'"count" = {table}."count" + excluded."count", "sum" = {table}."sum" + excluded."sum", '
        f"{extreme('min', '<')}, {extreme('max', '>')}, {extreme('max_ts', '>')}"
    )


def _upsert_rollups(conn, cells):
    """Add the finest cells, and the coarser cells summed from them, to the rollups.

    The cells' keys are unique, so one multi-row statement may upsert them
    (PostgreSQL refuses to update a row twice in one statement).
    """
    if not cells:
        return
    finest = list(cells.items())
    for width in COARSER:  # coarser cells are sums of the finest ones
        for (field_id, _, start), cell in finest:
            _merge(cells, (field_id, width, start - start % width), list(cell))
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    rows = [(*key, *cell) for key, cell in cells.items()]
    per_statement = MAX_PARAMETERS // len(ROLLUP_COLUMNS)
    cursor = conn.connection.driver_connection.cursor()
    try:
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            cursor.execute(_upsert_sql(mark, len(chunk)), [value for row in chunk for value in row])
    finally:
        cursor.close()
