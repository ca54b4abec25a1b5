"""``startup_parameters`` of a release container, as OpenAPI shows them.

What is accepted is decided by :func:`berth.startup_params.validate` (the device uses the
same module to create the container); ``tests/functional/test_api_openapi.py`` checks that
every key described here is one it supports.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict

from api.schemas.base import doc
from berth.contract import RESERVED_LABEL_PREFIX

_Strings = list[str]


class LogConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str | None = None
    config: dict[str, Any] | None = None


class StartupParameters(BaseModel):
    """Validated at the API; an unknown key or bad value is a 400 naming it."""

    model_config = ConfigDict(extra="forbid")

    environment: Annotated[
        str | _Strings | dict[str, str | float | bool],
        doc("Shell-quoted string, list of KEY=VALUE, or map."),
    ] = None
    binds: Annotated[_Strings, doc("/host:/container[:ro|rw]")] = None
    volumes: _Strings | dict[str, Any] = None
    ports: _Strings | dict[str, Any] = None
    network_mode: Annotated[
        str,
        doc(
            "host, none, bridge, a network, or container:<name> (not a protected container, "
            "not hex digits only: docs/security.md)"
        ),
    ] = None
    restart_policy: Annotated[str, doc("no, always, unless-stopped, on-failure[:N]")] = None
    privileged: bool = None
    command: str | _Strings = None
    entrypoint: str | _Strings = None
    labels: Annotated[
        dict[str, str], doc(f"Keys starting with {RESERVED_LABEL_PREFIX} are reserved.")
    ] = None
    devices: _Strings = None
    cap_add: _Strings = None
    mem_limit: Annotated[int | str, doc("bytes or 512m, 1g")] = None
    user: str = None
    working_dir: str = None
    log_config: LogConfig = None
