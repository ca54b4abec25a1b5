"""Bucketed aggregation over [from, to) with buckets aligned to ``from``.

A bucket k covers [F + k*I, F + (k+1)*I) clipped to [F, T). Data comes from
three levels, coarse to fine: hour rollups, minute rollups, raw samples. A
rollup cell [s, s+W) is *interior* when it lies inside the window and inside
one bucket:  s >= F, s + W <= T and ((s - F) mod I) + W <= I. Interior cells
of the coarsest usable level (W <= I) answer whole; a cell that is not
interior contains a bucket edge (F + k*I) or T strictly inside it, so the
next finer level is read only inside those broken cells, which are
enumerated in SQL by a recursive CTE over the edges. Raw samples fill what
the minute cells could not. Every level returns per-bucket count/sum/min/
max/max_ts and the partial results are merged, so avg is exactly sum/count.
"""

import sqlalchemy as sa

from .tables import ROLLUP_WIDTHS

RAW = 0  # pseudo width of the raw level

_PARTIALS = "count({v}), sum({v}), min({v}), max({v}), max({t})"

_EDGE_CELLS = """
WITH RECURSIVE edges(x) AS (
    SELECT CAST(:f AS BIGINT)
    UNION ALL
    SELECT x + :i FROM edges WHERE x + :i < :t
),
cells(c) AS (
    SELECT x - x % :pw FROM edges WHERE x % :pw != 0
    UNION
    SELECT CAST(:t AS BIGINT) - :t % :pw WHERE :t % :pw != 0
)
"""


def _rollup_sql(parent_width):
    # inside a broken cell the cell bounds must drive the index search, so the
    # window bounds are hidden from the planner there with a unary plus
    start = "r.start" if parent_width is None else "+r.start"
    where = (
        f"r.field_id = :field_id AND r.width = :w AND {start} >= :f AND {start} <= :t - :w"
        " AND ((r.start - :f) % :i) + :w <= :i"
    )
    select = "SELECT (r.start - :f) / :i AS k, sum(r.count), sum(r.sum), min(r.min), max(r.max), max(r.max_ts)"
    if parent_width is None:
        return f"{select} FROM logbook_rollups r WHERE {where} GROUP BY k"
    return (
        f"{_EDGE_CELLS} {select} FROM cells CROSS JOIN logbook_rollups r WHERE {where}"
        " AND r.start >= cells.c AND r.start < cells.c + :pw GROUP BY k"
    )


def _raw_sql(value_column, parent_width):
    value = f"CAST(s.{value_column} AS DOUBLE PRECISION)"
    partials = _PARTIALS.format(v=value, t="s.ts")
    ts = "s.ts" if parent_width is None else "+s.ts"
    where = f"s.field_id = :field_id AND {ts} >= :f AND {ts} < :t AND s.{value_column} IS NOT NULL"
    select = f"SELECT (s.ts - :f) / :i AS k, {partials}"
    if parent_width is None:
        return f"{select} FROM logbook_samples s WHERE {where} GROUP BY k"
    return (
        f"{_EDGE_CELLS} {select} FROM cells CROSS JOIN logbook_samples s WHERE {where}"
        " AND s.ts >= cells.c AND s.ts < cells.c + :pw GROUP BY k"
    )


def plan_levels(interval_us):
    """[(width, parent_width)] to read, coarse to fine; parent None = scan the whole window."""
    usable = [w for w in ROLLUP_WIDTHS if w <= interval_us] + [RAW]
    return [(width, usable[n - 1] if n else None) for n, width in enumerate(usable)]


def buckets(conn, field_id, value_column, from_us, to_us, interval_us):
    """{k: [count, sum, min, max, max_ts_us]} for the non-empty buckets."""
    merged = {}
    base = {"field_id": field_id, "f": from_us, "t": to_us, "i": interval_us}
    for width, parent in plan_levels(interval_us):
        params = dict(base, w=width, pw=parent)
        sql = _raw_sql(value_column, parent) if width == RAW else _rollup_sql(parent)
        for k, count, total, low, high, newest in conn.execute(sa.text(sql), params):
            if not count:
                continue
            cell = merged.get(k)
            if cell is None:
                merged[k] = [int(count), float(total), float(low), float(high), int(newest)]
            else:
                cell[0] += int(count)
                cell[1] += float(total)
                cell[2] = min(cell[2], float(low))
                cell[3] = max(cell[3], float(high))
                cell[4] = max(cell[4], int(newest))
    return merged
