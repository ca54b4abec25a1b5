"""DRF-style page-number pagination: ``?page=&page_size=`` -> ``{"count","next","previous","results"}``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import request
from sqlalchemy import Select, func, select

from api.errors import NotFound, ValidationError
from api.extensions import db
from api.limits import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

_INTEGER_RE = re.compile(r"^\s*-?[0-9]{1,30}\s*$")


def _positive_int(name: str, default: int, maximum: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not _INTEGER_RE.match(raw):
        raise ValidationError({name: ["A valid integer is required."]})
    value = int(raw)
    if value < 1:
        raise ValidationError({name: ["Ensure this value is greater than or equal to 1."]})
    if maximum is not None and value > maximum:
        raise ValidationError({name: [f"Ensure this value is less than or equal to {maximum}."]})
    return value


def _page_url(page: int | None) -> str | None:
    if page is None:
        return None
    args = request.args.to_dict(flat=False)
    args["page"] = [str(page)]
    query = urlencode([(k, v) for k, values in args.items() for v in values])
    return f"{request.base_url}?{query}"


def paginate(
    stmt: Select,
    serialize: Callable[[Any], dict],
    *,
    batch: Callable[[list[Any]], list[dict]] | None = None,
    rows: bool = False,
) -> dict:
    """Run ``stmt`` (a select of ORM entities, already ordered) one page at a time.

    ``batch``, if given, serializes the whole page at once (to avoid a query per row).
    ``rows``: ``stmt`` selects columns, not an entity; ``serialize`` gets each row.
    """
    page = _positive_int("page", 1)
    page_size = _positive_int("page_size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    count = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    last_page = max(1, -(-count // page_size))
    if page > last_page:
        raise NotFound("Invalid page.")
    result = db.session.execute(stmt.limit(page_size).offset((page - 1) * page_size))
    page_rows = (result if rows else result.scalars()).all()
    return {
        "count": count,
        "next": _page_url(page + 1) if page < last_page else None,
        "previous": _page_url(page - 1) if page > 1 else None,
        "results": batch(list(page_rows)) if batch else [serialize(row) for row in page_rows],
    }
