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

import urllib3

from api.execute.models import settings_for
from api.outbox import OutboxMessage
from api.security import ssrf

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Request-Signature"
DELIVERY_TIMEOUT = 10
DEFAULT_MAX_ATTEMPTS = 10  # BERTH_WEBHOOK_MAX_ATTEMPTS


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
    shown = ssrf.redact_url(url)  # never credentials or a query string in logs / last_error
    try:
        resp = ssrf.post(
            url,
            data,
            {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, data)},
            DELIVERY_TIMEOUT,
        )
    except ssrf.UnsafeTarget as exc:
        raise WebhookFailed(f"POST {shown} refused: {exc}") from None
    except urllib3.exceptions.HTTPError as exc:
        reason = getattr(exc, "reason", None) or exc
        raise WebhookFailed(
            f"POST {shown} failed: {exc.__class__.__name__}: {_no_url(str(reason), url)}"
        ) from None
    if not 200 <= resp.status < 300:
        raise WebhookFailed(f"POST {shown} answered HTTP {resp.status}")


def _no_url(text: str, url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    for secret in (parts.password, parts.username, parts.query):
        if secret:
            text = text.replace(secret, "***")
    return text


def deliver_message(msg: OutboxMessage) -> str:
    """The worker's delivery of a ``webhook`` outbox row (execute callbacks, rollout webhooks);
    returns what its log line shows."""
    deliver(msg.payload["url"], msg.payload["account_id"], msg.payload["body"])
    return f"webhook delivered to {ssrf.redact_url(msg.payload['url'])}"
