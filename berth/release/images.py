"""Image references of a release's containers.

A container that names a registry is pulled as ``<registry url>/<image>:<tag>``;
one without a registry as ``<image>:<tag>``.
"""

from __future__ import annotations

from berth.dockerutil import registry_host


class ReleaseError(ValueError):
    """The release (pillar ``docker:release``) is not usable as given."""


def find_registry(registries: dict | None, registry_id) -> dict:
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


def ref(image: str, tag: str, registry: dict | None = None) -> str:
    if registry:
        return f"{registry_host(registry['url'])}/{image}:{tag}"
    return f"{image}:{tag}"


def container_refs(container: dict, registries: dict | None) -> tuple[str, list[str]]:
    """(the image the container runs, the refs of its required tags)."""
    registry = (
        find_registry(registries, container["registry"])
        if container.get("registry") is not None
        else None
    )
    main = ref(container["image"], container["tag"], registry)
    required = [ref(container["image"], t, registry) for t in container.get("required_tags") or []]
    return main, [r for r in required if r != main]
