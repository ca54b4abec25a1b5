"""Each field limit of a request body is written once (issue 19, item 1): in the field's rule.

A rule (:func:`api.fields.rule`) both enforces a limit and tells OpenAPI about it (the
check's ``schema``, :class:`api.fields.Check`), so a ``maxLength``, ``pattern``, ``maxItems``,
``minimum`` ... written again in a ``doc(...)`` next to it is a second place that can drift
from the first. This test fails on any constraint keyword a request model's ``doc`` states,
on the field or inside its type (list items)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Annotated, Any, get_args, get_origin

from pydantic.fields import FieldInfo

import api
from api.bodies import RequestBody

# JSON Schema keywords that constrain a value (not descriptions, formats or readOnly)
CONSTRAINTS = {
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "items",
    "not",
}


def _request_models() -> list[type[RequestBody]]:
    for module in pkgutil.walk_packages(api.__path__, "api."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)
    found, todo = [], [RequestBody]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return [cls for cls in found if cls.__module__.startswith("api.")]


def _doc_constraints(extra: Any) -> set[str]:
    return set(extra) & CONSTRAINTS if isinstance(extra, dict) else set()


def _inner(annotation: Any) -> set[str]:
    """Constraints written in ``doc`` metadata inside a type (``list[Annotated[str, doc(...)]]``)."""
    found: set[str] = set()
    if get_origin(annotation) is Annotated:
        for meta in annotation.__metadata__:
            if isinstance(meta, FieldInfo):
                found |= _doc_constraints(meta.json_schema_extra)
    for arg in get_args(annotation):
        found |= _inner(arg)
    return found


def written_twice() -> dict[str, set[str]]:
    """``Model.field`` -> the constraint keywords its ``doc`` states besides its rule."""
    twice = {}
    for model in _request_models():
        for name, field in model.model_fields.items():
            keys = _doc_constraints(field.json_schema_extra) | _inner(field.annotation)
            if keys:
                twice[f"{model.__qualname__}.{name}"] = keys
    return twice


def test_no_request_field_writes_a_limit_in_its_doc():
    assert written_twice() == {}


def test_a_rule_writes_its_limits_into_openapi():
    from api.projects.schemas import ProjectInput
    from api.releases.schemas import ReleaseInput

    name = ProjectInput.model_json_schema()["properties"]["name"]
    assert name["maxLength"] == 100 and name["minLength"] == 1 and "pattern" in name
    remove = ReleaseInput.model_json_schema()["properties"]["remove_containers"]
    assert remove["maxItems"] == 1000 and remove["uniqueItems"] is True
    assert remove["items"]["type"] == "string" and remove["items"]["maxLength"] == 100
