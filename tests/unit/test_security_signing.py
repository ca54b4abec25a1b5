"""berth/signing.py: cosign key-based signatures verified with ``cryptography``, against an
in-memory registry (the same objects against the real testbed registry are in
tests/integration/test_signing_registry.py)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from berth import registryclient, signing
from berth.registryclient import Manifest, RegistryError
from berth.signing import SignatureError
from tests.fixtures import cosign

REPO = "team/app"
DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class MemoryRegistry:
    """What berth.registryclient.Client answers, from dicts (limits applied as it does)."""

    def __init__(self):
        self.manifests: dict[str, tuple[bytes, str]] = {}
        self.blobs: dict[str, bytes] = {}
        self.blob_requests = 0

    def manifest(self, repo, reference, limit=registryclient.MAX_MANIFEST_BYTES, deadline=None):
        assert repo == REPO
        if reference not in self.manifests:
            raise RegistryError(RegistryError.UNKNOWN, f"no manifest {repo}:{reference}")
        body, media_type = self.manifests[reference]
        if len(body) > limit:
            raise RegistryError(RegistryError.BAD_ANSWER, f"more than {limit} bytes")
        return Manifest(body, media_type, sha(body))

    def blob(self, repo, digest, limit, deadline=None):
        self.blob_requests += 1
        if digest not in self.blobs:
            raise RegistryError(RegistryError.UNKNOWN, f"no blob {digest}")
        if len(self.blobs[digest]) > limit:
            raise RegistryError(RegistryError.BAD_ANSWER, f"more than {limit} bytes")
        return self.blobs[digest]

    def put_blob(self, data: bytes) -> dict:
        self.blobs[sha(data)] = data
        return {"digest": sha(data), "size": len(data)}

    def sign(self, keys, digest=DIGEST, payload_digest=None, data=None, signature=None):
        data = data if data is not None else signing.payload(payload_digest or digest, REPO)
        blob = self.put_blob(data)
        layers = [cosign.signature_layer(blob, signature or cosign.sign(k, data)) for k in keys]
        self.put_manifest(digest, cosign.signature_manifest(self.put_blob(cosign.CONFIG), layers))

    def put_manifest(self, digest, body, media_type=registryclient.OCI_MANIFEST):
        self.manifests[signing.signature_tag(digest)] = (body, media_type)


@pytest.fixture
def reg():
    return MemoryRegistry()


def reason(reg, keys, digest=DIGEST) -> str:
    with pytest.raises(SignatureError) as err:
        signing.verify_image(reg, REPO, digest, keys)
    return err.value.reason


@pytest.mark.parametrize("kind", ["ecdsa", "ed25519"])
def test_a_good_signature_verifies_and_names_the_key(reg, kind):
    key = cosign.new_key(kind)
    pem = cosign.public_pem(key)
    reg.sign([key])
    other = cosign.public_pem(cosign.new_key())
    assert signing.verify_image(reg, REPO, DIGEST, [other, pem]) == signing.key_fingerprint(pem)


def test_one_good_layer_among_several_is_enough(reg):
    mine, theirs = cosign.new_key("ed25519"), cosign.new_key()
    reg.sign([theirs, mine])
    pem = cosign.public_pem(mine)
    assert signing.verify_image(reg, REPO, DIGEST, [pem]) == signing.key_fingerprint(pem)


def test_unsigned_image(reg):
    assert reason(reg, [cosign.public_pem(cosign.new_key())]) == "no signature"


def test_a_signature_manifest_without_simplesigning_layers_is_no_signature(reg):
    layer = {"mediaType": "application/octet-stream", **reg.put_blob(b"x")}
    reg.put_manifest(DIGEST, cosign.signature_manifest(reg.put_blob(b"{}"), [layer]))
    assert reason(reg, [cosign.public_pem(cosign.new_key())]) == "no signature"


@pytest.mark.parametrize("kind", ["ecdsa", "ed25519"])
def test_signed_by_another_key(reg, kind):
    reg.sign([cosign.new_key(kind)])
    assert reason(reg, [cosign.public_pem(cosign.new_key(kind))]) == "signed by an unknown key"


def test_a_payload_for_another_digest_is_refused_even_by_the_right_key(reg):
    key = cosign.new_key()
    reg.sign([key], payload_digest=OTHER)
    assert reason(reg, [cosign.public_pem(key)]) == (
        f"signature payload names another digest ({OTHER})"
    )


def test_the_signature_tag_of_another_image_does_not_sign_this_one(reg):
    key = cosign.new_key()
    reg.sign([key], digest=OTHER)
    assert reason(reg, [cosign.public_pem(key)]) == "no signature"


def test_a_signature_over_other_bytes_is_unknown(reg):
    key = cosign.new_key()
    reg.sign([key], signature=cosign.sign(key, b"something else"))
    assert reason(reg, [cosign.public_pem(key)]) == "signed by an unknown key"


@pytest.mark.parametrize(
    "data,signature,expected",
    [
        (b"not json", None, "signature is not valid: the payload is not a cosign"),
        (b'{"critical": {"type": "cosign container image signature"}}', None, "signature is not"),
        (
            json.dumps(
                {"critical": {"type": "atomic", "image": {"docker-manifest-digest": DIGEST}}}
            ).encode(),
            None,
            "signature is not valid: the payload's type is 'atomic'",
        ),
        (None, "%%% not base64 %%%", "signature is not valid: the signature is not base64"),
        (None, base64.b64encode(b"\x00" * 70).decode(), "signed by an unknown key"),
    ],
)
def test_garbage_is_refused(reg, data, signature, expected):
    key = cosign.new_key()
    reg.sign([key], data=data, signature=signature)
    assert reason(reg, [cosign.public_pem(key)]).startswith(expected)


def test_the_digest_field_is_read_as_cosign_reads_it(reg):
    key = cosign.new_key()
    data = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": REPO},
                "image": {"Docker-manifest-digest": DIGEST},
                "type": signing.PAYLOAD_TYPE,
            },
            "optional": {"creator": "Bob the Builder"},
        }
    ).encode()
    reg.sign([key], data=data)
    assert signing.verify_image(reg, REPO, DIGEST, [cosign.public_pem(key)])


def test_oversize_manifest_and_payload_are_not_read(reg):
    key = cosign.new_key()
    pem = cosign.public_pem(key)
    big = signing.payload(DIGEST, "x" * (signing.MAX_BYTES + 1))
    reg.sign([key], data=big)
    assert reason(reg, [pem]) == (
        f"signature is not valid: a payload of {len(big)} bytes (at most {signing.MAX_BYTES})"
    )
    assert reg.blob_requests == 0
    layers = [cosign.signature_layer(reg.put_blob(b"p"), "c2ln" * 4000)] * 20
    reg.put_manifest(DIGEST, cosign.signature_manifest(reg.put_blob(b"{}"), layers))
    assert reason(reg, [pem]).startswith("registry error: unusable answer (more than 65536")


def test_at_most_sixteen_signature_layers_are_tried(reg):
    key = cosign.new_key()
    data = signing.payload(DIGEST, REPO)
    blob = reg.put_blob(data)
    layers = [cosign.signature_layer(blob, cosign.sign(cosign.new_key(), data))] * 16
    layers.append(cosign.signature_layer(blob, cosign.sign(key, data)))
    reg.put_manifest(DIGEST, cosign.signature_manifest(reg.put_blob(b"{}"), layers))
    assert reason(reg, [cosign.public_pem(key)]) == "signed by an unknown key"
    assert reg.blob_requests == 16


def test_an_index_under_the_signature_tag_is_not_a_signature(reg):
    reg.put_manifest(DIGEST, b'{"manifests": []}', registryclient.OCI_INDEX)
    assert reason(reg, [cosign.public_pem(cosign.new_key())]).startswith("signature is not valid")


def test_registry_errors_are_named(reg):
    class Refusing(MemoryRegistry):
        def manifest(self, *args, **kwargs):
            raise RegistryError(RegistryError.AUTH, "127.0.0.1:1 refused access (HTTP 401)")

    assert reason(Refusing(), [cosign.public_pem(cosign.new_key())]) == (
        "registry error: auth refused (127.0.0.1:1 refused access (HTTP 401))"
    )


def test_no_usable_key_is_an_unknown_key(reg):
    key = cosign.new_key()
    reg.sign([key])
    assert reason(reg, []).startswith("signed by an unknown key")
    assert reason(reg, ["garbage"]).startswith("signed by an unknown key")


def test_a_malformed_digest_is_refused_before_any_request(reg):
    assert reason(reg, [cosign.public_pem(cosign.new_key())], "latest").startswith(
        "signature is not valid"
    )


@pytest.mark.parametrize(
    "pem,message",
    [
        ("", "not a PEM public key"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a readable PEM"),
        (cosign.public_pem(ec.generate_private_key(ec.SECP384R1())), "only P-256"),
        (
            cosign.public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            "only ECDSA P-256 and Ed25519",
        ),
    ],
)
def test_load_public_key_refuses_what_is_not_p256_or_ed25519(pem, message):
    with pytest.raises(ValueError, match=message):
        signing.load_public_key(pem)


def test_a_private_key_is_not_a_public_key():
    private = (
        cosign.new_key()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(ValueError, match="not a PEM public key"):
        signing.load_public_key(private)


def test_fingerprint_and_algorithm():
    key = cosign.new_key("ed25519")
    pem = cosign.public_pem(key)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert signing.key_fingerprint(pem) == hashlib.sha256(der).hexdigest()
    assert signing.key_algorithm(pem) == "ed25519"
    assert signing.key_algorithm(cosign.public_pem(cosign.new_key())) == "ecdsa-p256"
