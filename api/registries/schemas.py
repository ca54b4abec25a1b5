"""Registry bodies: ``/docker/registries/``; the password is write-only."""

from __future__ import annotations

from typing import Annotated, Any

from api.bodies import TIMESTAMP, RequestBody, ResponseBody, doc, rule
from api.validation import ANY_TEXT, NON_BLANK, REGISTRY_RE, SPACE, FieldError, string


def registry_url(value: Any) -> str:
    """``host[:port][/path]``; a leading ``https://``/``http://`` and trailing ``/`` are dropped,
    because devices pull ``<url>/<image>:<tag>``."""
    value = string(max_length=255)(value)
    for scheme in ("https://", "http://"):
        if value.lower().startswith(scheme):
            value = value[len(scheme) :]
    value = value.rstrip("/")
    if not REGISTRY_RE.fullmatch(value):
        raise FieldError(
            f'"{value}" is not a registry address: expected host[:port][/path], e.g. "registry.example.com:5000".'
        )
    return value


# What registry_url accepts, for OpenAPI: optional http(s):// and trailing slashes around it.
REGISTRY_URL_PATTERN = (
    rf"^[{SPACE}]*(?:[hH][tT][tT][pP][sS]?://)?"
    + REGISTRY_RE.pattern.strip("^$")
    + rf"/*[{SPACE}]*$"
)


class RegistryInput(RequestBody):
    name: Annotated[
        str, rule(string(max_length=100)), doc("Unique in the account.", maxLength=100, **NON_BLANK)
    ]
    url: Annotated[
        str,
        rule(registry_url),
        doc(
            "host[:port][/path]; a scheme is dropped.", maxLength=255, pattern=REGISTRY_URL_PATTERN
        ),
    ]
    username: Annotated[str, rule(string(max_length=255)), doc(maxLength=255, **NON_BLANK)]
    password: Annotated[
        str,
        rule(string(max_length=1024, strip=False)),
        doc(
            "Write-only, encrypted at rest; optional on update (the stored one is kept).",
            writeOnly=True,
            minLength=1,
            maxLength=1024,
            **ANY_TEXT,
        ),
    ]


class Registry(ResponseBody):
    id: Annotated[int, doc(readOnly=True)]
    name: str
    url: Annotated[str, doc("host[:port][/path]")]
    username: str
    created: Annotated[str, TIMESTAMP, doc(format="date-time", readOnly=True)]
