"""api/<feature>/schemas.py: pydantic bodies validate with DRF's messages and shapes (no database needed)."""

from __future__ import annotations

import pytest

from api.bodies import parse, validate
from api.errors import ValidationError
from api.master.schemas import DeploymentReport, DeviceSync
from api.projects.schemas import ProjectInput
from api.registries.schemas import RegistryInput
from berth.contract import ReportOutcome


def test_required_null_blank_and_length_messages():
    parsed = parse(ProjectInput, {"description": None})
    assert parsed.errors == {
        "name": ["This field is required."],
        "description": ["This field may not be null."],
    }
    assert parse(ProjectInput, {"name": "  "}).errors == {"name": ["This field may not be blank."]}
    assert parse(ProjectInput, {"name": "x" * 101}).errors == {
        "name": ["Ensure this field has no more than 100 characters."]
    }


def test_clean_values_defaults_and_ignored_keys():
    parsed = parse(ProjectInput, {"name": " p ", "id": 7, "unknown": 1})
    assert parsed.errors == {}
    assert parsed.values == {"name": "p", "description": ""}


def test_partial_skips_absent_fields_and_fills_no_default():
    assert parse(ProjectInput, {}, partial=True).values == {}
    assert parse(ProjectInput, {"description": "d"}, partial=True).values == {"description": "d"}


def test_optional_fields_may_be_left_out_without_default():
    body = {"name": "r", "url": "https://registry.example.com:5000/", "username": "u"}
    assert parse(RegistryInput, body).errors == {"password": ["This field is required."]}
    parsed = parse(RegistryInput, body, optional=("password",))
    assert parsed.errors == {}
    assert parsed.values == {"name": "r", "url": "registry.example.com:5000", "username": "u"}


def test_rules_decide_not_pydantic_coercion():
    # pydantic's lax mode would turn "7" into 7 and 1.5 into an error message of its own; the
    # rule keeps DRF's choices (IntegerField takes "7" and 2.0, which JSON Schema's integer
    # includes, and refuses 1.5)
    ok = parse(DeploymentReport, {"unit_id": "m", "release_id": "7", "outcome": "succeeded"})
    assert ok.errors == {} and ok["release_id"] == 7 and ok["outcome"] is ReportOutcome.SUCCEEDED
    assert (
        parse(DeploymentReport, {"unit_id": "m", "release_id": 2.0, "outcome": "failed"})[
            "release_id"
        ]
        == 2
    )
    bad = parse(DeploymentReport, {"unit_id": "m", "release_id": 1.5, "outcome": "applied"})
    assert bad.errors == {
        "release_id": ["A valid integer is required."],
        "outcome": ['"applied" is not a valid choice: applying, succeeded, failed, deferred.'],
    }
    assert (
        parse(DeploymentReport, {"unit_id": "m", "release_id": 1, "outcome": "failed"})[
            "containers"
        ]
        == []
    )


def test_nested_errors_keep_their_drf_shape():
    with pytest.raises(ValidationError) as exc:
        validate(DeviceSync, {"unit_ids": ["ok", "bad id", "../x"]})
    errors = exc.value.errors["unit_ids"]
    assert set(errors) == {"1", "2"}
    assert errors["1"][0].startswith("Not a valid Salt minion id")
