"""Signing keys: the public keys an account's images may be signed with (cosign, docs/release.md
"Signatures"): ``models.py`` (table ``signing_keys``), ``schemas.py`` (bodies), ``views.py``
(``/docker/signing-keys/``)."""
