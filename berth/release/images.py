"""Image references of a release's containers.

A container that names a registry is pulled as ``<registry url>/<image>:<tag>``;
one without a registry as ``<image>:<tag>``. A container whose release pins a digest is
pulled and run as ``<registry url>/<image>@sha256:...`` instead (docs/release.md "Digest
pinning"); its ``required_tags`` stay tags.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from berth.dockerutil import registry_host
from berth.registryclient import DIGEST_RE


class ReleaseError(ValueError):
    """The release (pillar ``docker:release``) is not usable as given."""


def find_registry(registries: Mapping[Any, Any] | None, registry_id: Any) -> dict[str, Any]:
    """The pillar entry of ``registry_id``; pillar keys may be ints (YAML) or strings (JSON)."""
    registries = registries or {}
    for key in (registry_id, str(registry_id)):
        if key in registries:
            entry = registries[key]
            break
    else:
        try:
            entry = registries[int(registry_id)]
        except (KeyError, ValueError, TypeError):
            raise ReleaseError(
                f"registry {registry_id!r} is not in pillar docker:registries"
            ) from None
    if not isinstance(entry, dict) or not entry.get("url"):
        raise ReleaseError(f"registry {registry_id!r} in pillar docker:registries has no url")
    return entry


def ref(image: str, tag: str, registry: dict[str, Any] | None = None) -> str:
    if registry:
        return f"{registry_host(registry['url'])}/{image}:{tag}"
    return f"{image}:{tag}"


def pinned(image: str, digest: str, registry: dict[str, Any] | None = None) -> str:
    if registry:
        return f"{registry_host(registry['url'])}/{image}@{digest}"
    return f"{image}@{digest}"


def container_digest(container: Mapping[str, Any]) -> str | None:
    """The container's pinned digest (pillar ``digest``), None when the release runs it by tag."""
    digest = container.get("digest")
    if digest is None:
        return None
    if not isinstance(digest, str) or not DIGEST_RE.fullmatch(digest):
        raise ReleaseError(
            f"docker:release container {container.get('name')!r}: 'digest' is not "
            f"sha256:<64 hex digits>: {str(digest)[:80]!r}"
        )
    return digest


def container_refs(
    container: Mapping[str, Any], registries: Mapping[str, Any] | None
) -> tuple[str, list[str]]:
    """(the image the container runs, the refs of its required tags)."""
    registry = (
        find_registry(registries, container["registry"])
        if container.get("registry") is not None
        else None
    )
    digest = container_digest(container)
    main = (
        pinned(container["image"], digest, registry)
        if digest
        else ref(container["image"], container["tag"], registry)
    )
    required = [ref(container["image"], t, registry) for t in container.get("required_tags") or []]
    return main, [r for r in required if r != main]
