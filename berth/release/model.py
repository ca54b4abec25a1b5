"""The target release (from pillar ``docker:release``, :class:`berth.release.pillar.ReleasePillar`) and the observed engine state.

Both are plain data so that :mod:`berth.release.plan` stays a pure function.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from berth import startup_params
from berth.contract import Label, fully_qualified_name
from berth.release import policy
from berth.release.images import ReleaseError, container_digest, container_refs, find_registry
from berth.release.pillar import PillarContainer, ReleasePillar


@dataclass(frozen=True)
class TargetContainer:
    name: str  # short name, e.g. "curveball"
    fq_name: str  # container name on the engine, "deployment-curveball-7"
    image: str  # reference the container runs
    required: tuple[str, ...]  # references of its required tags
    registry_id: object  # pillar registry id or None
    create_kwargs: dict[
        str, Any
    ]  # docker SDK containers.create kwargs (name/image/labels included)
    purge_paths: tuple[str, ...]
    digest: str | None = None  # pinned digest: ``image`` is then ``<repo>@<digest>``


@dataclass(frozen=True)
class Target:
    release_id: int | str
    version: str
    version_hash: str
    project: object
    containers: tuple[TargetContainer, ...]
    remove_containers: tuple[str, ...]
    registries: dict[
        Any, Any
    ]  # {registry id: {"url","username","password"}} for registries the release uses
    # the account's bind prefixes (berth.release.policy): where binds may go besides the data roots
    bind_prefixes: tuple[str, ...] = ()
    # pillar docker:release:signatures as given ({"required", "keys"}; berth.release.trust)
    signatures: object = None

    @property
    def refs(self) -> list[str]:
        """Every image reference the release needs, in pull order, without duplicates."""
        out: list[str] = []
        for c in self.containers:
            for r in (c.image, *c.required):
                if r not in out:
                    out.append(r)
        return out

    def registry_of(self, ref: str) -> object:
        for c in self.containers:
            if ref == c.image or ref in c.required:
                return c.registry_id
        return None

    def registry(self, registry_id: object) -> dict[str, Any]:
        """The entry of pillar ``docker:registries`` for ``registry_id`` (ids compare as text)."""
        for key, entry in self.registries.items():
            if str(key) == str(registry_id):
                found: dict[str, Any] = entry
                return found
        raise KeyError(registry_id)

    def summary(self) -> dict[str, Any]:
        return {
            "release_id": self.release_id,
            "version": self.version,
            "version_hash": self.version_hash,
            "project": self.project,
        }


@dataclass
class EngineState:
    containers: list[dict[str, Any]]  # dockerutil.list_containers() summaries
    images: set[str]  # local image references
    applied: dict[str, Any] | None = None  # record of the last successfully applied release
    logged_in: set[str] = field(default_factory=set)  # login keys already verified (see executor)


def _require(mapping: Mapping[str, object], key: str, where: str) -> Any:
    value = mapping.get(key)
    if value is None or value == "":
        raise ReleaseError(f"{where}: '{key}' is missing")
    return value


def _container(
    raw: PillarContainer,
    name: str,
    release_id: Any,
    registries: Mapping[str, Any] | None,
    labels: Mapping[Label, str],
) -> TargetContainer:
    """One container of ``docker:release``, checked, as the engine will create it."""
    where = f"docker:release container {name!r}"
    _require(raw, "image", where)
    _require(raw, "tag", where)
    fq_name = str(raw.get("fully_qualified_name") or fully_qualified_name(name, release_id))
    image, required = container_refs(raw, registries)
    try:
        kwargs = startup_params.to_create_kwargs(raw.get("startup_parameters") or {})
    except startup_params.StartupParameterError as exc:
        raise ReleaseError(f"{where}: startup_parameters: {exc}") from None
    kwargs["labels"] = {**kwargs.get("labels", {}), **labels, Label.NAME: name}
    kwargs["name"] = fq_name
    kwargs["image"] = image
    purge: tuple[str, ...] = ()
    if raw.get("purge_data"):
        purge = tuple(
            dict.fromkeys(
                v.split(":", 1)[0] for v in kwargs.get("volumes", []) if v.startswith("/")
            )
        )
    return TargetContainer(
        name,
        fq_name,
        image,
        tuple(required),
        raw.get("registry"),
        kwargs,
        purge,
        container_digest(raw),
    )


def target_from_pillar(release: ReleasePillar, registries: Mapping[str, Any] | None) -> Target:
    """Validate and normalise pillar ``docker:release``; raise :class:`ReleaseError` naming the problem."""
    if not isinstance(release, dict):
        raise ReleaseError("docker:release must be a mapping")
    release_id = _require(release, "id", "docker:release")
    version_hash = str(_require(release, "version_hash", "docker:release"))
    raw_containers = release.get("containers") or []
    if not isinstance(raw_containers, list):
        raise ReleaseError("docker:release: 'containers' must be a list")
    project = release.get("project")
    labels = {Label.RELEASE: str(release_id), Label.VERSION_HASH: version_hash}
    if project is not None:
        labels[Label.PROJECT] = str(project)

    containers = []
    used_registries: dict[Any, Any] = {}
    seen: set[str] = set()
    for i, raw in enumerate(raw_containers):
        where = f"docker:release container #{i + 1}"
        if not isinstance(raw, dict):
            raise ReleaseError(f"{where} must be a mapping")
        name = str(_require(raw, "name", where))
        if name in seen:
            raise ReleaseError(f"docker:release container {name!r} appears twice")
        seen.add(name)
        containers.append(_container(raw, name, release_id, registries, labels))
        if raw.get("registry") is not None:
            used_registries[raw["registry"]] = find_registry(registries, raw["registry"])

    try:
        prefixes = policy.bind_prefixes(release.get("bind_prefixes"))
    except ValueError as exc:
        raise ReleaseError(f"docker:release: {exc}") from None
    remove = release.get("remove_containers") or []
    if not isinstance(remove, list) or not all(isinstance(n, str) for n in remove):
        raise ReleaseError("docker:release: 'remove_containers' must be a list of container names")
    return Target(
        release_id,
        str(release.get("version") or ""),
        version_hash,
        project,
        tuple(containers),
        tuple(remove),
        used_registries,
        prefixes,
        release.get("signatures"),
    )
