"""Image signatures at release creation, and the keys a device gets (docs/release.md "Signatures").

When the account's release policy requires signatures (``flask --app api accounts
release-policy NAME --require-signatures``), every container of a new release must be pinned to a
digest (digest pinning, ``api/releases/pinning.py``, or a ``digest`` in the body) and that digest
signed, cosign's key-based format (``berth/signing.py``), by one of the account's signing keys
(``/docker/signing-keys/``); otherwise a 400 naming ``containers[i].image`` and why (no digest,
no signature, signed by an unknown key, signature payload names another digest, ...). Each
distinct (registry, image, digest) is verified once per request, in parallel, each registry call
bounded by ``REGISTRY_TIMEOUT_SECONDS`` and the whole by ``PINNING_DEADLINE_SECONDS``.

The device verifies again before it starts anything: :func:`pillar` is the
``docker:release:signatures`` it reads (docs/architecture.md "Release pillar").
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from api.errors import ValidationError
from api.extensions import db
from api.limits import PINNING_DEADLINE_SECONDS, REGISTRY_TIMEOUT_SECONDS
from api.policies.release import policy_for
from api.releases.pinning import registries_of, run_parallel
from api.signing_keys.models import SigningKey
from berth import registryclient, signing
from berth.release.pillar import PillarSignatures
from berth.signing import SignatureError

log = logging.getLogger(__name__)

Key = tuple[int | None, str, str]  # (registry id, image, digest)


def account_keys(account_id: int) -> list[SigningKey]:
    return list(
        db.session.scalars(
            select(SigningKey).where(SigningKey.account_id == account_id).order_by(SigningKey.id)
        )
    )


def pillar(account_id: int) -> PillarSignatures:
    """Pillar ``docker:release:signatures``: ``{"required": bool, "keys": [{"name",
    "public_key"}]}`` -- the account's current policy and keys."""
    return {
        "required": bool(policy_for(account_id).require_signatures),
        "keys": [{"name": k.name, "public_key": k.public_key} for k in account_keys(account_id)],
    }


def verify(account_id: int, containers: list[dict]) -> list[str] | None:
    """When the account requires signatures: the name of the key that signed each container
    (clean body values, pinned); a 400 naming ``containers[i].image`` for every container that
    is not signed by one of the account's keys, and why. None when signatures are not required."""
    if not policy_for(account_id).require_signatures:
        return None
    keys = account_keys(account_id)
    names = {k.fingerprint: k.name for k in keys}
    pems = [k.public_key for k in keys]
    wanted = list(
        dict.fromkeys(
            (c.get("registry"), c["image"], c["digest"]) for c in containers if c.get("digest")
        )
    )
    registries = registries_of({registry_id for registry_id, _, _ in wanted})

    def one(key: Key) -> str:
        registry_id, image, digest = key
        url, creds = registries[registry_id] if registry_id is not None else (None, None)
        with registryclient.client_for(url, creds, REGISTRY_TIMEOUT_SECONDS) as client:
            return signing.verify_image(client, registryclient.repository(url, image), digest, pems)

    found = run_parallel(wanted, one, PINNING_DEADLINE_SECONDS) if keys and wanted else {}
    signed_by: list[str] = []
    errors: list[dict] = []
    for c in containers:
        if not c.get("digest"):
            why = (
                "it has no digest: signatures are required by the account's release policy, and "
                'a signature names a digest. Leave "pin_digests" on, or give its "digest".'
            )
        elif not keys:
            why = "the account has no signing key (/docker/signing-keys/) to verify it with."
        else:
            result = found[(c.get("registry"), c["image"], c["digest"])]
            if isinstance(result, str):
                signed_by.append(names.get(result, result))
                errors.append({})
                continue
            why = _reason(result, c)
        errors.append({"image": [f"{c['image']}@{c.get('digest') or c['tag']}: {why}"]})
    if any(errors):
        raise ValidationError({"containers": errors})
    return signed_by


def _reason(result: BaseException, container: dict) -> str:
    if isinstance(result, SignatureError):
        return (
            f"{result.reason}. Signatures are required by the account's release policy: sign it "
            "(cosign sign --key) with a key registered in /docker/signing-keys/."
        )
    if isinstance(result, TimeoutError):
        return f"registry error: no answer within {PINNING_DEADLINE_SECONDS} s."
    # a bug or an odd answer must stay a 400 naming the container, never a 500
    log.warning("verifying %s@%s failed: %r", container["image"], container["digest"], result)
    return f"registry error: {type(result).__name__}."
