"""Device bodies: ``/devices/``; ``unit_id`` is the Salt minion id."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field

from api.bodies import TIMESTAMP, RequestBody, ResponseBody, doc
from api.fields import SPACE, FieldError, checks, rule, string
from api.limits import UNIT_ID_MAX
from api.rollouts import schemas as rollout_rules
from api.rollouts.schemas import TAG

READ_ONLY = {"readOnly": True}
# Salt refuses ids that could escape its pki directory; whitespace and control
# characters break command lines and targeting.
_UNIT_ID_RE = re.compile(rf"^[^{SPACE}/\\\x00-\x1f\x7f]+$")
# The same rule for OpenAPI, without look-arounds: no leading ".", no "..", none of the above.
_UNIT_ID_CHAR = rf"[^{SPACE}/\\\x00-\x1f\x7f.]"
UNIT_ID_PATTERN = rf"^{_UNIT_ID_CHAR}+(\.{_UNIT_ID_CHAR}+)*\.?$"
DISPLAY_MAX = 200


@checks(maxLength=UNIT_ID_MAX, pattern=UNIT_ID_PATTERN)
def minion_id(value: Any) -> str:
    value = string(max_length=UNIT_ID_MAX)(value)
    if not _UNIT_ID_RE.fullmatch(value) or value.startswith(".") or ".." in value:
        raise FieldError(
            "Not a valid Salt minion id: no whitespace, slashes, control characters, "
            'leading "." or "..". A UUID is recommended.'
        )
    return value


class DeviceInput(RequestBody):
    unit_id: Annotated[
        str,
        rule(minion_id),
        doc("The Salt minion id (unique); a UUID is recommended."),
    ]
    display: Annotated[str, rule(string(max_length=DISPLAY_MAX, allow_blank=True))] = ""
    tags: Annotated[
        list[str],
        rule(rollout_rules.tags),
        doc(
            "Replaces the device's tags; releases with matching device_tags target it "
            "(docs/rollouts.md). A PUT without tags leaves them."
        ),
    ] = Field(default_factory=list)


class Device(ResponseBody):
    id: Annotated[str, doc(format="uuid", **READ_ONLY)]
    unit_id: Annotated[str, doc("The Salt minion id (unique).")]
    display: str
    enrolled: Annotated[
        bool, doc("The minion proved it is this account's (docs/security.md).", **READ_ONLY)
    ]
    created: Annotated[str, TIMESTAMP, doc(format="date-time", **READ_ONLY)]
    docker_releases: Annotated[
        list[int], doc("Ids of releases this device deployed successfully.", **READ_ONLY)
    ]
    tags: list[TAG]


class LockOverride(ResponseBody):
    """``POST /devices/{id}/override-lock/``: the device's next apply ignores its update locks."""

    device_id: Annotated[str, doc(format="uuid", **READ_ONLY)]
    update_lock_override: Annotated[
        bool, doc("True until the device reports the apply that used it.", **READ_ONLY)
    ]
    requested_at: Annotated[str | None, TIMESTAMP, doc(format="date-time", **READ_ONLY)]
