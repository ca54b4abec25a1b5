"""schemathesis against ``/openapi.json``: every operation, with user, master and device
tokens, on seeded data, all checks; zero 5xx and zero conformance failures.

Bounded so CI time stays predictable: ``EXAMPLES`` generated cases per operation, derandomized
(Hypothesis draws from a fixed seed), no shrinking deadline. The app runs in-process (WSGI), on
SQLite and again on PostgreSQL (``-m db``). The counts are printed at the end of the run
(requests, 5xx, failures per check). ``BERTH_SCHEMATHESIS_EXAMPLES`` raises the budget for a
deeper local run.
"""

from __future__ import annotations

import collections
import itertools
import os
import tempfile

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
    status_code_conformance,
)

EXAMPLES = int(os.environ.get("BERTH_SCHEMATHESIS_EXAMPLES", "15"))

COUNTS: collections.Counter = collections.Counter()
FAILURES: collections.Counter = collections.Counter()
FAILED_OPERATIONS: set[str] = set()


@pytest.fixture
def seeded(app, api_factory, account, user, user_token, master_token, device, device_token):
    """An account with a registry, a project, a release listing the device, and one token per
    scope; path parameters point at these objects half of the time."""
    client = app.test_client()
    headers = user_token.headers
    registry = client.post(
        "/docker/registries/",
        json={"name": "r", "url": "registry.example:5000", "username": "u", "password": "p"},
        headers=headers,
    ).json
    project = client.post("/docker/projects/", json={"name": "p"}, headers=headers).json
    release = client.post(
        f"/docker/projects/{project['id']}/releases/",
        json={
            "version": "1.0.0",
            "devices": [device.id],
            "containers": [
                {"name": "app", "image": "app", "tag": "v1", "registry": registry["id"]}
            ],
        },
        headers=headers,
    ).json
    TOKENS.update(user=user_token.token, master=master_token.token, device=device_token.token)
    return {
        "ids": {
            "registry_id": registry["id"],
            "project_id": project["id"],
            "release_id": release["id"],
            "device_id": device.id,
            "unit_id": device.unit_id,
        },
    }


def _document_app():
    """An app only to read the document from (it does not depend on the database); the cases
    are sent to the test's own ``app``."""
    from api import create_app

    return create_app(
        {
            "DATABASE_URL": "sqlite://",
            "SECRET_KEY": "schemathesis",
            "INSTANCE_PATH": tempfile.mkdtemp(prefix="berth-schemathesis-"),
        }
    )


schema = schemathesis.openapi.from_wsgi("/openapi.json", _document_app())


# Drift still open (issue 13): the server enforces a rule the document does not express yet,
# so a schema-valid body can be refused (400). Only that one check is skipped for these
# operations; every other check (5xx, status codes, response schemas, auth, negative data)
# still runs on them. Remove an entry when its operation's schema tells the whole rule.
POSITIVE_DATA_DRIFT = {
    "POST /docker/registries/": "url: the host part's rules beyond the documented pattern",
    "PATCH /docker/registries/{registry_id}/": "as POST /docker/registries/",
    "PUT /docker/registries/{registry_id}/": "as POST /docker/registries/",
    "POST /docker/projects/{project_id}/releases/": (
        "containers[].startup_parameters (environment KEY=VALUE, absolute paths, ...) and device "
        "ids that must exist"
    ),
    "PUT /docker/projects/{project_id}/releases/{release_id}/": "as POST .../releases/",
    "PATCH /docker/projects/{project_id}/releases/{release_id}/": "as POST .../releases/",
    "POST /dongle/devices/{device_id}/execute/": "callback_url: an http(s) URL with a host",
    "POST /dongle/devices/{device_id}/execute_raw/": "command: a command line starting with module.function",
    "POST /enrollment-tokens/": "max_uses range and expires format (api/security)",
    "POST /master/devices/enroll/": "a valid body needs a real, unused enrollment token",
    "GET /logbook/storage/read/": "from_utc/to_utc formats and which parameters are required",
    "POST /logbook/storage/write/": "device_id is required for a user token",
    "GET /logbook/storage/fields/": "device_id may not be blank",
    "GET /audit/": "since/until: only ISO-8601 date-times (api/audit)",
    "POST /docker/rollout-webhooks/": "url: http(s) only, documented as any URI",
    "POST /devices/": "unit_id: the minion id rule after stripping; unique unit_id (DRF: 400)",
    "PUT /devices/{device_id}/": "as POST /devices/",
    "PATCH /devices/{device_id}/": "as POST /devices/",
    "POST /master/devices/sync/": "unit_ids: as POST /devices/",
    "POST /docker/projects/": "a unique name (DRF answers a duplicate with 400, not 409)",
    "PUT /docker/projects/{project_id}/": "as POST /docker/projects/",
    "PATCH /docker/projects/{project_id}/": "as POST /docker/projects/",
}
# Unknown query parameters are ignored (as DRF does); schemathesis's negative mode counts a
# request carrying them as invalid data that should have been refused.
NEGATIVE_DATA_DRIFT = {
    "GET /docker/projects/{project_id}/releases/": "unknown query parameters are ignored",
}
# A status code the document does not list yet.
STATUS_CODE_DRIFT = {"GET /audit/": "404 for a filter naming an unknown object"}

TOKENS: dict[str, str] = {}  # scope -> token of the running test (the ``seeded`` fixture)
ROTATION = itertools.count()


def _scope(path: str) -> str:
    if path.startswith("/master/"):
        return "master"
    if path.startswith("/logbook/storage/write/"):
        return "device"
    return "user"


@schema.auth(refresh_interval=None)
class ScopedTokens:
    """The operation's own scope, and every third case one of the other two (401/403).
    schemathesis applies it, so its auth checks (missing or made-up credentials) still run."""

    def get(self, case, ctx):
        scope = _scope(ctx.operation.path)
        n = next(ROTATION)
        if n % 3 == 2:
            scope = [s for s in ("user", "master", "device") if s != scope][(n // 3) % 2]
        return TOKENS.get(scope, "not-yet-seeded")

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "Authorization": f"APIToken {data}"}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi_document(case, app, seeded):
    if COUNTS["requests"] % 2 == 0:
        for name, value in seeded["ids"].items():
            if case.path_parameters and name in case.path_parameters:
                case.path_parameters[name] = value
    COUNTS["requests"] += 1
    try:
        excluded = []
        if case.operation.label in POSITIVE_DATA_DRIFT:
            excluded.append(positive_data_acceptance)
        if case.operation.label in NEGATIVE_DATA_DRIFT:
            excluded.append(negative_data_rejection)
        if case.operation.label in STATUS_CODE_DRIFT:
            excluded.append(status_code_conformance)
        response = case.call_and_validate(app=app, excluded_checks=excluded)
    except BaseException as exc:  # schemathesis's FailureGroup is a BaseExceptionGroup
        FAILURES["(any)"] += 1
        for failure in getattr(exc, "exceptions", [exc]):
            title = getattr(failure, "title", type(failure).__name__)
            FAILURES[title] += 1
            FAILED_OPERATIONS.add(f"{case.operation.label}: {title}")
        raise
    if response.status_code >= 500:
        COUNTS["5xx"] += 1


def summary() -> list[str]:
    """Printed at the end of the run (tests/conftest.py ``pytest_terminal_summary``)."""
    head = (
        f"schemathesis: {COUNTS['requests']} requests, {COUNTS['5xx']} 5xx, "
        f"{FAILURES['(any)']} failing requests, {len(FAILED_OPERATIONS)} distinct failures"
        + "".join(f"; {name}: {count}" for name, count in FAILURES.items() if name != "(any)")
    )
    return [head, *sorted(FAILED_OPERATIONS)]
