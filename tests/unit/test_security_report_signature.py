"""A device's result signature (berth/results.py): what it covers, what breaks it, and the
device's kept report key (berth/release/commands.py)."""

from __future__ import annotations

import os

import pytest

from berth import results
from berth.release import commands

KEY = "ab" * 32
OTHER_KEY = "cd" * 32
RESULT = {
    "release_id": 7,
    "version_hash": "96a7191f",
    "outcome": "failed",
    "error": "pull failed",
    "containers": [{"name": "curveball", "status": "exited"}],
    "finished_at": "2026-11-27T10:00:00.000Z",
}


def test_a_signed_result_verifies_for_its_device_only():
    body = results.signed(KEY, "unit-a", RESULT)
    assert results.verify(KEY, "unit-a", body, body["signature"])
    assert not results.verify(KEY, "unit-b", body, body["signature"])  # another device's id
    assert not results.verify(OTHER_KEY, "unit-a", body, body["signature"])  # another key


@pytest.mark.parametrize(
    "field, value",
    [
        ("release_id", 8),
        ("version_hash", "00000000"),
        ("outcome", "succeeded"),
        ("error", None),
        ("containers", []),
        ("finished_at", "2027-01-01T00:00:00.000Z"),
    ],
)
def test_every_signed_field_is_covered(field, value):
    body = results.signed(KEY, "unit-a", RESULT)
    assert not results.verify(KEY, "unit-a", {**body, field: value}, body["signature"])


def test_what_transport_may_change_does_not_break_it():
    body = results.signed(KEY, "unit-a", {**RESULT, "containers": None})
    # the API accepts "7" for 7; the master turns a missing container list into []
    assert results.verify(
        KEY, "unit-a", {**body, "release_id": "7", "containers": []}, body["signature"]
    )
    # fields outside the signed ones (the signature itself) do not count
    assert results.verify(KEY, "unit-a", {**body, "extra": 1}, body["signature"])


@pytest.mark.parametrize(
    "signature", [None, "", "x" * 64, "AB" * 32, "ab" * 31, ["ab" * 32], 7, "ab" * 33]
)
def test_malformed_signatures_never_verify(signature):
    assert not results.verify(KEY, "unit-a", RESULT, signature)


@pytest.mark.parametrize("key", [None, "", "ab" * 31, "AB" * 32, "zz" * 32, 7])
def test_only_a_report_key_signs(key):
    assert not results.valid_key(key)
    with pytest.raises(ValueError):
        results.sign(key, "unit-a", RESULT)


def test_a_value_json_cannot_hold_never_verifies():
    assert not results.verify(KEY, "unit-a", {**RESULT, "error": float("nan")}, "ab" * 32)


def test_the_device_keeps_its_key_readable_by_root_only(tmp_path):
    opts = {"docker.release_state_dir": str(tmp_path / "state")}
    assert commands.kept_report_key(opts) is None
    commands.keep_report_key(opts, KEY)
    path = tmp_path / "state" / commands.REPORT_KEY
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert commands.kept_report_key(opts) == KEY
    commands.keep_report_key(opts, OTHER_KEY)  # a new key (the device was re-created)
    assert commands.kept_report_key(opts) == OTHER_KEY
    os.chmod(path, 0o644)  # readable by others: not used
    assert commands.kept_report_key(opts) is None
    os.chmod(path, 0o600)
    path.write_text("not a key\n")
    assert commands.kept_report_key(opts) is None
