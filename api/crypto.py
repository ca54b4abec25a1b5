"""Keys derived from ``SECRET_KEY``: token digests and registry password encryption."""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

_cache: dict[tuple[str, bytes], bytes] = {}


def derive_key(secret_key: str, purpose: bytes) -> bytes:
    """A 32-byte key for ``purpose``, so one leaked derived key does not expose the others."""
    cached = _cache.get((secret_key, purpose))
    if cached is None:
        cached = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"berth:" + purpose
        ).derive(secret_key.encode())
        _cache[(secret_key, purpose)] = cached
    return cached


def _secret() -> str:
    return current_app.config["SECRET_KEY"]


def token_digest(token: str) -> str:
    """Keyed HMAC-SHA256 digest (hex) under which a token is stored and looked up."""
    return hmac.new(derive_key(_secret(), b"api-token"), token.encode(), hashlib.sha256).hexdigest()


def _fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derive_key(_secret(), b"registry-password")))


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise ValueError(
            "cannot decrypt: BERTH_SECRET_KEY differs from the one used to encrypt"
        ) from None
