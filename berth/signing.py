"""Cosign key-based image signatures, verified with ``cryptography`` (no cosign binary).

The format is the one sigstore/cosign documents in ``specs/SIGNATURE_SPEC.md`` ("tag-based
discovery", "simple signing" payloads) and writes with ``cosign sign --key cosign.key IMAGE``:

* the signatures of ``repo@sha256:<hex>`` are an OCI image manifest in the same repository under
  the tag ``sha256-<hex>.sig``;
* each of its layers with mediaType ``application/vnd.dev.cosign.simplesigning.v1+json`` is one
  signature: the layer's blob is the signed payload, the layer's annotation
  ``dev.cosignproject.cosign/signature`` the base64 signature over exactly those bytes;
* the payload is JSON, ``{"critical": {"identity": {"docker-reference": ...}, "image":
  {"docker-manifest-digest": "sha256:<hex>"}, "type": "cosign container image signature"},
  "optional": ...}``: the digest in it must be the digest the image is pinned to;
* keys: ECDSA P-256 (the signature is ASN.1 DER over SHA-256 of the payload, what cosign's
  default keys make) and Ed25519 (the signature over the payload itself), PEM
  SubjectPublicKeyInfo (``cosign.pub``).

The API verifies at release creation (``api/releases/signatures.py``), the device again before it
starts anything. Everything read is bounded: the signature manifest and each payload at most
``MAX_BYTES``, at most ``MAX_SIGNATURES`` signature layers looked at, every request with the
client's timeout and the whole verification with ``DEADLINE_SECONDS``. This module is importable
on a device: it needs ``cryptography``, ``requests`` and ``berth`` only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import time
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from berth.registryclient import (
    DIGEST_RE,
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    Client,
    Manifest,
    RegistryError,
)

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"
MAX_BYTES = 64 * 1024  # the signature manifest, and each payload
MAX_SIGNATURES = 16  # signature layers looked at
DEADLINE_SECONDS = 30.0  # the whole verification of one image

# SignatureError.reason, the first words of each (a human sentence)
NO_SIGNATURE = "no signature"
UNKNOWN_KEY = "signed by an unknown key"
OTHER_DIGEST = "signature payload names another digest"
NOT_VALID = "signature is not valid"
REGISTRY = "registry error"


class SignatureError(Exception):
    """The image is not signed by any of the keys. ``reason`` says why, in a human sentence:
    ``no signature``, ``signed by an unknown key``, ``signature payload names another digest
    (sha256:...)``, ``signature is not valid`` or ``registry error: ...``."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


def load_public_key(pem: str) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey:
    """The key of a PEM public key (``-----BEGIN PUBLIC KEY-----``); ValueError saying why for
    anything that is not an ECDSA P-256 or Ed25519 public key in PEM."""
    if not isinstance(pem, str) or "-----BEGIN PUBLIC KEY-----" not in pem:
        raise ValueError(
            "not a PEM public key: expected a '-----BEGIN PUBLIC KEY-----' block "
            "(cosign.pub, ECDSA P-256 or Ed25519)"
        )
    try:
        key = serialization.load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a readable PEM public key ({exc})") from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return key
        raise ValueError(f"ECDSA key on curve {key.curve.name}: only P-256 (secp256r1) is accepted")
    raise ValueError(
        f"{type(key).__name__.removeprefix('_')} keys are not accepted: "
        "only ECDSA P-256 and Ed25519"
    )


def key_algorithm(pem: str) -> str:
    """``ecdsa-p256`` or ``ed25519``; ValueError as :func:`load_public_key`."""
    return "ed25519" if isinstance(load_public_key(pem), ed25519.Ed25519PublicKey) else "ecdsa-p256"


def key_fingerprint(pem: str) -> str:
    """SHA-256 (hex) of the key's DER SubjectPublicKeyInfo; ValueError as :func:`load_public_key`."""
    der = load_public_key(pem).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def signature_tag(digest: str) -> str:
    """``sha256-<hex>.sig``: where cosign stores the signatures of ``digest``."""
    return digest.replace(":", "-", 1) + ".sig"


def payload(digest: str, reference: str) -> bytes:
    """A simple-signing payload for ``digest`` (what ``cosign generate`` prints), for tests and
    for signing without cosign."""
    return json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": reference},
                "image": {"docker-manifest-digest": digest},
                "type": PAYLOAD_TYPE,
            },
            "optional": None,
        },
        separators=(",", ":"),
    ).encode()


def verify_image(client: Client, repository: str, digest: str, public_keys: list[str]) -> str:
    """The fingerprint (:func:`key_fingerprint`) of the first of ``public_keys`` (PEM strings)
    that signed ``repository@digest``; SignatureError otherwise.

    ``client`` is a :class:`berth.registryclient.Client` for the registry the image is on::

        from berth import registryclient
        host = registryclient.host_of(url)               # url as stored, e.g. "127.0.0.1:5615"
        with registryclient.Client(host, url, (user, password) or None, timeout=10) as client:
            fingerprint = verify_image(client, "team/app", "sha256:...", [pem, ...])

    (Docker Hub: ``Client(registryclient.DOCKER_HUB)`` and the repository as ``library/app``.)
    """
    if not DIGEST_RE.fullmatch(digest or ""):
        raise SignatureError(f"{NOT_VALID}: {digest!r} is not a sha256 digest")
    keys = []
    for pem in public_keys:
        try:
            keys.append((key_fingerprint(pem), load_public_key(pem)))
        except ValueError:
            continue  # a key that cannot be read verifies nothing
    if not keys:
        raise SignatureError(f"{UNKNOWN_KEY} (no usable public key to verify with)")
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        manifest = client.manifest(repository, signature_tag(digest), MAX_BYTES, deadline)
    except RegistryError as exc:
        if exc.reason == RegistryError.UNKNOWN:
            raise SignatureError(NO_SIGNATURE) from None
        raise SignatureError(f"{REGISTRY}: {exc.reason} ({exc.detail})") from None
    layers = _signature_layers(manifest)
    failures: list[str] = []
    for layer in layers[:MAX_SIGNATURES]:
        size = layer["size"]
        if not isinstance(size, int) or not 0 <= size <= MAX_BYTES:
            failures.append(f"{NOT_VALID}: a payload of {size!r} bytes (at most {MAX_BYTES})")
            continue
        try:
            data = client.blob(repository, layer["digest"], MAX_BYTES, deadline)
        except RegistryError as exc:
            failures.append(f"{REGISTRY}: {exc.reason} ({exc.detail})")
            continue
        try:
            return _check(data, layer["signature"], digest, keys)
        except SignatureError as exc:
            failures.append(exc.reason)
    raise SignatureError(_worst(failures))


def _signature_layers(manifest: Manifest) -> list[dict[str, Any]]:
    """``[{"digest", "signature", "size"}]`` of the simple-signing layers of a signature manifest."""
    if manifest.media_type not in (OCI_MANIFEST, DOCKER_MANIFEST):
        raise SignatureError(f"{NOT_VALID}: the signature tag holds a {manifest.media_type}")
    try:
        layers = manifest.json().get("layers")
    except (ValueError, AttributeError):
        layers = None
    if not isinstance(layers, list):
        raise SignatureError(f"{NOT_VALID}: the signature manifest has no layers")
    found = []
    for layer in layers:
        if not isinstance(layer, dict) or layer.get("mediaType") != SIMPLESIGNING:
            continue
        annotations = layer.get("annotations")
        signature = annotations.get(SIGNATURE_ANNOTATION) if isinstance(annotations, dict) else None
        if isinstance(signature, str) and isinstance(layer.get("digest"), str):
            found.append(
                {"digest": layer["digest"], "signature": signature, "size": layer.get("size")}
            )
    if not found:
        raise SignatureError(NO_SIGNATURE)
    return found


def _check(
    data: bytes,
    signature_b64: str,
    digest: str,
    keys: list[tuple[str, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey]],
) -> str:
    """The fingerprint of the key whose signature ``signature_b64`` over ``data`` is, when
    ``data`` is a cosign payload naming ``digest``; SignatureError otherwise."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{NOT_VALID}: the signature is not base64") from None
    try:
        critical = json.loads(data)["critical"]
        kind = critical["type"]
        image = critical["image"]
        named = image.get("docker-manifest-digest")
        if named is None:  # cosign reads the field case-insensitively (Go's encoding/json)
            named = next(
                (v for k, v in image.items() if k.lower() == "docker-manifest-digest"), None
            )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SignatureError(
            f"{NOT_VALID}: the payload is not a cosign simple-signing payload"
        ) from None
    if kind != PAYLOAD_TYPE:
        raise SignatureError(f"{NOT_VALID}: the payload's type is {str(kind)[:80]!r}")
    for fingerprint, key in keys:
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, data)
            else:
                key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            continue
        if named != digest:
            raise SignatureError(f"{OTHER_DIGEST} ({str(named)[:80]})")
        return fingerprint
    raise SignatureError(UNKNOWN_KEY)


def _worst(failures: list[str]) -> str:
    """The one reason to give for an image none of whose signatures holds: a signature by a
    known key over another digest says most, then an unknown key, then the rest."""
    for prefix in (OTHER_DIGEST, UNKNOWN_KEY, NOT_VALID, REGISTRY):
        for reason in failures:
            if reason.startswith(prefix):
                return reason
    return failures[0] if failures else NO_SIGNATURE
