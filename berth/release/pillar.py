"""The device's release pillar: its shape, declared once, and reading it.

The API writes ``docker:release`` and ``docker:registries`` (``GET /master/minions/<id>/pillar/``,
:class:`MinionPillar`; ``api.releases.serializers.release_for_device``), the ext_pillar
``berth_api`` puts them in the minion's pillar (``berth.master.minion_pillar``), and the device
reads them (``berth.release.model.target_from_pillar``): all through the types below, so mypy
checks every key at both ends. ``docker:error`` is set by the ext_pillar when the fleet API
could not be asked; the ``docker`` execution module and the ``docker_release`` state read the
pillar through :func:`get` and :func:`release_and_registries`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypedDict


class PillarContainer(TypedDict):
    """A container of ``docker:release:containers`` (also the API's container object)."""

    name: str
    image: str
    tag: str
    required_tags: list[str]
    startup_parameters: dict[str, Any]
    purge_data: bool
    registry: int | None  # an id of docker:registries, or None: the engine's default registry
    digest: str | None  # pinned: pulled, checked and run as <repo>@<digest>
    fully_qualified_name: str


class PillarSigningKey(TypedDict):
    name: str
    public_key: str  # PEM


class PillarSignatures(TypedDict):
    """``docker:release:signatures``: the account's signing policy and keys."""

    required: bool
    keys: list[PillarSigningKey]


class ReleasePillar(TypedDict):
    """``docker:release``: the release as the API returns it, without its fleet-wide lists."""

    id: int
    project: int
    version: str
    version_hash: str
    containers: list[PillarContainer]
    remove_containers: list[str]
    created: str | None
    bind_prefixes: list[str]  # the account's release policy: where binds may go
    signatures: PillarSignatures


class RegistryPillar(TypedDict):
    """An entry of ``docker:registries`` (keyed by the registry id as text)."""

    url: str
    username: str | None
    password: str | None


class LogbookPillar(TypedDict):
    """``berth:logbook``: where and as whom the device's shipper sends samples."""

    url: str
    token: str
    device_id: str


class MinionPillar(TypedDict):
    """The API's answer to ``GET /master/minions/<id>/pillar/``, for the ext_pillar."""

    release: ReleasePillar | None
    registries: dict[str, RegistryPillar]
    logbook: LogbookPillar | None
    report_key: str | None
    update_lock_override: bool


Salt = Mapping[str, Callable[..., Any]]


class PillarError(Exception):
    """Pillar ``docker:error`` is set: the release pillar could not be built."""


def get(salt: Salt, key: str, default: Any = None) -> Any:
    """``pillar.get`` through the loader's ``__salt__``."""
    # Salt 3008 masks pillar values returned by pillar.get unless asked for the real ones
    return salt["pillar.get"](key, default, unmask=True)


def release_and_registries(
    salt: Salt, release: Any = None, registries: Any = None
) -> tuple[ReleasePillar | None, dict[str, RegistryPillar]]:
    """``(release, registries)``: the ones given, else the pillar's. Without a given
    release, raises :class:`PillarError` when ``docker:error`` is set."""
    if release is None:
        error = get(salt, "docker:error")
        if error:
            raise PillarError(error)
        release = get(salt, "docker:release", None)
    if registries is None:
        registries = get(salt, "docker:registries", {}) or {}
    return release, registries
