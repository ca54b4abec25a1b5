"""Webhook signatures: HMAC-SHA256 over the exact body bytes."""

import hashlib
import hmac

from api.execute.webhooks import encode, sign, verify


def test_signature_is_hmac_sha256_of_the_body():
    body = encode({"jid": "1", "state": "COMMAND_EXECUTED"})
    expected = hmac.new(b"whsec_x", body, hashlib.sha256).hexdigest()
    assert sign("whsec_x", body) == "sha256=" + expected
    assert verify("whsec_x", body, "sha256=" + expected)


def test_tampered_body_or_wrong_secret_fails():
    body = encode({"jid": "1"})
    signature = sign("whsec_x", body)
    assert not verify("whsec_y", body, signature)
    assert not verify("whsec_x", body + b" ", signature)
    assert not verify("whsec_x", body, "")
