"""``/docker/signing-keys/`` and the release policy's ``--require-signatures`` (docs/release.md
"Signatures"): keys per account, verification at release creation against the real testbed
registry (images and cosign signatures pushed through its HTTP API, signed in the test with
``cryptography``), and the keys a device gets in its pillar."""

from __future__ import annotations

import json
import secrets

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from berth import signing
from tests.fixtures import cosign


def cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def add_key(client, headers, name, pem, expect=201):
    r = client.post(
        "/docker/signing-keys/", json={"name": name, "public_key": pem}, headers=headers
    )
    assert r.status_code == expect, r.json
    return r.json


def audit_rows(client, user_token, action):
    return client.get("/audit/", headers=user_token.headers, query_string={"action": action}).json[
        "results"
    ]


def test_keys_are_listed_created_shown_and_deleted_audited(client, user_token):
    headers = user_token.headers
    pems = {kind: cosign.public_pem(cosign.new_key(kind)) for kind in ("ecdsa", "ed25519")}
    made = {kind: add_key(client, headers, f"ci-{kind}", pem) for kind, pem in pems.items()}
    assert made["ecdsa"]["algorithm"] == "ecdsa-p256"
    assert made["ed25519"]["algorithm"] == "ed25519"
    for kind, body in made.items():
        assert body["fingerprint"] == signing.key_fingerprint(pems[kind])
        assert body["public_key"].strip() == pems[kind].strip()
        assert client.get(f"/docker/signing-keys/{body['id']}/", headers=headers).json == body
    listed = client.get("/docker/signing-keys/", headers=headers).json
    assert [k["name"] for k in listed["results"]] == ["ci-ecdsa", "ci-ed25519"]
    (row,) = audit_rows(client, user_token, "signing_key.create")[:1]
    assert row["details"]["fingerprint"] == made["ed25519"]["fingerprint"]
    gone = made["ecdsa"]["id"]
    assert client.delete(f"/docker/signing-keys/{gone}/", headers=headers).status_code == 204
    assert client.get(f"/docker/signing-keys/{gone}/", headers=headers).status_code == 404
    (row,) = audit_rows(client, user_token, "signing_key.delete")
    assert row["target"] == f"signing_key:{gone}"


@pytest.mark.parametrize(
    "pem,words",
    [
        ("not a key", "not a PEM public key"),
        (
            cosign.public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            "Ed25519",
        ),
        (cosign.public_pem(ec.generate_private_key(ec.SECP384R1())), "only P-256"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", "not a readable PEM"),
        (12, "Not a valid string."),
    ],
)
def test_anything_but_a_p256_or_ed25519_pem_is_400_naming_public_key(
    client, user_token, pem, words
):
    body = add_key(client, user_token.headers, "k", pem, expect=400)
    assert list(body) == ["public_key"]
    assert words in body["public_key"][0]


def test_a_private_key_or_a_second_key_after_the_public_key_is_400_never_stored(client, user_token):
    """A cosign.pub pasted together with cosign.key (or a second key) used to be stored as sent:
    the private key was returned by the API and sent to every device in pillar."""
    key = cosign.new_key()
    pem = cosign.public_pem(key)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    sigstore = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nQUJD\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
    for body, words in [
        (pem + private, "private key"),
        (pem + sigstore, "private key"),
        (pem + cosign.public_pem(cosign.new_key()), "one"),
    ]:
        r = add_key(client, user_token.headers, "k", body, expect=400)
        assert list(r) == ["public_key"] and words in r["public_key"][0], r
        assert "PRIVATE KEY-----\n" not in json.dumps(r) and "QUJD" not in json.dumps(r)
    assert client.get("/docker/signing-keys/", headers=user_token.headers).json["count"] == 0
    # what is stored (and returned, and sent to devices) is the key itself
    made = add_key(client, user_token.headers, "k", "ci key from vault\n" + pem + "\n\n")
    assert made["public_key"] == pem


def test_names_and_keys_are_unique_in_the_account(client, user_token):
    pem = cosign.public_pem(cosign.new_key())
    add_key(client, user_token.headers, "ci", pem)
    again = add_key(client, user_token.headers, "ci", cosign.public_pem(cosign.new_key()), 400)
    assert list(again) == ["name"]
    same = add_key(client, user_token.headers, "other", pem, 400)
    assert same == {"public_key": ['This key is already registered as "ci".']}


def test_another_account_sees_404(client, user_token, api_factory):
    key = add_key(client, user_token.headers, "ci", cosign.public_pem(cosign.new_key()))
    other = api_factory.token("user", user=api_factory.user(api_factory.account()))
    url = f"/docker/signing-keys/{key['id']}/"
    assert client.get(url, headers=other.headers).status_code == 404
    assert client.delete(url, headers=other.headers).status_code == 404
    assert client.get("/docker/signing-keys/", headers=other.headers).json["count"] == 0
    assert client.get(url, headers=user_token.headers).status_code == 200


@pytest.fixture
def signed(app, client, user_token, testbed, api_factory, account, registry_push):
    """An account that requires signatures, a registry, a key; ``create`` makes a release."""
    headers = user_token.headers
    body = {"name": "tb", "url": testbed.registry, "username": testbed.user}
    registry = client.post(
        "/docker/registries/", json={**body, "password": testbed.password}, headers=headers
    ).json["id"]
    project = client.post("/docker/projects/", json={"name": "s"}, headers=headers).json["id"]
    out = cli(app, "accounts", "release-policy", account.name, "--require-signatures")
    assert json.loads(out.split("release policy ", 1)[1])["require_signatures"] is True

    class Signed:
        repo = "signed" + secrets.token_hex(3) + "/app"
        key = cosign.new_key("ed25519")
        device = api_factory.device(account)

        def image(self, tag, sign_with=None, payload_digest=None):
            digest, _ = registry_push.image(self.repo, tag)
            if sign_with is not None:
                cosign.sign_and_push(registry_push, self.repo, digest, sign_with, payload_digest)
            return digest

        def create(self, tags, expect=201, **extra):
            body = {
                "version": secrets.token_hex(4),
                "devices": [self.device.id],
                "containers": [
                    {"name": f"c{i}", "registry": registry, "image": self.repo, "tag": tag}
                    for i, tag in enumerate(tags)
                ],
                **extra,
            }
            r = client.post(f"/docker/projects/{project}/releases/", json=body, headers=headers)
            assert r.status_code == expect, r.json
            return r.json

    s = Signed()
    add_key(client, headers, "ci", cosign.public_pem(s.key))
    return s


@pytest.mark.docker
def test_signed_accepted_unsigned_wrong_key_other_digest_refused_naming_the_container(
    signed, client, user_token, master_token
):
    good = signed.image("good", sign_with=signed.key)
    signed.image("unsigned")
    signed.image("wrong", sign_with=cosign.new_key())
    signed.image("other", sign_with=signed.key, payload_digest=good)
    made = signed.create(["good"])
    assert made["containers"][0]["digest"] == good
    (row,) = audit_rows(client, user_token, "release.create")
    assert row["details"]["signed_by"] == ["ci"]

    body = signed.create(["good", "unsigned", "wrong", "other"], expect=400)
    errors = body["containers"]
    assert errors[0] == {}
    assert errors[1]["image"][0].startswith(f"{signed.repo}@sha256:")
    assert ": no signature." in errors[1]["image"][0]
    assert ": signed by an unknown key." in errors[2]["image"][0]
    assert f": signature payload names another digest ({good})." in errors[3]["image"][0]

    # the device gets the policy and the keys with the release
    pillar = client.get(
        f"/master/minions/{signed.device.unit_id}/pillar/", headers=master_token.headers
    ).json["release"]
    assert pillar["id"] == made["id"]
    assert pillar["signatures"] == {
        "required": True,
        "keys": [{"name": "ci", "public_key": cosign.public_pem(signed.key)}],
    }


@pytest.mark.docker
def test_required_signatures_need_digests_and_keys(signed, client, user_token):
    signed.image("1", sign_with=signed.key)
    body = signed.create(["1"], expect=400, pin_digests=False)
    assert "it has no digest" in body["containers"][0]["image"][0]
    (key,) = client.get("/docker/signing-keys/", headers=user_token.headers).json["results"]
    client.delete(f"/docker/signing-keys/{key['id']}/", headers=user_token.headers)
    body = signed.create(["1"], expect=400)
    assert "the account has no signing key" in body["containers"][0]["image"][0]


@pytest.mark.docker
def test_no_require_signatures_turns_it_off(app, signed, client, user_token, account):
    signed.image("plain")
    signed.create(["plain"], expect=400)
    cli(app, "accounts", "release-policy", account.name, "--no-require-signatures")
    rows = audit_rows(client, user_token, "policy.change")
    assert rows[0]["details"]["after"]["require_signatures"] is False
    assert rows[1]["details"]["after"]["require_signatures"] is True
    made = signed.create(["plain"])
    (row,) = audit_rows(client, user_token, "release.create")
    assert "signed_by" not in row["details"]
    assert made["containers"][0]["digest"]


def test_the_pillar_says_not_required_by_default(client, user_token, master_token, device):
    headers = user_token.headers
    project = client.post("/docker/projects/", json={"name": "p"}, headers=headers).json["id"]
    body = {
        "version": "1",
        "devices": [device.id],
        "containers": [{"name": "app", "image": "app", "tag": "1"}],
        "pin_digests": False,
    }
    r = client.post(f"/docker/projects/{project}/releases/", json=body, headers=headers)
    assert r.status_code == 201, r.json
    pillar = client.get(f"/master/minions/{device.unit_id}/pillar/", headers=master_token.headers)
    assert pillar.json["release"]["signatures"] == {"required": False, "keys": []}
