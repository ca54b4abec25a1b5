"""Signing key bodies: ``/docker/signing-keys/`` (docs/release.md "Signatures")."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives import serialization

from api.bodies import TIMESTAMP, RequestBody, ResponseBody, doc
from api.fields import NON_BLANK, FieldError, Name, checks, rule, string
from berth import signing

# a PEM P-256 key is 178 characters, an Ed25519 one 113; room for CRLFs and a trailing comment
MAX_PEM = 4096


@checks(maxLength=MAX_PEM, **NON_BLANK)
def public_key_pem(value: Any) -> str:
    """A PEM public key, ECDSA P-256 or Ed25519 (what ``cosign generate-key-pair`` writes to
    ``cosign.pub``); exactly one PEM block, stored as the key's own PEM (nothing else that was
    pasted with it: it is returned by the API and sent to every device)."""
    value = string(max_length=MAX_PEM)(value)
    if "PRIVATE KEY-----" in value:
        raise FieldError(
            "This holds a private key: give only the public key (cosign.pub), and replace the "
            "key pair, since its private key has left its safe place."
        )
    if value.count("-----BEGIN ") > 1:
        raise FieldError("Give one PEM public key per signing key (this holds several blocks).")
    try:
        key = signing.load_public_key(value)
    except ValueError as exc:
        raise FieldError(f"Not an ECDSA P-256 or Ed25519 public key in PEM: {exc}.") from None
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


class SigningKeyInput(RequestBody):
    name: Annotated[Name, doc("Unique in the account.")]
    public_key: Annotated[
        str,
        rule(public_key_pem),
        doc("PEM public key (-----BEGIN PUBLIC KEY-----, cosign.pub): ECDSA P-256 or Ed25519."),
    ]


class SigningKey(ResponseBody):
    id: Annotated[int, doc(readOnly=True)]
    name: str
    public_key: Annotated[str, doc("PEM public key.")]
    algorithm: Annotated[Literal["ecdsa-p256", "ed25519"], doc(readOnly=True)]
    fingerprint: Annotated[
        str,
        doc(
            "SHA-256 (hex) of the DER SubjectPublicKeyInfo.",
            readOnly=True,
            pattern="^[0-9a-f]{64}$",
        ),
    ]
    created: Annotated[str, TIMESTAMP, doc(format="date-time", readOnly=True)]
