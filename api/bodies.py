"""How a pydantic model validates a request body with DRF's error shapes, and becomes OpenAPI.

A request body is a :class:`RequestBody` whose fields carry a *rule* (:func:`api.fields.rule`):
a check from :mod:`api.fields` (or a module's own) that takes the raw JSON value and returns the
clean one or raises :class:`api.fields.FieldError` with DRF's exact messages. The
field's type annotation is what OpenAPI shows; the rule is what runs (pydantic's own
coercions are skipped, so ``"1"`` or ``1.0`` are accepted or refused as DRF did, not as
pydantic's lax mode would). A rule's name must not be a field name of the model: annotations
are resolved in the class body, where a field with a default hides a function of its name::

    class ProjectInput(RequestBody):
        name: Annotated[str, rule(string(max_length=100)), doc("Unique in the account.")]

A rule that is an :class:`api.fields.Check` also writes its limits into the field's OpenAPI
schema (``maxLength``, ``pattern`` ...): each limit is written once, in the rule; ``doc`` only
describes.

:func:`parse` runs the model field by field (``partial`` for PATCH skips absent fields)
and returns a :class:`Parsed` that collects errors as ``{"field": ["message"]}``; the
caller adds its database checks (``parsed.error(...)``) and calls ``raise_if_errors()``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic.fields import FieldInfo
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, models_json_schema

from api.fields import DRF_ERROR, FieldErrors
from api.limits import MAX_JSON_DEPTH
from api.types import isoformat

REF_TEMPLATE = "#/components/schemas/{model}"
# pydantic resolves a literal "$ref" itself at generation time; this is replaced afterwards
_REF_MARK = "x-berth-ref"


class RequestBody(BaseModel):
    """A request body. Unknown and read-only keys are ignored, as DRF serializers do."""

    model_config = ConfigDict(extra="ignore", arbitrary_types_allowed=True)


class ResponseBody(BaseModel):
    """A response body: described in OpenAPI (the model an ``@operation`` declares) and built
    by :meth:`body` from the row, so the schema and what the view returns cannot drift."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    @classmethod
    def body(cls, row: Any, **computed: Any) -> dict[str, Any]:
        """The JSON body for ``row`` (an ORM object or a result row, read by field name);
        ``computed``: the fields the row does not hold (lists from other tables, a flag)."""
        source = _With(row, computed) if computed else row
        model = cls.model_validate(source, from_attributes=True)
        return model.model_dump(mode="json", by_alias=True)  # e.g. SaltReturn's "return"


class _With:
    """``row``'s attributes, ``computed``'s keys first (what ``from_attributes`` reads)."""

    __slots__ = ("_computed", "_row")

    def __init__(self, row: Any, computed: dict[str, Any]) -> None:
        self._row, self._computed = row, computed

    def __getattr__(self, name: str) -> Any:
        if name in self._computed:
            return self._computed[name]
        return getattr(self._row, name)


def _isoformat(value: Any) -> Any:
    return isoformat(value) if isinstance(value, datetime) else value


# Annotation metadata of a response's date-time field: a row's datetime is written as every API
# response writes it (api.types.isoformat: UTC, milliseconds, ``Z``).
TIMESTAMP = BeforeValidator(_isoformat)


def ref(model: str) -> Any:
    """Annotation metadata: OpenAPI shows the field as a ``$ref`` to component ``model`` (for a
    field whose rule keeps a plain value, e.g. a dict, yet has a model describing it)."""
    return WithJsonSchema({_REF_MARK: model})


# A free-form value :func:`api.fields.json_value` accepts, as OpenAPI component ``JsonValue``;
# ``JSON_VALUE`` in a ``WithJsonSchema`` refers to it. Not recursive (openapi-spec-validator
# cannot walk a recursive schema): containers are described two levels deep, holding scalars
# below that; the server takes up to ``MAX_JSON_DEPTH`` levels (the description says so).
JSON_VALUE = {_REF_MARK: "JsonValue"}
_NO_NUL = {"pattern": r"^[^\x00]*$"}
_JSON_SCALARS = [
    {"type": "string", **_NO_NUL},
    {"type": "integer", "minimum": -(2**63), "maximum": 2**64 - 1},
    {"type": "number", "not": {"type": "integer"}},
    {"type": "boolean"},
    {"type": "null"},
]


def _json_value_schema(levels: int) -> dict:
    if levels == 0:
        return {"anyOf": copy.deepcopy(_JSON_SCALARS)}
    inner = _json_value_schema(levels - 1)
    return {
        "anyOf": [
            *copy.deepcopy(_JSON_SCALARS),
            {"type": "array", "items": inner},
            {"type": "object", "propertyNames": _NO_NUL, "additionalProperties": inner},
        ]
    }


_JSON_VALUE_SCHEMA = {
    "description": "Any JSON value: strings and keys without NUL, integers within 64 bits, "
    f"nested at most {MAX_JSON_DEPTH} levels (this schema shows two).",
    **_json_value_schema(2),
}


def _resolve_refs(node: Any) -> Any:
    if isinstance(node, dict):
        if _REF_MARK in node:
            return {"$ref": REF_TEMPLATE.format(model=node[_REF_MARK])}
        return {k: _resolve_refs(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_refs(v) for v in node]
    return node


def doc(description: str | None = None, **json_schema: Any) -> Any:
    """Annotation metadata for OpenAPI only: a description, ``examples``, ``readOnly``,
    ``format``; on a response field also the shape it has (``pattern``). A request field's limits
    are its rule's (:class:`api.fields.Check`), never written here again
    (``tests/unit/test_field_rules_once.py``)."""
    return Field(description=description, json_schema_extra=json_schema or None)


def drf_detail(exc: PydanticValidationError) -> dict[str, Any]:
    """A pydantic ValidationError (from a model or one of its fields) in DRF's shape."""
    errors: dict[str, Any] = {}
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        name = str(loc[0]) if loc else "non_field_errors"
        if error["type"] == DRF_ERROR:
            detail = error["ctx"]["detail"]
        elif error["type"] == "missing":
            detail = ["This field is required."]
        elif error["type"] in ("model_type", "model_attributes_type", "dict_type"):
            name, detail = (
                "non_field_errors",
                [f"Invalid data. Expected a dictionary, but got {type(error['input']).__name__}."],
            )
        else:  # not raised by Berth's rules; kept readable
            detail = [error["msg"]]
        errors[name] = detail
    return errors


class Parsed(FieldErrors):
    """The outcome of :func:`parse`: clean ``values`` of the valid fields present (with defaults
    unless partial) and DRF ``errors``."""

    def __init__(self, values: dict[str, Any], errors: dict[str, Any]):
        self.values = values
        self.errors = errors

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)


def parse(
    model: type[BaseModel],
    data: dict[str, Any],
    *,
    partial: bool = False,
    optional: Iterable[str] = (),
) -> Parsed:
    """Validate ``data`` field by field with ``model``; nothing raised, see :class:`Parsed`.
    ``optional``: required fields that this request may leave out (no default is filled in)."""
    # the defaults given: model_construct() would ask pydantic, which inspects the signature of
    # every default factory on every call (a third of the CPU of parsing a small body)
    target = model.model_construct(
        set(), **{n: _default(f) for n, f in model.model_fields.items() if not f.is_required()}
    )
    validator = model.__pydantic_validator__
    values: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name not in data:
            if partial or name in optional:
                continue
            if field.is_required():
                errors[name] = ["This field is required."]
            else:
                values[name] = _default(field)
            continue
        try:
            validator.validate_assignment(target, name, data[name])
        except PydanticValidationError as exc:
            errors.update(drf_detail(exc))
            continue
        values[name] = getattr(target, name)
    return Parsed(values, errors)


_TAKES_DATA: dict[Callable, bool] = {}  # default factory -> does it take the validated data


def _default(field: FieldInfo) -> Any:
    """``field.get_default(call_default_factory=True)``, with the factory's signature inspected
    once, not on every call."""
    factory = field.default_factory
    if factory is not None:
        if factory not in _TAKES_DATA:
            _TAKES_DATA[factory] = bool(field.default_factory_takes_validated_data)
        if not _TAKES_DATA[factory]:
            return factory()  # type: ignore[call-arg]
    return field.get_default(call_default_factory=True)


def validate(model: type[BaseModel], data: dict[str, Any], **kwargs: Any) -> Parsed:
    """:func:`parse`, raising the 400 at once when the body has errors."""
    parsed = parse(model, data, **kwargs)
    parsed.raise_if_errors()
    return parsed


def as_dict(value: Any) -> Any:
    """A parsed nested model (or list of them) as plain dicts of its clean values."""
    if isinstance(value, BaseModel):
        return {name: as_dict(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, list):
        return [as_dict(v) for v in value]
    return value


def _allows_null(schema: dict) -> bool:
    types = schema.get("type")
    return (
        types == "null"
        or (isinstance(types, list) and "null" in types)
        or any(_allows_null(s) for s in schema.get("anyOf", []) + schema.get("oneOf", []))
    )


class _OpenAPISchema(GenerateJsonSchema):
    """JSON Schema 2020-12 as OpenAPI 3.1 embeds it, without pydantic's generated titles."""

    def field_title_should_be_set(self, schema) -> bool:
        return False

    def default_schema(self, schema):
        # an optional field that may be left out but not sent as null: no "default": null
        out = super().default_schema(schema)
        if out.get("default", ...) is None and not _allows_null(out):
            del out["default"]
        return out

    def generate(self, schema, mode="validation"):
        out = super().generate(schema, mode)
        out.pop("title", None)
        return out


def component_schemas(
    requests: Iterable[type[BaseModel]], responses: Iterable[type[BaseModel]]
) -> dict[str, Any]:
    """``components.schemas`` for these models (request bodies in validation mode, responses in
    serialization mode), keyed by class name; nested models become ``$ref`` s."""
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = [(m, "validation") for m in requests]
    pairs += [(m, "serialization") for m in responses]
    _, defs = models_json_schema(pairs, ref_template=REF_TEMPLATE, schema_generator=_OpenAPISchema)
    schemas = _resolve_refs(defs.get("$defs", {}))
    for schema in schemas.values():
        schema.pop("title", None)
    return {**schemas, "JsonValue": copy.deepcopy(_JSON_VALUE_SCHEMA)}
