"""Signed execute callbacks.

The body is the JSON poll result (``{"jid","device_id","state","response"}``),
sent as ``POST`` with ``Content-Type: application/json`` and
``X-Request-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>``, keyed
with the account's webhook secret (``flask --app api accounts webhook-secret NAME``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

import requests

from api.execute.models import settings_for

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Request-Signature"
DELIVERY_TIMEOUT = 10


class WebhookFailed(Exception):
    pass


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """What a receiver does (shown in docs/fleet-api.md); used by the tests."""
    return hmac.compare_digest(sign(secret, body), signature or "")


def encode(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True, default=str).encode()


def deliver(url: str, account_id: int, body: dict) -> None:
    """POST one signed callback; raise ``WebhookFailed`` naming why when it is not accepted (2xx)."""
    settings = settings_for(account_id)
    secret = settings.webhook_secret() if settings is not None else None
    if not secret:
        raise WebhookFailed(
            "the account has no webhook secret (flask --app api accounts webhook-secret NAME)"
        )
    data = encode(body)
    try:
        resp = requests.post(
            url,
            data=data,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, data)},
            timeout=DELIVERY_TIMEOUT,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise WebhookFailed(f"POST {url} failed: {exc.__class__.__name__}: {exc}") from None
    if not 200 <= resp.status_code < 300:
        raise WebhookFailed(f"POST {url} answered HTTP {resp.status_code}")
