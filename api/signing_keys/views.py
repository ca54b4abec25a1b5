"""``/docker/signing-keys/``: the public keys an account's images may be signed with (cosign,
docs/release.md "Signatures"). List, create, get, delete; a key is never changed in place."""

from __future__ import annotations

import logging

from flask import Blueprint, g
from sqlalchemy import select

from api import audit
from api.audit import audited
from api.auth import require_token
from api.bodies import parse
from api.common import no_content, owned_or_404
from api.extensions import db
from api.openapi import Response, operation, page_of
from api.pagination import paginate
from api.payload import json_body
from api.signing_keys.models import SigningKey
from api.signing_keys.schemas import SigningKey as SigningKeyBody
from api.signing_keys.schemas import SigningKeyInput
from berth import signing

bp = Blueprint("signing_keys", __name__)
log = logging.getLogger(__name__)


@bp.get("/docker/signing-keys/")
@operation(
    "signing-keys",
    "List signing-keys",
    operation_id="listSigningKeys",
    responses={200: Response(page_of(SigningKeyBody), "A page of results.")},
)
@require_token("user")
def list_signing_keys():
    stmt = select(SigningKey).where(SigningKey.account_id == g.account.id).order_by(SigningKey.id)
    return paginate(stmt, SigningKeyBody.body)


@bp.post("/docker/signing-keys/")
@operation(
    "signing-keys",
    "Create a SigningKey",
    description="An ECDSA P-256 or Ed25519 public key (PEM) the account's images may be signed "
    "with (cosign key-based signatures, docs/release.md). Audited (signing_key.create).",
    operation_id="createSigningKey",
    body=SigningKeyInput,
    responses={201: Response(SigningKeyBody, "Created.")},
)
@audited("signing_key.create")
@require_token("user")
def create_signing_key():
    parsed = parse(SigningKeyInput, json_body())
    mine = select(SigningKey).where(SigningKey.account_id == g.account.id)
    name = parsed.get("name")
    if name is not None and db.session.scalar(mine.where(SigningKey.name == name)) is not None:
        parsed.error("name", "signing key with this name already exists.")
    pem = parsed.get("public_key")
    fingerprint = signing.key_fingerprint(pem) if pem is not None else None
    if fingerprint is not None:
        same = db.session.scalar(mine.where(SigningKey.fingerprint == fingerprint))
        if same is not None:
            parsed.error("public_key", f'This key is already registered as "{same.name}".')
    parsed.raise_if_errors()
    key = SigningKey(
        account_id=g.account.id,
        name=name,
        public_key=pem,
        algorithm=signing.key_algorithm(pem),
        fingerprint=fingerprint,
    )
    db.session.add(key)
    db.session.flush()
    audit.record(
        "signing_key.create",
        target=f"signing_key:{key.id}",
        details={"name": key.name, "algorithm": key.algorithm, "fingerprint": key.fingerprint},
    )
    db.session.commit()
    log.info("signing key %s (%s) added to account %s", key.id, key.fingerprint, g.account.id)
    return SigningKeyBody.body(key), 201


@bp.get("/docker/signing-keys/<int:key_id>/")
@operation(
    "signing-keys",
    "Get a SigningKey",
    operation_id="getSigningKey",
    responses={200: SigningKeyBody},
)
@require_token("user")
def get_signing_key(key_id: int):
    return SigningKeyBody.body(owned_or_404(SigningKey, key_id))


@bp.delete("/docker/signing-keys/<int:key_id>/")
@operation(
    "signing-keys",
    "Delete a SigningKey",
    operation_id="deleteSigningKey",
    responses={204: Response(None, "Deleted, no body.")},
)
@audited("signing_key.delete")
@require_token("user")
def delete_signing_key(key_id: int):
    key = owned_or_404(SigningKey, key_id)
    audit.record(
        "signing_key.delete",
        target=f"signing_key:{key.id}",
        details={"name": key.name, "fingerprint": key.fingerprint},
    )
    db.session.delete(key)
    db.session.commit()
    log.info("signing key %s (%s) deleted", key_id, key.fingerprint)
    return no_content()
