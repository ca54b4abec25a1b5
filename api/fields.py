"""Field rules as pydantic metadata, and the field types several request bodies share.

:func:`rule` makes a check (:mod:`api.validation`) a field's validation: it runs instead of
pydantic's own coercion and raises DRF's messages; a check that is an
:class:`api.validation.Check` also writes its limits (``maxLength``, ``pattern``, ``maxItems``,
``minimum`` ...) into the field's OpenAPI schema. So each limit is written once, in the rule of
its field, and a model's ``doc(...)`` only describes (``tests/unit/test_field_rules_once.py``).
The numbers are named in :mod:`api.limits`.

The shared types below are used as a field's type: ``name: Annotated[Name, doc("...")]``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Annotated, Any

from annotated_types import GroupedMetadata
from pydantic import BeforeValidator, SkipValidation
from pydantic_core import PydanticCustomError

from api.limits import NAME_MAX
from api.validation import Check, FieldError, string

DRF_ERROR = "drf"  # the pydantic error type of a rule's FieldError


def drf_error(detail: list | dict | str) -> PydanticCustomError:
    """A pydantic error carrying a DRF error detail (a message list, or nested per index/field)."""
    detail = [detail] if isinstance(detail, str) else detail
    return PydanticCustomError(DRF_ERROR, "{summary}", {"summary": str(detail), "detail": detail})


def rule(check: Callable[[Any], Any], *, nullable: bool = False, typed: bool = False) -> Any:
    """Annotation metadata: validate the field with ``check`` (raising ``FieldError``) instead of
    pydantic's own coercion; ``None`` is "This field may not be null." unless ``nullable``.
    ``typed``: pydantic then checks ``check``'s result against the annotation (for fields of
    nested models: ``check`` returns model instances, and OpenAPI refers to their schema)."""

    def run(value: Any) -> Any:
        if value is None:
            if nullable:
                return None
            raise drf_error("This field may not be null.")
        try:
            return check(value)
        except FieldError as exc:
            raise drf_error(exc.detail) from None

    return _Rule(run, typed, check.schema if isinstance(check, Check) else {})


class _Rule(GroupedMetadata):
    # SkipValidation then BeforeValidator: the rule alone decides; the annotation stays the
    # schema, with the check's own limits merged in (_Limits)
    def __init__(self, run: Callable[[Any], Any], typed: bool, schema: dict[str, Any]):
        items: tuple[Any, ...] = (
            (BeforeValidator(run),) if typed else (SkipValidation, BeforeValidator(run))
        )
        self.items = (*items, _Limits(schema)) if schema else items

    def __iter__(self):
        return iter(self.items)


class _Limits:
    """A rule's limits in its field's JSON Schema: ``items`` merged into the list's items."""

    def __init__(self, schema: dict[str, Any]):
        self.schema = schema

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        out = handler(core_schema)
        for key, value in self.schema.items():
            if key == "items" and isinstance(out.get("items"), dict):
                out["items"] = {**out["items"], **copy.deepcopy(value)}
            else:
                out[key] = copy.deepcopy(value)
        return out


# -- shared field types ---------------------------------------------------------------------

# the name of a project, registry or signing key (unique in the account), a release's version
Name = Annotated[str, rule(string(max_length=NAME_MAX))]
