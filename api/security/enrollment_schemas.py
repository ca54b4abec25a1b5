"""Enrollment bodies (docs/security.md): ``/enrollment-tokens/`` and ``POST /master/devices/enroll/``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from api.bodies import RequestBody, ResponseBody, doc
from api.devices.schemas import minion_id
from api.fields import FieldError, checks, integer, iso_datetime, rule, string
from api.limits import ENROLLMENT_TOKEN_MAX, NAME_MAX
from api.types import utcnow

MAX_USES = 1_000_000


def future_datetime(value: Any) -> datetime:
    parsed = iso_datetime(value)
    if parsed <= utcnow():
        raise FieldError("The expiry must be in the future.")
    return parsed


@checks(minimum=1, maximum=MAX_USES)
def use_count(value: Any) -> int:
    value = integer(value)
    if not 1 <= value <= MAX_USES:
        raise FieldError(f"Ensure this value is between 1 and {MAX_USES}.")
    return value


class EnrollmentTokenInput(RequestBody):
    name: Annotated[str, rule(string(max_length=NAME_MAX, allow_blank=True))] = ""
    expires: Annotated[
        datetime | None,
        rule(future_datetime, nullable=True),
        doc("ISO-8601 (RFC 3339 date-time), in the future.", format="date-time"),
    ] = None
    max_uses: Annotated[int | None, rule(use_count, nullable=True)] = None


class EnrollInput(RequestBody):
    unit_id: Annotated[str, rule(minion_id), doc("The minion id.")]
    enrollment_token: Annotated[str, rule(string(max_length=ENROLLMENT_TOKEN_MAX))]


class EnrollmentToken(ResponseBody):
    id: int
    name: str
    expires: Annotated[str | None, doc(format="date-time")]
    max_uses: int | None
    uses: int
    state: Literal["active", "expired", "used up", "revoked"]
    created: Annotated[str, doc(format="date-time")]
    # absent (never null) outside the creation response: the schema stays a plain string
    token: Annotated[str, doc("Only in the creation response.")] = None  # type: ignore[assignment]


class Enrolled(ResponseBody):
    """``POST /master/devices/enroll/``: the minion is a device of the token's account now."""

    unit_id: str
    device_id: Annotated[str, doc("Device id (UUID).")]
    enrolled: Literal[True]
