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

import ipaddress
import logging
import os
import re

import requests

log = logging.getLogger(__name__)

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386"}
DOCKER_HUB = "registry-1.docker.io"


class SizeUnknown(Exception):
    pass


def split(ref: str) -> tuple[str, str, str]:
    """(registry host, repository, tag or digest) of an image reference."""
    name, sep, digest = ref.partition("@")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, path = first, rest
    else:
        host, path = DOCKER_HUB, name
    repo, _, tag = path.rpartition(":") if ":" in path.split("/")[-1] else (path, "", "latest")
    if host == DOCKER_HUB and "/" not in repo:
        repo = f"library/{repo}"
    return host, repo, digest if sep else tag


def _scheme(host: str, url: str | None) -> str:
    if url and "://" in url:
        return url.split("://", 1)[0]
    hostname = host.rsplit(":", 1)[0].strip("[]")
    try:
        loopback = ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        loopback = hostname == "localhost"
    # the engine talks plain HTTP to a loopback registry by default; so do we
    return "http" if loopback else "https"


def _get(session, url: str, auth: tuple[str, str] | None, accept: str, timeout: float):
    r = session.get(url, headers={"Accept": accept}, auth=auth, timeout=timeout)
    challenge = r.headers.get("WWW-Authenticate", "")
    if r.status_code == 401 and challenge.lower().startswith("bearer "):
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", None)
        if not realm:
            raise SizeUnknown(f"{url}: bearer challenge without realm")
        tok = session.get(realm, params=params, auth=auth, timeout=timeout)
        tok.raise_for_status()
        body = tok.json()
        token = body.get("token") or body.get("access_token")
        r = session.get(
            url,
            headers={"Accept": accept, "Authorization": f"Bearer {token}"},
            timeout=timeout,
        )
    if r.status_code != 200:
        raise SizeUnknown(f"{url}: HTTP {r.status_code}")
    return r.json()


def image_size(
    ref: str,
    auth: dict | None = None,
    registry_url: str | None = None,
    arch: str = "amd64",
    timeout: float = 15.0,
) -> int:
    """Compressed bytes of ``ref``'s layers and config, from its registry manifest."""
    host, repo, tag = split(ref)
    base = f"{_scheme(host, registry_url)}://{host}/v2/{repo}/manifests/"
    creds = (auth["username"], auth["password"]) if auth and auth.get("username") else None
    with requests.Session() as session:
        try:
            manifest = _get(session, base + tag, creds, ", ".join(MANIFEST_TYPES), timeout)
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
                manifest = _get(
                    session, base + chosen["digest"], creds, ", ".join(MANIFEST_TYPES), timeout
                )
        except (requests.RequestException, ValueError) as exc:
            raise SizeUnknown(f"{ref}: {exc}") from None
    layers = manifest.get("layers")
    if layers is None:
        raise SizeUnknown(f"{ref}: manifest without layers")
    return sum(int(b.get("size") or 0) for b in [*layers, manifest.get("config") or {}])


def free_bytes(cli) -> tuple[str, int] | None:
    """(data root, bytes free there), or None when the data root is not on this machine."""
    root = (cli.info() or {}).get("DockerRootDir")
    if not root or not os.path.isdir(root):
        return None
    st = os.statvfs(root)
    return root, st.f_bavail * st.f_frsize


def engine_arch(cli) -> str:
    arch = (cli.info() or {}).get("Architecture") or "x86_64"
    return ARCH.get(arch, arch)


def _mb(n: float) -> str:
    return f"{n / 1e6:.0f} MB"


def shortfall(cli, pulls: list[tuple[str, dict | None, str | None]], factor: float, margin: int):
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
