"""Docker Registry HTTP API v2, the few calls Berth makes itself: a manifest by tag or digest,
and a small blob (a cosign signature's payload, ``berth/signing.py``).

Used by the API (a new release's ``image:tag`` pinned to the digest the registry serves,
``api/releases/pinning.py``) and by the device (the size of what it is about to pull,
``berth/release/space.py``). Authentication follows the registry's challenge: HTTP Basic with
the stored credentials, or the bearer-token flow (``WWW-Authenticate: Bearer realm=...,
service=..., scope=...``: a token from the realm, asked with the credentials when there are
any). A registry on a loopback address is spoken to over plain HTTP, as the Docker engine does
by default; any other over HTTPS, unless its URL names a scheme.

The digest of a manifest is the SHA-256 of its bytes as served: for a multi-platform image
(OCI image index, Docker manifest list) that is the index's digest, the one Docker shows in
``RepoDigests`` after pulling by tag. A ``Docker-Content-Digest`` header that does not match the
bytes is an error, never believed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import requests

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_TYPES = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
DOCKER_HUB = "registry-1.docker.io"
DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
# the distribution spec's limit on a manifest; a registry sending more is not read further
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_TOKEN_BYTES = 64 * 1024


class RegistryError(Exception):
    """A manifest could not be had. ``reason`` is one of the short words below, ``detail`` says more."""

    UNKNOWN = "unknown tag"
    UNREACHABLE = "registry unreachable"
    AUTH = "auth refused"
    BAD_ANSWER = "unusable answer"

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class Manifest:
    body: bytes
    media_type: str
    digest: str  # sha256:<hex> of body

    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


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


def host_of(url: str) -> str:
    """A registry URL as image references use it: no scheme, no trailing slash."""
    url = url.strip()
    for scheme in ("https://", "http://"):
        if url.startswith(scheme):
            url = url[len(scheme) :]
    return url.rstrip("/")


def scheme(host: str, url: str | None = None) -> str:
    """``http`` for a loopback registry (as the engine does), else ``https``; a URL's own wins."""
    if url and "://" in url:
        return url.split("://", 1)[0]
    hostname = host.rsplit(":", 1)[0].strip("[]") if not host.endswith("]") else host.strip("[]")
    try:
        loopback = ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        loopback = hostname == "localhost"
    return "http" if loopback else "https"


ANSWER_TIMEOUTS = 3  # a whole answer read without a deadline: within 3 x the client's timeout


def _read(resp: requests.Response, limit: int, deadline: float | None = None) -> bytes:
    """At most ``limit`` bytes of a body, read before ``deadline`` (``time.monotonic()``)."""
    body = b""
    read1 = getattr(resp.raw, "read1", None)  # urllib3 2: whatever has arrived, up to n bytes
    if read1 is not None:
        chunks = iter(lambda: read1(65536, decode_content=True), b"")
    else:  # urllib3 1.26: read(n) waits for n bytes, so small pieces keep the deadline looked at
        chunks = resp.iter_content(1024)
    for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise RegistryError(RegistryError.BAD_ANSWER, f"more than {limit} bytes")
        if deadline is not None and time.monotonic() > deadline:
            raise RegistryError(RegistryError.UNREACHABLE, "timed out reading the answer")
    return body


class Client:
    """One registry, with the credentials to use there (``(username, password)`` or None)."""

    def __init__(
        self,
        host: str,
        url: str | None = None,
        creds: tuple[str, str] | None = None,
        timeout: float = 10.0,
    ):
        self.host = host
        self.base = f"{scheme(host, url)}://{host}"
        self.creds = creds
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy from the environment for the operator's registry
        self._bearer: dict[str, str] = {}  # scope -> token

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def manifest(
        self,
        repo: str,
        reference: str,
        limit: int = MAX_MANIFEST_BYTES,
        deadline: float | None = None,
    ) -> Manifest:
        """The manifest ``repo:reference`` (a tag or a digest), its bytes checked against its
        digest; at most ``limit`` bytes, read before ``deadline`` (``time.monotonic()``)."""
        what = f"{repo}@{reference}" if reference.startswith("sha256:") else f"{repo}:{reference}"
        url = f"{self.base}/v2/{repo}/manifests/{reference}"
        accept = {"Accept": ", ".join(MANIFEST_TYPES)}
        body, headers = self._fetch(url, accept, f"manifest {what}", limit, deadline)
        media_type = headers.get("Content-Type", "").split(";")[0].strip()
        claimed = headers.get("Docker-Content-Digest", "").strip()
        if media_type not in MANIFEST_TYPES:
            try:  # an OCI manifest may leave the type to its body
                media_type = json.loads(body).get("mediaType") or media_type
            except (ValueError, AttributeError):
                pass
        if media_type not in MANIFEST_TYPES:
            raise RegistryError(
                RegistryError.BAD_ANSWER,
                f"{self.host} serves {what} as {media_type or 'an unnamed type'}, "
                "not an image manifest or index Berth can pin",
            )
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if claimed.startswith("sha256:") and claimed != digest:
            raise RegistryError(
                RegistryError.BAD_ANSWER,
                f"{self.host} says {what} is {claimed} but its manifest hashes to {digest}",
            )
        if reference.startswith("sha256:") and reference != digest:
            raise RegistryError(
                RegistryError.BAD_ANSWER,
                f"{self.host} served a manifest hashing to {digest} for {what}",
            )
        return Manifest(body, media_type, digest)

    def blob(self, repo: str, digest: str, limit: int, deadline: float | None = None) -> bytes:
        """The blob ``repo@digest``, at most ``limit`` bytes, its bytes checked against ``digest``."""
        if not DIGEST_RE.fullmatch(digest):
            raise RegistryError(RegistryError.BAD_ANSWER, f"{digest!r} is not a sha256 digest")
        url = f"{self.base}/v2/{repo}/blobs/{digest}"
        body, _ = self._fetch(url, {}, f"blob {repo}@{digest}", limit, deadline)
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise RegistryError(
                RegistryError.BAD_ANSWER,
                f"{self.host} served a blob for {repo}@{digest} that hashes to something else",
            )
        return body

    def _fetch(
        self, url: str, headers: dict[str, str], what: str, limit: int, deadline: float | None
    ) -> tuple[bytes, Any]:
        """(body, response headers) of a GET answered 200; UNKNOWN for a 404. Without a
        ``deadline`` the answer must be read within ``ANSWER_TIMEOUTS`` x the client's timeout."""
        if deadline is None:
            deadline = time.monotonic() + ANSWER_TIMEOUTS * self.timeout
        with self._get(url, headers, stream=True) as resp:
            if resp.status_code == 404:
                raise RegistryError(
                    RegistryError.UNKNOWN, f"{self.host} has no {what}{_codes(resp)}"
                )
            _expect_ok(resp, f"{self.host}, for {what},")
            return _read(resp, limit, deadline), resp.headers

    def _get(self, url: str, headers: dict[str, str], stream: bool = False) -> requests.Response:
        try:
            resp = self.session.get(
                url, headers=headers, auth=self.creds, timeout=self.timeout, stream=stream
            )
            challenge = resp.headers.get("WWW-Authenticate", "")
            if resp.status_code == 401 and challenge.lower().startswith("bearer "):
                resp.close()
                token = self._token(challenge)
                resp = self.session.get(
                    url,
                    headers={**headers, "Authorization": f"Bearer {token}"},
                    timeout=self.timeout,
                    stream=stream,
                )
            return resp
        except requests.RequestException as exc:
            raise RegistryError(RegistryError.UNREACHABLE, f"{self.host}: {_short(exc)}") from None

    def _token(self, challenge: str) -> str:
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        realm = params.pop("realm", None)
        if not realm or not realm.startswith(("https://", "http://")):
            raise RegistryError(
                RegistryError.BAD_ANSWER, f"{self.host}: bearer challenge without a realm"
            )
        scope = params.get("scope", "")
        if scope in self._bearer:
            return self._bearer[scope]
        with self.session.get(
            realm, params=params, auth=self.creds, timeout=self.timeout, stream=True
        ) as resp:
            _expect_ok(resp, f"the token service of {self.host}")
            raw = _read(resp, MAX_TOKEN_BYTES, time.monotonic() + ANSWER_TIMEOUTS * self.timeout)
        try:
            body = json.loads(raw)
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(
                RegistryError.BAD_ANSWER, f"{self.host}: the token service sent no token"
            )
        self._bearer[scope] = token
        return token


def _expect_ok(resp: requests.Response, who: str) -> None:
    if resp.status_code in (401, 403):
        raise RegistryError(RegistryError.AUTH, f"{who} refused access (HTTP {resp.status_code})")
    if resp.status_code != 200:
        raise RegistryError(RegistryError.BAD_ANSWER, f"{who} answered HTTP {resp.status_code}")


def _codes(resp: requests.Response) -> str:
    """`` (MANIFEST_UNKNOWN)`` from a registry error body, when it has one."""
    try:
        errors = json.loads(_read(resp, 65536)).get("errors") or []
        codes = [str(e.get("code")) for e in errors if isinstance(e, dict) and e.get("code")]
    except (ValueError, AttributeError, RegistryError, requests.RequestException):
        return ""
    return f" ({', '.join(codes[:3])})" if codes else ""


def _short(exc: Exception) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__


def client_for(
    registry_url: str | None, creds: tuple[str, str] | None = None, timeout: float = 10.0
) -> Client:
    """A :class:`Client` for a registry as a release names it (its URL; None: Docker Hub)."""
    host = host_of(registry_url) if registry_url else DOCKER_HUB
    return Client(host, registry_url, creds, timeout)


def repository(registry_url: str | None, image: str) -> str:
    """The repository a release container's ``image`` is on its registry (Docker Hub's
    official images are ``library/<name>``)."""
    return image if registry_url or "/" in image else f"library/{image}"


def resolve(
    registry_url: str | None,
    image: str,
    tag: str,
    creds: tuple[str, str] | None = None,
    timeout: float = 10.0,
) -> str:
    """The digest ``image:tag`` has on ``registry_url`` (None: Docker Hub) right now."""
    with client_for(registry_url, creds, timeout) as client:
        return client.manifest(repository(registry_url, image), tag).digest
