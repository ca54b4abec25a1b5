"""berth/release/trust.py: which keys a device verifies its images against (the minion option
``berth_trusted_keys`` wins and makes verification mandatory; else pillar when it says required)
and the refusal of a release whose containers are not all signed. The signature check itself is
berth/signing.py (tests/unit/test_security_signing.py); here it is a stand-in."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from berth import signing
from berth.release import trust
from berth.release.model import target_from_pillar
from tests.fixtures import cosign

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


@pytest.fixture(scope="module")
def keys():
    return SimpleNamespace(
        device=cosign.public_pem(cosign.new_key()),
        pillar=cosign.public_pem(cosign.new_key("ed25519")),
    )


def pillar(required, *pems):
    return {
        "required": required,
        "keys": [{"name": f"k{i}", "public_key": p} for i, p in enumerate(pems)],
    }


def test_no_minion_keys_and_pillar_not_requiring_verifies_nothing(keys):
    for signatures in (None, {}, pillar(False, keys.pillar), {"keys": []}):
        assert trust.decide(None, signatures) == trust.Decision(False)
        assert trust.decide([], signatures).required is False


def test_pillar_requiring_gives_its_keys(keys):
    decision = trust.decide(None, pillar(True, keys.pillar))
    assert decision.required and decision.source == trust.PILLAR and decision.error is None
    assert decision.keys == (("k0", keys.pillar),)
    assert decision.fingerprints == {signing.key_fingerprint(keys.pillar): "k0"}


def test_minion_keys_win_over_pillar_and_make_verification_mandatory(keys):
    for signatures in (None, pillar(False), pillar(False, keys.pillar), pillar(True, keys.pillar)):
        decision = trust.decide([keys.device], signatures)
        assert decision.required and decision.source == trust.MINION
        assert [pem for _, pem in decision.keys] == [keys.device]  # the pillar's never count
    # one PEM string is a list of one
    assert trust.decide(keys.device, None).keys == (("berth_trusted_keys[1]", keys.device),)


def test_minion_key_files(tmp_path, keys):
    path = tmp_path / "cosign.pub"
    path.write_text(keys.device)
    path.chmod(0o644)
    decision = trust.decide([str(path)], pillar(False))
    assert decision.keys == ((str(path), keys.device),) and decision.error is None
    path.chmod(0o666)  # anyone who may write it decides what runs
    refused = trust.decide([str(path)], None)
    assert refused.required and "may be written by group or others" in refused.error
    path.chmod(0o644)
    os.chown(path, 65534, -1)  # owned by another user (nobody): that user decides what runs
    refused = trust.decide([str(path)], None)
    assert refused.required and "owned by uid 65534" in refused.error
    for entry, why in [
        ("cosign.pub", "absolute path"),
        (str(tmp_path / "missing.pub"), "cannot read"),
        ("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", "entry 1"),
    ]:
        decision = trust.decide([entry], pillar(False))
        # a configured but unusable key: verification stays mandatory, every release refused
        assert decision.required and decision.source == trust.MINION
        assert why in decision.error and decision.error.startswith(trust.MINION)
    assert "not a PEM public key" in trust.decide([7], None).error


def test_malformed_or_keyless_pillar_requiring_fails_closed(keys):
    for signatures, why in [
        ("yes", "is not a mapping"),
        ({"required": "false"}, "'required' is not true or false"),
        ({"required": True, "keys": "k"}, "'keys' is not a list"),
        ({"required": True, "keys": [{"name": "x"}]}, "key 1 has no 'public_key'"),
        (pillar(True), "requires signatures but gives no usable key"),
        (pillar(True, "garbage"), "requires signatures but gives no usable key"),
    ]:
        decision = trust.decide(None, signatures)
        assert decision.required and why in decision.error, (signatures, decision)


def target(*containers):
    return target_from_pillar(
        {"id": 7, "version_hash": "abcd1234", "containers": list(containers)}, {}
    )


def container(name, digest=DIGEST):
    out = {"name": name, "image": f"team/{name}", "tag": "1"}
    if digest:
        out["digest"] = digest
    return out


def test_check_names_every_refused_container_and_why(keys):
    decision = trust.decide([keys.device], None)
    fingerprint = signing.key_fingerprint(keys.device)
    reasons = {"app": None, "cache": signing.NO_SIGNATURE, "db": signing.UNKNOWN_KEY}
    seen = []

    def verify(c, pems):
        seen.append((c.name, c.digest, pems))
        if reasons[c.name]:
            raise signing.SignatureError(reasons[c.name])
        return fingerprint

    release = target(container("app"), container("cache"), container("db"), container("web", None))
    with pytest.raises(trust.Refused) as refused:
        trust.check(release.containers, decision, verify)
    text = str(refused.value)
    assert text.startswith("refused: ") and text.endswith("; nothing was stopped")
    assert "container 'cache' (team/cache@sha256:abab" in text and "no signature" in text
    assert "container 'db'" in text and "signed by an unknown key" in text
    assert "container 'web' (team/web:1) has no pinned digest" in text
    assert "'app'" not in text and trust.MINION in text
    assert [s[0] for s in seen] == ["app", "cache", "db"]  # no digest: nothing to ask
    assert seen[0][2] == [keys.device]
    assert trust.check(target(container("app")).containers, decision, verify) == {
        "app": "berth_trusted_keys[1]"
    }


def test_check_without_requirement_asks_nothing_and_a_decision_error_refuses_all(keys):
    def verify(c, pems):
        raise AssertionError("not asked")

    release = target(container("app", None))
    assert trust.check(release.containers, trust.decide(None, None), verify) == {}
    broken = trust.decide(["relative.pub"], None)
    with pytest.raises(trust.Refused, match="refused: minion option berth_trusted_keys: entry"):
        trust.check(release.containers, broken, verify)


def test_target_carries_the_pillar_signatures(keys):
    release = {"id": 1, "version_hash": "ab", "containers": [], "signatures": pillar(True)}
    assert target_from_pillar(release, {}).signatures == pillar(True)


def test_the_executor_remembers_what_it_verified_per_digest_and_key(tmp_path, keys, monkeypatch):
    """Verified at pre-pull, the apply needs no registry; a key no longer trusted matches nothing
    remembered. The registry is asked with the pillar registry's credentials."""
    from berth.release.executor import Executor

    asked = []

    def verify_image(client, repository, digest, pems):
        asked.append((client.host, client.creds, repository, digest, tuple(pems)))
        return signing.key_fingerprint(pems[0])

    monkeypatch.setattr(signing, "verify_image", verify_image)
    release = target_from_pillar(
        {
            "id": 3,
            "version_hash": "ab",
            "containers": [
                {**container("app"), "registry": 1},
                container("db", OTHER),
                {**container("worker"), "registry": 1},  # the same image as app
            ],
        },
        {1: {"url": "127.0.0.1:5000", "username": "u", "password": "p"}},
    )
    ex = Executor(None, tmp_path, trusted_keys=[keys.device])
    assert ex.check_signatures(release) == {
        "app": "berth_trusted_keys[1]",
        "db": "berth_trusted_keys[1]",
        "worker": "berth_trusted_keys[1]",
    }
    assert asked == [
        ("127.0.0.1:5000", ("u", "p"), "team/app", DIGEST, (keys.device,)),
        ("registry-1.docker.io", None, "team/db", OTHER, (keys.device,)),
    ]
    ex.check_signatures(release)
    assert len(asked) == 2  # remembered
    Executor(None, tmp_path, trusted_keys=[keys.pillar]).check_signatures(release)
    assert len(asked) == 4  # another key: asked again
    assert Executor(None, tmp_path).check_signatures(release) == {}  # nothing required
