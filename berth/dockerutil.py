"""Docker engine access for the device: which engine, and the few calls Berth makes."""

from __future__ import annotations

import logging
import os
from typing import Any

import docker
import docker.errors

from berth import registryclient

log = logging.getLogger(__name__)

DEFAULT_URL = "unix:///var/run/docker.sock"


class DockerUnavailable(RuntimeError):
    """The Docker engine cannot be reached."""


def engine_url(opts: dict[str, Any] | None = None) -> str:
    """Minion option ``docker.url``, else ``$DOCKER_HOST``, else the default socket."""
    url = (opts or {}).get("docker.url") or os.environ.get("DOCKER_HOST") or DEFAULT_URL
    return str(url)


def client(url: str, timeout: int = 120) -> docker.DockerClient:
    try:
        return docker.DockerClient(base_url=url, version="auto", timeout=timeout)
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(f"cannot reach the Docker engine at {url}: {exc}") from None


def split_ref(ref: str) -> tuple[str, str]:
    """``host:port/name:tag`` -> (``host:port/name``, ``tag``); ``name@sha256:...`` -> (name, digest)."""
    name, sep, digest = ref.partition("@")
    if sep:
        return name, digest
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    return name, tag


def list_containers(cli: docker.DockerClient) -> list[dict[str, Any]]:
    """All containers as summaries: name, id, state, status, image, labels, created.

    Uses the list endpoint only (one request), so it stays cheap for the no-op check.
    """
    out = []
    for c in cli.api.containers(all=True):
        names = c.get("Names") or []
        out.append(
            {
                "name": names[0].lstrip("/") if names else c["Id"][:12],
                "id": c["Id"],
                "state": c.get("State", ""),
                "status": c.get("Status", ""),
                "image": c.get("Image", ""),
                "image_id": c.get("ImageID", ""),
                "labels": c.get("Labels") or {},
                "created": c.get("Created", 0),
            }
        )
    return out


def local_image_refs(cli: docker.DockerClient) -> set[str]:
    """Every reference the engine has an image for: tags and digests (``name@sha256:...``)."""
    refs: set[str] = set()
    for img in cli.api.images():
        refs.update(t for t in (img.get("RepoTags") or []) if t != "<none>:<none>")
        refs.update(d for d in (img.get("RepoDigests") or []) if not d.startswith("<none>@"))
    return refs


def repo_digests(cli: docker.DockerClient, ref: str) -> list[str] | None:
    """``RepoDigests`` of the image ``ref`` names on the engine; None when it has none such."""
    try:
        return list(cli.api.inspect_image(ref).get("RepoDigests") or [])
    except docker.errors.ImageNotFound:
        return None


def registry_host(url: str) -> str:
    """Registry address as used in image references: no scheme, no trailing slash."""
    return registryclient.host_of(url)


def login(cli: docker.DockerClient, url: str, username: str, password: str) -> None:
    """Check the credentials against the registry through the engine (like ``docker login``)."""
    host = registry_host(url)
    try:
        cli.login(username=username, password=password, registry=host, reauth=True)
    except docker.errors.APIError as exc:
        raise RegistryLoginError(host, _api_message(exc)) from None


class RegistryLoginError(RuntimeError):
    def __init__(self, registry: str, reason: str) -> None:
        self.registry = registry
        super().__init__(f"login to registry {registry} failed: {reason}")


class PullError(RuntimeError):
    def __init__(self, ref: str, reason: str) -> None:
        self.ref = ref
        super().__init__(f"pull of {ref} failed: {reason}")


def pull(cli: docker.DockerClient, ref: str, auth: dict[str, Any] | None = None) -> str:
    """Pull ``ref``; return the image id. ``auth`` is ``{"username","password"}`` or None."""
    repo, tag = split_ref(ref)
    try:
        image = cli.images.pull(repo, tag=tag, auth_config=auth or None)
    except docker.errors.APIError as exc:
        raise PullError(ref, _api_message(exc)) from None
    except docker.errors.DockerException as exc:
        raise PullError(ref, str(exc)) from None
    return str(image.id)


def _api_message(exc: docker.errors.APIError) -> str:
    return (exc.explanation or str(exc)).strip() if hasattr(exc, "explanation") else str(exc)


def api_message(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError):
        return _api_message(exc)
    return str(exc)


def logs(
    cli: docker.DockerClient,
    name: str,
    tail: int | str = "all",
    since: Any = None,
    timestamps: bool = False,
) -> str:
    kwargs: dict[str, Any] = {
        "stdout": True,
        "stderr": True,
        "timestamps": bool(timestamps),
        "tail": tail,
    }
    if since is not None:
        kwargs["since"] = since
    data = cli.api.logs(name, **kwargs)
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
