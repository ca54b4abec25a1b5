"""Audit log bodies: ``GET /audit/`` (docs/security.md)."""

from __future__ import annotations

from typing import Annotated, Any

from api.bodies import TIMESTAMP, ResponseBody, doc


class AuditEntry(ResponseBody):
    id: int
    at: Annotated[str, TIMESTAMP, doc(format="date-time")]
    action: Annotated[str, doc(examples=["release.create"])]
    user: int | None
    user_email: str | None
    token: Annotated[int | None, doc("API token id (never the token).")]
    client_address: str | None
    device: str | None
    target: Annotated[str | None, doc(examples=["release:7"])]
    details: Annotated[dict[str, Any], doc("What changed; never a secret.")]


class AuditPage(ResponseBody):
    count: int
    next: Annotated[str | None, doc(format="uri")]
    previous: Annotated[str | None, doc(format="uri")]
    results: list[AuditEntry]
