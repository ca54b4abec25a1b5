"""Request-body validation with DRF error shapes, and Docker naming rules."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from api.errors import ValidationError

MISSING: Any = object()
MAX_DB_ID = 2**31 - 1

# distribution/reference grammar (github.com/distribution/reference, regexp.go)
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
IMAGE_NAME_RE = re.compile(rf"^(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
REGISTRY_RE = re.compile(rf"^{_DOMAIN}(?:/{_PATH_COMPONENT})*$")
IMAGE_NAME_MAX = 255
# moby daemon/names: RestrictedNamePattern
CONTAINER_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


class FieldError(Exception):
    """One field is invalid; ``detail`` is a list of messages or a nested DRF error structure."""

    def __init__(self, detail: list | dict | str):
        self.detail = [detail] if isinstance(detail, str) else detail
        super().__init__(self.detail)


class Validator:
    """Collects per-field errors for one request body.

    ``partial`` (PATCH) skips missing fields instead of requiring them.
    """

    def __init__(self, data: dict[str, Any], *, partial: bool = False):
        self.data = data
        self.partial = partial
        self.errors: dict[str, Any] = {}

    def field(
        self,
        name: str,
        check: Callable[[Any], Any],
        *,
        required: bool = True,
        default: Any = MISSING,
        allow_null: bool = False,
    ) -> Any:
        if name not in self.data:
            if self.partial:
                return MISSING
            if required:
                self.errors[name] = ["This field is required."]
                return MISSING
            return default() if callable(default) else default
        value = self.data[name]
        if value is None:
            if allow_null:
                return None
            self.errors[name] = ["This field may not be null."]
            return MISSING
        try:
            return check(value)
        except FieldError as exc:
            self.errors[name] = exc.detail
            return MISSING

    def error(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def raise_if_errors(self) -> None:
        if self.errors:
            raise ValidationError(self.errors)


def string(
    *, max_length: int, allow_blank: bool = False, strip: bool = True
) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise FieldError("Not a valid string.")
        if "\x00" in value:
            raise FieldError("Null characters are not allowed.")
        if strip:
            value = value.strip()
        if not value and not allow_blank:
            raise FieldError("This field may not be blank.")
        if len(value) > max_length:
            raise FieldError(f"Ensure this field has no more than {max_length} characters.")
        return value

    return check


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise FieldError("Must be a valid boolean.")


def integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        raise FieldError("A valid integer is required.")
    return value


def list_of(item: Callable[[Any], Any], *, unique: bool = False) -> Callable[[Any], list]:
    """A list whose items pass ``item``; errors come back per index like DRF ``ListField``."""

    def check(value: Any) -> list:
        if not isinstance(value, list):
            raise FieldError(f'Expected a list of items but got type "{type(value).__name__}".')
        result, errors = [], {}
        for i, element in enumerate(value):
            try:
                result.append(item(element))
            except FieldError as exc:
                errors[str(i)] = exc.detail
        if errors:
            raise FieldError(errors)
        if unique:
            dupes = sorted({x for x in result if result.count(x) > 1})
            if dupes:
                raise FieldError(f"Duplicate items: {', '.join(map(str, dupes))}.")
        return result

    return check


def docker_image(value: Any) -> str:
    value = string(max_length=IMAGE_NAME_MAX)(value)
    if "@" in value or (":" in value.rsplit("/", 1)[-1]):
        raise FieldError('Give the image without a tag or digest; put the tag in "tag".')
    if not IMAGE_NAME_RE.match(value):
        raise FieldError(
            f'"{value}" is not a valid Docker image name (lowercase letters, digits and separators . _ -, '
            "optionally prefixed by a registry host)."
        )
    return value


def docker_tag(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError("Not a valid string.")
    if not TAG_RE.match(value):
        raise FieldError(
            f'"{value}" is not a valid Docker tag (up to 128 letters, digits, _ . -, not starting with . or -).'
        )
    return value


def container_name(value: Any) -> str:
    value = string(max_length=100)(value)
    if not CONTAINER_NAME_RE.match(value):
        raise FieldError(
            f'"{value}" is not a valid container name: Docker allows [a-zA-Z0-9][a-zA-Z0-9_.-]+ '
            "(at least 2 characters)."
        )
    return value
