"""Registry bodies: ``/docker/registries/``; the password is write-only."""

from __future__ import annotations

from typing import Annotated, Any

from api.bodies import TIMESTAMP, RequestBody, ResponseBody, doc
from api.fields import REGISTRY_RE, SPACE, FieldError, Name, checks, rule, string
from api.limits import REGISTRY_PASSWORD_MAX, REGISTRY_URL_MAX, REGISTRY_USERNAME_MAX

# What registry_url accepts, for OpenAPI: optional http(s):// and trailing slashes around it.
REGISTRY_URL_PATTERN = (
    rf"^[{SPACE}]*(?:[hH][tT][tT][pP][sS]?://)?"
    + REGISTRY_RE.pattern.strip("^$")
    + rf"/*[{SPACE}]*$"
)


@checks(maxLength=REGISTRY_URL_MAX, pattern=REGISTRY_URL_PATTERN)
def registry_url(value: Any) -> str:
    """``host[:port][/path]``; a leading ``https://``/``http://`` and trailing ``/`` are dropped,
    because devices pull ``<url>/<image>:<tag>``."""
    value = string(max_length=REGISTRY_URL_MAX)(value)
    for scheme in ("https://", "http://"):
        if value.lower().startswith(scheme):
            value = value[len(scheme) :]
    value = value.rstrip("/")
    if not REGISTRY_RE.fullmatch(value):
        raise FieldError(
            f'"{value}" is not a registry address: expected host[:port][/path], e.g. "registry.example.com:5000".'
        )
    return value


class RegistryInput(RequestBody):
    name: Annotated[Name, doc("Unique in the account.")]
    url: Annotated[str, rule(registry_url), doc("host[:port][/path]; a scheme is dropped.")]
    username: Annotated[str, rule(string(max_length=REGISTRY_USERNAME_MAX))]
    password: Annotated[
        str,
        rule(string(max_length=REGISTRY_PASSWORD_MAX, strip=False)),
        doc(
            "Write-only, encrypted at rest; optional on update (the stored one is kept).",
            writeOnly=True,
        ),
    ]


class Registry(ResponseBody):
    id: Annotated[int, doc(readOnly=True)]
    name: str
    url: Annotated[str, doc("host[:port][/path]")]
    username: str
    created: Annotated[str, TIMESTAMP, doc(format="date-time", readOnly=True)]
