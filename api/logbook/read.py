"""Answering a checked ReadQuery for one field: raw rows or aggregated buckets."""

import sqlalchemy as sa

from . import aggregate, timestamps
from .tables import samples

VALUE_COLUMN = {
    "float": "value_float",
    "long": "value_int",
    "bool": "value_int",
    "string": "value_text",
}


def raw_rows(conn, field_id, field_type, query):
    if field_type == "geo_point":
        columns = [samples.c.ts, samples.c.lat, samples.c.lon]
    else:
        columns = [samples.c.ts, samples.c[VALUE_COLUMN[field_type]]]
    stmt = (
        sa.select(*columns)
        .where(
            samples.c.field_id == field_id,
            samples.c.ts >= query.from_us,
            samples.c.ts < query.to_us,
        )
        .order_by(samples.c.ts)
        .limit(query.size)
    )
    if field_type == "geo_point":
        return [
            {"ts": timestamps.iso_us(ts), "location": {"lat": lat, "lon": lon}}
            for ts, lat, lon in conn.execute(stmt)
        ]
    cast = bool if field_type == "bool" else (lambda value: value)
    return [{"ts": timestamps.iso_us(ts), "value": cast(value)} for ts, value in conn.execute(stmt)]


def _value(aggregation, field_type, count, total, low, high):
    if aggregation == "avg":
        return total / count
    if aggregation == "sum":
        return total if field_type == "float" else int(total)
    value = low if aggregation == "min" else high
    if field_type == "long":
        return int(value)
    if field_type == "bool":
        return bool(value)
    return value


def aggregated_rows(conn, field_id, field_type, query):
    cells = aggregate.buckets(
        conn, field_id, VALUE_COLUMN[field_type], query.from_us, query.to_us, query.interval_us
    )
    rows = []
    for k in sorted(cells)[: query.size]:
        count, total, low, high, newest = cells[k]
        rows.append(
            {
                "ts": timestamps.iso_ms(query.from_us + k * query.interval_us),
                "max_ts": timestamps.epoch_ms(newest),
                "value": _value(query.aggregation, field_type, count, total, low, high),
            }
        )
    return rows


def read(conn, field_id, field_type, query):
    if query.to_us <= query.from_us:
        return []
    if query.aggregation:
        return aggregated_rows(conn, field_id, field_type, query)
    return raw_rows(conn, field_id, field_type, query)
