"""The field rules of the request bodies, each written once: checks with DRF's messages, the
pydantic metadata that runs them (:func:`rule`), and the field types several bodies share.

A check takes a field's raw JSON value and returns the clean one or raises :class:`FieldError`
with DRF's exact message; :class:`FieldErrors` collects a body's errors
(:class:`api.bodies.Parsed`) and raises them as one 400. A check is a :class:`Check`: the code
that enforces a field's limits and, written next to it once, what OpenAPI says of them
(``schema``: ``maxLength``, ``pattern``, ``maxItems``, ``minimum`` ...). :func:`rule` makes a
check a field's validation (instead of pydantic's own coercion) and merges its ``schema`` into
the field's OpenAPI schema, so a model's ``doc(...)`` only describes
(``tests/unit/test_field_rules_once.py``). The numbers are named in :mod:`api.limits`; a check
of one body only lives in that feature's ``schemas.py``; rules across fields or needing the
database are the services' (e.g. ``api.releases.service.validate_release``).

The shared types at the end are used as a field's type: ``name: Annotated[Name, doc("...")]``.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from annotated_types import GroupedMetadata
from pydantic import BeforeValidator, SkipValidation
from pydantic_core import PydanticCustomError

from api.errors import ValidationError
from api.limits import MAX_DB_ID, MAX_JSON_DEPTH, NAME_MAX
from berth import registryclient

# distribution/reference grammar (github.com/distribution/reference, regexp.go)
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
IMAGE_NAME_RE = re.compile(rf"^(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$", re.ASCII)  # Go's \w: ASCII only
REGISTRY_RE = re.compile(rf"^{_DOMAIN}(?:/{_PATH_COMPONENT})*$")
IMAGE_NAME_MAX = 255
# moby daemon/names: RestrictedNamePattern
CONTAINER_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
CONTAINER_NAME_MAX = 100


class Check:
    """A field rule: calling it checks a raw JSON value (the clean value, or ``FieldError``);
    ``schema``: the JSON Schema keywords of what it accepts, merged into the field's OpenAPI
    schema by :func:`api.fields.rule` (``items``: into the schema of a list's items)."""

    def __init__(self, run: Callable[[Any], Any], **schema: Any):
        self.run = run
        self.schema = schema
        self.__doc__ = run.__doc__

    def __call__(self, value: Any) -> Any:
        return self.run(value)


def checks(**schema: Any) -> Callable[[Callable[[Any], Any]], Check]:
    """Decorator: the function is a :class:`Check` accepting what ``schema`` describes."""

    def make(run: Callable[[Any], Any]) -> Check:
        return Check(run, **schema)

    return make


class FieldError(Exception):
    """One field is invalid; ``detail`` is a list of messages or a nested DRF error structure."""

    def __init__(self, detail: list | dict | str):
        self.detail = [detail] if isinstance(detail, str) else detail
        super().__init__(self.detail)


class FieldErrors:
    """DRF errors of one request body, ``{"field": ["message"]}``, raised together as a 400."""

    errors: dict[str, Any]

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def raise_if_errors(self) -> None:
        if self.errors:
            raise ValidationError(self.errors)


def text_problem(value: str) -> str | None:
    """Why a database cannot store ``value`` (a NUL, or a lone UTF-16 surrogate that JSON's
    ``\\ud800`` escapes can produce), or None."""
    if "\x00" in value:
        return "Null characters are not allowed."
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "Lone surrogate characters are not allowed (the text is not valid UTF-8)."
    return None


# The characters Python's ``str.strip()`` and ``\s`` treat as whitespace, spelled out for
# OpenAPI patterns: JSON Schema's ``\s`` (ECMA-262) is another set (no \x85, but \ufeff).
SPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# OpenAPI for a string ``string()`` accepts: at least one non-space character (it strips and
# refuses blank), no NUL anywhere. ``doc(**NON_BLANK)`` next to the rule.
NON_BLANK = {"minLength": 1, "pattern": rf"^[^\x00]*[^{SPACE}\x00][^\x00]*$"}
ANY_TEXT = {"pattern": r"^[^\x00]*$"}


def string(*, max_length: int, allow_blank: bool = False, strip: bool = True) -> Check:
    """A string of at most ``max_length`` characters as sent, stripped unless not ``strip``,
    not blank unless ``allow_blank``; no NUL or lone surrogate."""
    schema: dict[str, Any]
    if allow_blank:
        schema = ANY_TEXT
    elif strip:
        schema = NON_BLANK
    else:
        schema = {"minLength": 1, **ANY_TEXT}

    @checks(maxLength=max_length, **schema)
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise FieldError("Not a valid string.")
        if problem := text_problem(value):
            raise FieldError(problem)
        # the length as sent (OpenAPI's maxLength), surrounding whitespace included
        if len(value) > max_length:
            raise FieldError(f"Ensure this field has no more than {max_length} characters.")
        if strip:
            value = value.strip()
        if not value and not allow_blank:
            raise FieldError("This field may not be blank.")
        return value

    return check


_LEAP_SECOND = re.compile(r"(T[0-9]{2}:[0-9]{2}):60(?=[.+-]|Z|$)")


def iso_datetime(value: Any) -> datetime:
    """An ISO-8601 date-time, in UTC (without an offset: UTC). Every RFC 3339 ``date-time``
    (OpenAPI's ``format: date-time``) is one: lowercase ``t``/``z`` and a leap second ``:60``
    (read as ``:59``) included. Times beyond year 1..9999 once in UTC are clamped to it."""
    if not isinstance(value, str):
        raise FieldError("Datetime has wrong format. Use ISO-8601.")
    text = _LEAP_SECOND.sub(r"\1:59", value.strip().upper()).replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise FieldError("Datetime has wrong format. Use ISO-8601.") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        limit = datetime.min if parsed.year == 1 else datetime.max
        return limit.replace(tzinfo=UTC)


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise FieldError("Must be a valid boolean.")


_DIGITS_RE = re.compile(r"^\s*[0-9]{1,30}\s*$")


def integer(value: Any) -> int:
    """An int, a string of digits, or an integral float (``2.0``: JSON Schema's ``integer``
    includes it, and DRF's ``IntegerField`` accepts it)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and _DIGITS_RE.fullmatch(value):
            return int(value)
        raise FieldError("A valid integer is required.")
    return value


def bounded_integer(min_value: int, max_value: int) -> Check:
    @checks(minimum=min_value, maximum=max_value)
    def check(value: Any) -> int:
        value = integer(value)
        if value < min_value:
            raise FieldError(f"Ensure this value is greater than or equal to {min_value}.")
        if value > max_value:
            raise FieldError(f"Ensure this value is less than or equal to {max_value}.")
        return value

    return check


# A reference to a row in a body (e.g. a report's ``release_id``): what an id column can hold.
db_id = bounded_integer(1, MAX_DB_ID)


def list_of(
    item: Callable[[Any], Any], *, unique: bool = False, max_items: int | None = None
) -> Check:
    """A list whose items pass ``item``; errors come back per index like DRF ``ListField``.

    Linear in the list's length (duplicates found with a set), and ``max_items`` is checked
    before any item is, so a request's cost is bounded by the cap, not by the body size.
    """

    def check(value: Any) -> list:
        if not isinstance(value, list):
            raise FieldError(f'Expected a list of items but got type "{type(value).__name__}".')
        if max_items is not None and len(value) > max_items:
            raise FieldError(f"Ensure this field has no more than {max_items} elements.")
        result, errors = [], {}
        for i, element in enumerate(value):
            try:
                result.append(item(element))
            except FieldError as exc:
                errors[str(i)] = exc.detail
        if errors:
            raise FieldError(errors)
        if unique:
            seen: set = set()
            dupes = set()
            for x in result:
                if x in seen:
                    dupes.add(x)
                seen.add(x)
            if dupes:
                raise FieldError(f"Duplicate items: {', '.join(sorted(map(str, dupes)))}.")
        return result

    return Check(check, **_list_schema(item, unique, max_items))


def _list_schema(item: Callable[[Any], Any], unique: bool, max_items: int | None) -> dict:
    schema: dict[str, Any] = {"maxItems": max_items} if max_items is not None else {}
    if unique:
        schema["uniqueItems"] = True
    if isinstance(item, Check) and item.schema:
        schema["items"] = item.schema
    return schema


def json_value(value: Any, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A free-form JSON value a database and Salt can carry: nesting at most ``max_depth``
    levels, finite numbers, strings (and keys) without NUL or lone surrogates, integers within 64 bits.
    Iterative, so a deep value cannot exhaust the stack; returns ``value`` unchanged."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if problem := text_problem(node):
                raise FieldError(problem)
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise FieldError("NaN and Infinity are not valid JSON numbers.")
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, int):
            if not -(2**63) <= node < 2**64:
                raise FieldError("Integers must fit in 64 bits.")
        elif isinstance(node, (list, dict)):
            if depth > max_depth:
                raise FieldError(f"Nested more than {max_depth} levels deep.")
            if isinstance(node, dict):
                stack.extend((key, depth) for key in node)
                stack.extend((item, depth + 1) for item in node.values())
            else:
                stack.extend((item, depth + 1) for item in node)
    return value


@checks(maxLength=IMAGE_NAME_MAX, pattern=IMAGE_NAME_RE.pattern)
def docker_image(value: Any) -> str:
    value = string(max_length=IMAGE_NAME_MAX)(value)
    if "@" in value or (":" in value.rsplit("/", 1)[-1]):
        raise FieldError('Give the image without a tag or digest; put the tag in "tag".')
    if not IMAGE_NAME_RE.fullmatch(value):
        raise FieldError(
            f'"{value}" is not a valid Docker image name (lowercase letters, digits and separators . _ -, '
            "optionally prefixed by a registry host)."
        )
    return value


def _matching(value: Any, pattern: re.Pattern, what: str) -> str:
    if not isinstance(value, str):
        raise FieldError("Not a valid string.")
    if not pattern.fullmatch(value):
        raise FieldError(f'"{value[:200]}" is not {what}.')
    return value


@checks(pattern=TAG_RE.pattern)
def docker_tag(value: Any) -> str:
    return _matching(
        value,
        TAG_RE,
        "a valid Docker tag (up to 128 letters, digits, _ . -, not starting with . or -)",
    )


DIGEST_RE = re.compile(rf"^{registryclient.DIGEST_RE.pattern}$")


@checks(pattern=DIGEST_RE.pattern)
def image_digest(value: Any) -> str:
    """``sha256:`` and 64 lowercase hex digits, as Docker shows an image's digest."""
    return _matching(value, DIGEST_RE, 'an image digest: "sha256:" and 64 lowercase hex digits')


@checks(pattern=CONTAINER_NAME_RE.pattern, maxLength=CONTAINER_NAME_MAX)
def container_name(value: Any) -> str:
    value = string(max_length=CONTAINER_NAME_MAX)(value)
    if not CONTAINER_NAME_RE.fullmatch(value):
        raise FieldError(
            f'"{value}" is not a valid container name: Docker allows [a-zA-Z0-9][a-zA-Z0-9_.-]+ '
            "(at least 2 characters)."
        )
    return value


# -- rules as pydantic metadata ----------------------------------------------------------

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
