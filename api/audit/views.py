"""``GET /audit/``: the account's audit log, newest first (token scope ``user``)."""

from __future__ import annotations

import re
from datetime import datetime

from flask import Blueprint, g, request
from sqlalchemy import Select, select

from api.audit.log import AuditEntry
from api.audit.schemas import AuditEntry as AuditEntryBody
from api.audit.schemas import AuditPage
from api.auth import require_token
from api.errors import ValidationError
from api.fields import FieldError, iso_datetime
from api.limits import MAX_DB_ID
from api.openapi import Response, operation, query_param
from api.pagination import paginate

bp = Blueprint("audit", __name__)


def serialize_entry(entry: AuditEntry) -> dict:
    """An audit row as its ``AuditEntry`` response model writes it."""
    return AuditEntryBody.body(
        entry,
        user=entry.user_id,
        token=entry.token_id,
        device=entry.device_id,
        details=entry.details or {},
    )


# a date and a time (``format: date-time``), not a bare date or an empty value
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")


def _time_arg(args, name: str) -> datetime | None:
    if name not in args:
        return None
    raw = args[name]
    try:
        if not _DATE_TIME.match(raw):
            raise FieldError("Datetime has wrong format. Use ISO-8601.")
        return iso_datetime(raw)
    except FieldError as exc:
        raise ValidationError({name: exc.detail}) from None


def audit_query(account_id: int, args) -> Select:
    """The account's audit rows matching the ``GET /audit/`` filters in ``args`` (action,
    device, user, since, until), newest first; a bad filter raises ValidationError. The REST
    API and the console both use it."""
    stmt = select(AuditEntry).where(AuditEntry.account_id == account_id)
    if args.get("action"):
        stmt = stmt.where(AuditEntry.action == args["action"])
    if args.get("device"):
        stmt = stmt.where(AuditEntry.device_id == args["device"])
    if "user" in args:  # an empty ?user= is not an integer either
        raw = args["user"]
        if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_DB_ID:
            raise ValidationError({"user": ["A valid integer is required."]})
        stmt = stmt.where(AuditEntry.user_id == int(raw))
    since, until = _time_arg(args, "since"), _time_arg(args, "until")
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEntry.at < until)
    return stmt.order_by(AuditEntry.at.desc(), AuditEntry.id.desc())


@bp.get("/audit/")
@operation(
    "audit",
    "The account's audit log (append-only), newest first",
    description="Who (user, token id, client address) did what and when: logins and failed "
    "logins, tokens and enrollment tokens created/revoked, releases created/changed/deleted, "
    "rollout actions, execute (function, arguments, device), registries changed. Rows outlive "
    "the device or user they name and never hold secrets.",
    query=[
        query_param("action", "Only this action, e.g. release.create, execute, login.failed."),
        query_param("device", "Only rows about this device id."),
        query_param(
            "user",
            "Only rows by this user id.",
            {"type": "integer", "minimum": 0, "maximum": MAX_DB_ID},
        ),
        query_param(
            "since",
            "From this time on (ISO-8601 date-time; without an offset: UTC).",
            {"type": "string", "format": "date-time"},
        ),
        query_param(
            "until",
            "Before this time (ISO-8601 date-time; without an offset: UTC).",
            {"type": "string", "format": "date-time"},
        ),
    ],
    responses={200: Response(AuditPage, "A page of audit entries.")},
    paginated=True,
    errors={400: "A bad filter (field -> messages).", 403: "Not a user token."},
)
@require_token("user")
def list_audit():
    """The account's audit log, newest first; filters action, device, user, since, until."""
    return paginate(audit_query(g.account.id, request.args), serialize_entry)
