"""A device's release result as it travels to the API, signed by the device.

Standard library only: the device signs (``_modules/docker.py``), the master forwards the
signature untouched (``berth.master.forward``) and the API verifies it (``api.security.report_keys``).

A minion can make the master fire events with data of its own choosing -- the nested ``events``
form of ``_minion_event`` carries an ``id`` the minion wrote -- so the master cannot tell which
device a ``berth/release/result`` came from. The device therefore signs its result with its
*report key*: an HMAC-SHA256 key the API derives for that device alone and serves only in that
minion's own pillar (``berth:report_key``; Salt decides who gets which pillar). The signature
covers the canonical form of the result and the device's own minion id, so no other device
(and no master) can make a result for it (docs/security.md "Trust beyond the REST API", 2.).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

from berth.contract import AppliedReleaseState, ReportOutcome

SIGNATURE = "signature"
# the signed fields of a result (docs/architecture.md "Events"); release_id is signed as text
# so that 7 and "7" (the API accepts both) sign the same
SIGNED_FIELDS = ("release_id", "version_hash", "outcome", "error", "containers", "finished_at")
_KEY = re.compile(r"[0-9a-f]{64}\Z")
_SIGNATURE = re.compile(r"[0-9a-f]{64}\Z")
VERSION = 1


def valid_key(key: object) -> bool:
    """A report key as the API makes them: 64 lowercase hex digits."""
    return isinstance(key, str) and bool(_KEY.match(key))


def canonical(unit_id: str, result: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the minion id and the signed fields, as sorted compact JSON."""
    body = {"v": VERSION, "unit_id": unit_id}
    for field in SIGNED_FIELDS:
        body[field] = result.get(field)
    if body["release_id"] is not None:
        body["release_id"] = str(body["release_id"])
    if body["containers"] is None:
        body["containers"] = []
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign(key: str, unit_id: str, result: dict[str, Any]) -> str:
    """The hex HMAC-SHA256 of :func:`canonical` under the device's report key."""
    if not valid_key(key):
        raise ValueError("not a report key (64 lowercase hex digits)")
    return hmac.new(bytes.fromhex(key), canonical(unit_id, result), hashlib.sha256).hexdigest()


def signed(key: str, unit_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with its ``signature``."""
    return {**result, SIGNATURE: sign(key, unit_id, result)}


def verify(key: str, unit_id: str, result: dict[str, Any], signature: object) -> bool:
    """Whether ``signature`` is the device's signature of ``result``; constant time."""
    if not isinstance(signature, str) or not _SIGNATURE.match(signature):
        return False
    try:
        expected = sign(key, unit_id, result)
    except (TypeError, ValueError):  # a value JSON cannot hold: nothing the device signed
        return False
    return hmac.compare_digest(expected, signature)


def status_to_result(status: object) -> dict[str, Any] | None:
    """A ``docker.release_status`` return as a result to report, or None when there is nothing to say.

    ``running`` -> succeeded; ``degraded`` -> failed (a release container stopped);
    ``none`` or ``interrupted`` (an apply is in progress or will be recovered) -> None.
    """
    if not isinstance(status, dict) or status.get("release_id") in (None, ""):
        return None
    state = status.get("state")
    error: str | None
    if state == AppliedReleaseState.RUNNING:
        outcome, error = ReportOutcome.SUCCEEDED, None
    elif state == AppliedReleaseState.DEGRADED:
        stopped = [
            c.get("fully_qualified_name")
            for c in status.get("containers") or []
            if c.get("version_hash") == status.get("version_hash") and c.get("status") != "running"
        ]
        outcome, error = (
            ReportOutcome.FAILED,
            "release containers not running: " + (", ".join(filter(None, stopped)) or "missing"),
        )
    else:
        return None
    return {
        "release_id": status["release_id"],
        "version_hash": status.get("version_hash"),
        "outcome": outcome,
        "error": error,
        "containers": [
            c
            for c in status.get("containers") or []
            if c.get("version_hash") == status.get("version_hash")
        ],
        "finished_at": status.get("applied_at"),
    }
