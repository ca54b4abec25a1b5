"""Is there room for a release's images? Checked before anything is pulled or stopped.

What a pull needs is estimated from the registry: the compressed sizes of the layers and
config in the image manifest (for a multi-platform index, the manifest of the engine's
platform), times ``factor`` (layers are downloaded compressed, then unpacked next to them)
plus a fixed ``margin``. It is compared with the free space of the filesystem holding the
engine's data root (``docker info`` ``DockerRootDir``). Shared layers count once per image,
so the estimate errs on the large side.

A size that cannot be learnt (registry unreachable, unknown manifest type) is left out:
the pull itself then fails with the registry's own reason. An engine whose data root is
not on this machine (``docker.url`` pointing elsewhere) is not checked.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from berth import registryclient

log = logging.getLogger(__name__)

ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386"}


class SizeUnknown(Exception):
    pass


def image_size(
    ref: str,
    auth: dict[str, Any] | None = None,
    registry_url: str | None = None,
    arch: str = "amd64",
    timeout: float = 15.0,
) -> int:
    """Compressed bytes of ``ref``'s layers and config, from its registry manifest."""
    host, repo, tag = registryclient.split(ref)
    creds = (auth["username"], auth["password"]) if auth and auth.get("username") else None
    with registryclient.Client(host, registry_url, creds, timeout) as client:
        try:
            manifest = client.manifest(repo, tag).json()
            if "manifests" in manifest:  # an index: the entry for this engine's platform
                entries = manifest["manifests"]
                chosen = next(
                    (
                        m
                        for m in entries
                        if (m.get("platform") or {}).get("architecture") == arch
                        and (m.get("platform") or {}).get("os", "linux") == "linux"
                    ),
                    None,
                )
                if chosen is None:
                    raise SizeUnknown(f"{ref}: no manifest for linux/{arch}")
                manifest = client.manifest(repo, chosen["digest"]).json()
        except (registryclient.RegistryError, ValueError, AttributeError, KeyError) as exc:
            raise SizeUnknown(f"{ref}: {exc}") from None
    layers = manifest.get("layers")
    if layers is None:
        raise SizeUnknown(f"{ref}: manifest without layers")
    return sum(int(b.get("size") or 0) for b in [*layers, manifest.get("config") or {}])


def free_bytes(cli: Any) -> tuple[str, int] | None:
    """(data root, bytes free there), or None when the data root is not on this machine."""
    root = (cli.info() or {}).get("DockerRootDir")
    if not root or not os.path.isdir(root):
        return None
    st = os.statvfs(root)
    return root, st.f_bavail * st.f_frsize


def engine_arch(cli: Any) -> str:
    arch = (cli.info() or {}).get("Architecture") or "x86_64"
    return ARCH.get(arch, arch)


def _mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB"


def shortfall(
    cli: Any, pulls: list[tuple[str, dict[str, Any] | None, str | None]], factor: float, margin: int
) -> str | None:
    """None when ``pulls`` (``[(ref, auth, registry url)]``) fit; else the reason they do not."""
    if factor <= 0 or not pulls:
        return None
    where = free_bytes(cli)
    if where is None:
        log.info("berth release: engine data root is not local, free space not checked")
        return None
    root, free = where
    arch = engine_arch(cli)
    sizes = {}
    for ref, auth, url in pulls:
        try:
            sizes[ref] = image_size(ref, auth, url, arch)
        except SizeUnknown as exc:
            log.warning("berth release: size of %s unknown, not counted: %s", ref, exc)
    needed = int(sum(sizes.values()) * factor) + margin
    if needed <= free:
        return None
    return (
        f"not enough disk space for the release's images: {_mb(needed)} needed "
        f"({_mb(sum(sizes.values()))} to download x {factor:g} to unpack + {_mb(margin)} margin), "
        f"{_mb(free)} free on {root}; nothing was stopped"
    )
