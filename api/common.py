"""Helpers shared by the views of every feature package."""

from __future__ import annotations

from typing import Any, TypeVar

from flask import g, request
from sqlalchemy import select

from api.errors import NotFound
from api.extensions import db

T = TypeVar("T")


def owned_or_404(model: type[T], pk, **filters) -> T:
    """The account's ``model`` row with primary key ``pk``; another account's row is 404 like a missing one."""
    columns: Any = model  # a model class: its columns are class attributes
    stmt = select(model).where(columns.id == pk, columns.account_id == g.account.id)
    for name, value in filters.items():
        stmt = stmt.where(getattr(model, name) == value)
    row = db.session.scalars(stmt).one_or_none()
    if row is None:
        raise NotFound()
    return row


def is_partial() -> bool:
    return request.method == "PATCH"


def no_content():
    return "", 204
