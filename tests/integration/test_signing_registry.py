"""berth/signing.py against the real testbed registry (htpasswd, plain HTTP on loopback): cosign
signatures made in the test with ``cryptography`` and pushed through the registry's HTTP API."""

from __future__ import annotations

import json
import secrets

import pytest

from berth import registryclient, signing
from berth.signing import SignatureError
from tests.fixtures import cosign


@pytest.fixture
def repo():
    return f"signing-{secrets.token_hex(4)}/app"


@pytest.fixture
def client(testbed):
    with registryclient.Client(
        testbed.registry, None, (testbed.user, testbed.password), timeout=10
    ) as c:
        yield c


def test_signed_unsigned_wrong_key_other_digest_on_the_real_registry(client, registry_push, repo):
    ecdsa, ed = cosign.new_key("ecdsa"), cosign.new_key("ed25519")
    keys = [cosign.public_pem(ecdsa), cosign.public_pem(ed)]
    signed, _ = registry_push.image(repo, "signed")
    cosign.sign_and_push(registry_push, repo, signed, [cosign.new_key(), ed])
    assert signing.verify_image(client, repo, signed, keys) == signing.key_fingerprint(keys[1])

    def refused(digest: str) -> str:
        with pytest.raises(SignatureError) as err:
            signing.verify_image(client, repo, digest, keys)
        return err.value.reason

    unsigned, _ = registry_push.image(repo, "unsigned")
    assert refused(unsigned) == "no signature"
    wrong, _ = registry_push.image(repo, "wrong-key")
    cosign.sign_and_push(registry_push, repo, wrong, cosign.new_key())
    assert refused(wrong) == "signed by an unknown key"
    other, _ = registry_push.image(repo, "other")
    cosign.sign_and_push(registry_push, repo, other, ecdsa, payload_digest=signed)
    assert refused(other) == f"signature payload names another digest ({signed})"


def test_a_payload_larger_than_its_layer_says_is_not_read(client, registry_push, repo):
    key = cosign.new_key()
    digest, _ = registry_push.image(repo, "big")
    data = signing.payload(digest, "x" * (signing.MAX_BYTES * 2))
    blob = registry_push.blob(repo, data)
    layer = cosign.signature_layer({**blob, "size": 100}, cosign.sign(key, data))
    body = cosign.signature_manifest(registry_push.blob(repo, cosign.CONFIG), [layer])
    tag = signing.signature_tag(digest)
    registry_push.manifest(repo, tag, body, registryclient.OCI_MANIFEST)
    with pytest.raises(SignatureError, match="registry error: unusable answer .more than 65536"):
        signing.verify_image(client, repo, digest, [cosign.public_pem(key)])
    annotations = {"pad": "x" * signing.MAX_BYTES}
    body = json.dumps({**json.loads(body), "annotations": annotations}).encode()
    registry_push.manifest(repo, tag, body, registryclient.OCI_MANIFEST)
    with pytest.raises(SignatureError, match="registry error: unusable answer .more than 65536"):
        signing.verify_image(client, repo, digest, [cosign.public_pem(key)])


def test_wrong_credentials_are_a_registry_error(testbed, registry_push, repo):
    digest, _ = registry_push.image(repo, "1")
    with registryclient.Client(testbed.registry, None, (testbed.user, "wrong")) as c:
        with pytest.raises(SignatureError, match=r"^registry error: auth refused"):
            signing.verify_image(c, repo, digest, [cosign.public_pem(cosign.new_key())])
