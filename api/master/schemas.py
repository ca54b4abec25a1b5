"""Master-scope bodies: a device's release report and the minion-key sync."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import Field

from api.bodies import RequestBody, ResponseBody, doc
from api.devices.schemas import minion_id
from api.fields import FieldError, checks, db_id, iso_datetime, rule, string
from api.limits import (
    MAX_REPORT_CONTAINERS,
    MAX_SYNC_UNIT_IDS,
    REPORT_ERROR_MAX,
    REPORT_SIGNATURE_MAX,
    UNIT_ID_MAX,
    VERSION_HASH_MAX,
)
from api.releases.schemas import Deployment
from berth.contract import ReportOutcome


def report_outcome(value: Any) -> ReportOutcome:
    if value not in tuple(ReportOutcome):
        raise FieldError(f'"{value}" is not a valid choice: {", ".join(ReportOutcome)}.')
    return ReportOutcome(value)


def container_reports(value: Any) -> list:
    if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
        raise FieldError("Expected a list of container objects.")
    if len(value) > MAX_REPORT_CONTAINERS:
        raise FieldError(f"Ensure this field has no more than {MAX_REPORT_CONTAINERS} elements.")
    return value


class DeploymentReport(RequestBody):
    """A ``berth/release/result`` event's data, forwarded by the master's ``berth.report`` runner."""

    unit_id: Annotated[str, rule(string(max_length=UNIT_ID_MAX)), doc("The minion id.")]
    release_id: Annotated[int, rule(db_id)]
    version_hash: Annotated[
        str | None, rule(string(max_length=VERSION_HASH_MAX), nullable=True)
    ] = None
    outcome: Annotated[
        ReportOutcome, rule(report_outcome), doc("applying marks the deployment applying.")
    ]
    error: Annotated[
        str | None, rule(string(max_length=REPORT_ERROR_MAX, allow_blank=True), nullable=True)
    ] = None
    containers: Annotated[
        list[dict[str, Any]],
        rule(container_reports, nullable=True),
        doc("[{name, fully_qualified_name, image, status}]"),
    ] = Field(default_factory=list)
    finished_at: Annotated[
        datetime | None,
        rule(iso_datetime, nullable=True),
        doc("ISO-8601 (RFC 3339 date-time); default: now.", format="date-time"),
    ] = None
    signature: Annotated[
        str | None,
        rule(string(max_length=REPORT_SIGNATURE_MAX), nullable=True),
        doc(
            "The device's HMAC-SHA256 (hex) of the result under its report key (berth/results.py); "
            "a report without the device's signature is refused (400) and audited."
        ),
    ] = None


class DeploymentReportResult(ResponseBody):
    """One report of a list, answered in the order sent: what it alone would have been answered."""

    index: Annotated[int, doc("Its position in the list sent (0-based).")]
    status: Annotated[
        int, doc("200 (recorded), or the error status it alone would get (400, 403, 404).")
    ]
    deployment: Annotated[Deployment | None, doc("The deployment now (status 200).")]
    errors: Annotated[
        dict[str, Any] | None, doc("The error body (status 4xx): field -> messages, or detail.")
    ]


@checks(maxItems=MAX_SYNC_UNIT_IDS, items={"type": "string", **minion_id.schema})
def minion_id_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise FieldError(f'Expected a list of items but got type "{type(value).__name__}".')
    if len(value) > MAX_SYNC_UNIT_IDS:
        raise FieldError(f"Ensure this field has no more than {MAX_SYNC_UNIT_IDS} elements.")
    result: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    for i, item in enumerate(value):
        try:
            result[minion_id(item)] = None  # de-duplicated, order kept, linear
        except FieldError as exc:
            errors[str(i)] = exc.detail
    if errors:
        raise FieldError(errors)
    return list(result)


class DeviceSync(RequestBody):
    unit_ids: Annotated[
        list[str],
        rule(minion_id_list),
        doc("Accepted minion ids."),
    ]


class DeviceSyncResult(ResponseBody):
    created: Annotated[list[str], doc("Devices created and enrolled.")]
    existing: Annotated[list[str], doc("The account's devices already; now enrolled.")]
    pending: Annotated[
        list[str],
        doc("Not enrolled by this sync (e.g. enrolled in another account, left alone)."),
    ]
