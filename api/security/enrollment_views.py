"""``/enrollment-tokens/`` (the account's enrollment tokens) and ``POST /master/devices/enroll/``
(a master presents a minion's enrollment token)."""

from __future__ import annotations

import logging

from flask import Blueprint, g
from sqlalchemy import select

from api import audit
from api.audit import audited
from api.auth import require_token
from api.bodies import validate
from api.common import no_content, owned_or_404
from api.devices.models import Device
from api.errors import Conflict, ValidationError
from api.extensions import db
from api.openapi import Response, operation, page_of
from api.pagination import paginate
from api.payload import json_body
from api.security import enrollment, tenancy
from api.security.enrollment_schemas import (
    Enrolled,
    EnrollInput,
    EnrollmentToken,
    EnrollmentTokenInput,
)
from api.types import utcnow

bp = Blueprint("enrollment", __name__)
log = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store"}


@bp.get("/enrollment-tokens/")
@operation(
    "enrollment",
    "The account's enrollment tokens (without the tokens)",
    responses={200: Response(page_of(EnrollmentToken), "A page of enrollment tokens.")},
)
@require_token("user")
def list_enrollment_tokens():
    """The account's enrollment tokens (never the token itself)."""
    stmt = (
        select(enrollment.EnrollmentToken)
        .where(enrollment.EnrollmentToken.account_id == g.account.id)
        .order_by(enrollment.EnrollmentToken.id)
    )
    return paginate(stmt, enrollment.serialize)


def create_token(data: dict, user_id: int | None) -> tuple[enrollment.EnrollmentToken, str]:
    """Create an enrollment token of ``g.account`` from a request body (raises
    ValidationError); the REST API and the console both call this. The plaintext is returned
    once, never stored."""
    body = validate(EnrollmentTokenInput, data)
    name, expires, max_uses = body["name"], body["expires"], body["max_uses"]
    row, plaintext = enrollment.create(
        g.account.id, name=name, expires=expires, max_uses=max_uses, created_by=user_id
    )
    audit.record(
        "enrollment_token.create",
        target=f"enrollment_token:{row.id}",
        details={"name": name, "max_uses": max_uses, "expires": expires and expires.isoformat()},
    )
    db.session.commit()
    return row, plaintext


def revoke_token(row: enrollment.EnrollmentToken) -> None:
    """Revoke (idempotent); devices it enrolled stay enrolled."""
    if not row.revoked:
        row.revoked, row.revoked_at = True, utcnow()
        audit.record("enrollment_token.revoke", target=f"enrollment_token:{row.id}")
    db.session.commit()


@bp.post("/enrollment-tokens/")
@operation(
    "enrollment",
    "Create an enrollment token (shown once)",
    body=EnrollmentTokenInput,
    body_required=False,
    responses={201: Response(EnrollmentToken, "Created; `token` is shown only here.")},
    errors={400: "Invalid body: field -> messages."},
)
@audited("enrollment_token.create")
@require_token("user")
def create_enrollment_token():
    """Create an enrollment token; the token is in this response only."""
    row, plaintext = create_token(json_body(), g.token.user_id)
    return {**enrollment.serialize(row), "token": plaintext}, 201, NO_STORE


@bp.delete("/enrollment-tokens/<int:token_id>/")
@operation(
    "enrollment",
    "Revoke an enrollment token",
    responses={204: Response(None, "Revoked.")},
    errors={404: "Not found."},
)
@audited("enrollment_token.revoke")
@require_token("user")
def revoke_enrollment_token(token_id: int):
    """Revoke an enrollment token (devices it enrolled stay enrolled)."""
    revoke_token(owned_or_404(enrollment.EnrollmentToken, token_id))
    return no_content()


@bp.post("/master/devices/enroll/")
@operation(
    "master",
    "Enroll a minion with an enrollment token",
    body=EnrollInput,
    responses={200: Response(Enrolled, "Enrolled.")},
    errors={
        400: "Bad body, or an invalid/expired/revoked/used-up token.",
        409: "The minion is enrolled in another account that still has it (an enrollment only "
        "another account's own master vouched for is taken over by a token presented through a "
        "platform master).",
    },
)
@audited("device.enroll")
@require_token("master", "platform")
def enroll_device():
    """A minion presents an enrollment token through its master: it joins the token's account."""
    body = validate(EnrollInput, json_body())
    uid, token_text = body["unit_id"], body["enrollment_token"]
    token = enrollment.usable(token_text)
    if (
        token is None
        or (g.account is not None and token.account_id != g.account.id)
        or not enrollment.consume(token)  # the first write: atomic, single use means one
    ):
        db.session.rollback()
        raise ValidationError(
            {"enrollment_token": ["Invalid, expired, revoked or used-up enrollment token."]}
        )
    master = tenancy.credential(g.token)
    current = db.session.get(tenancy.MinionEnrollment, uid)
    lost = None  # (account id, device id) of an account master's enrollment this token takes over
    if current is not None and current.account_id != token.account_id:
        # The minion is enrolled elsewhere; it may move once that account deleted its device,
        # or when only that account's own master vouched for it (tenancy.overridable_by).
        still_there = db.session.scalar(
            select(Device.id).where(Device.unit_id == uid, Device.account_id == current.account_id)
        )
        if still_there is not None:
            if not tenancy.overridable_by(current, g.token):
                db.session.rollback()  # the token's use too
                audit.record(
                    "device.enrollment_conflict",
                    account_id=token.account_id,
                    target=f"enrollment_token:{token.id}",
                    details={"unit_id": uid, "outcome": "refused", "master": master},
                )
                db.session.commit()
                raise Conflict(
                    "This minion is enrolled elsewhere; it cannot be enrolled with this token."
                )
            lost = (current.account_id, still_there, current.method, current.master)
    device = tenancy.enroll(uid, token.account_id, "enrollment_token", token.id, master)
    audit.record(
        "device.enroll",
        account_id=token.account_id,
        device_id=device.id,
        target=f"enrollment_token:{token.id}",
        details={"unit_id": uid, "method": "enrollment_token", "master": master},
    )
    if lost is not None:
        lost_account, lost_device, lost_method, lost_master = lost
        # the account that lost it learns which of its devices is pending now and why, not who
        audit.record(
            "device.enrollment_conflict",
            account_id=lost_account,
            device_id=lost_device,
            details={
                "unit_id": uid,
                "outcome": "lost",
                "reason": "the minion presented another account's enrollment token through a "
                "platform master; this account's enrollment came from its own master only",
                "method": lost_method,
                "master": lost_master,
            },
        )
        audit.record(
            "device.enrollment_conflict",
            account_id=token.account_id,
            device_id=device.id,
            target=f"enrollment_token:{token.id}",
            details={"unit_id": uid, "outcome": "taken_over", "previous_method": lost_method},
        )
        log.warning(
            "minion %s: enrollment of account %s (%s through %s) taken over by account %s's "
            "enrollment token through %s",
            uid,
            lost_account,
            lost_method,
            lost_master,
            token.account_id,
            master,
        )
    db.session.commit()
    log.info(
        "minion %s enrolled in account %s with enrollment token %s", uid, token.account_id, token.id
    )
    return Enrolled.body(device, unit_id=uid, device_id=device.id, enrolled=True)
