"""Validation of ``tags``, ``device_tags`` and ``rollout``, and wave membership.

Wave membership is a pure function of (release id, device id): devices are ordered by
``sha256("<release id>:<device id>")``. At release creation the ordered targets are cut at
the cumulative percentages (ceil, every wave at least one device while devices remain); a
device that becomes a target later (tagged, or added to ``devices``) joins the wave its
hash falls in as a fraction of 2^64 -- the same order, so membership is reproducible.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from typing import Any

from api.validation import FieldError

TAG_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_TAGS = 50
MAX_WAVES = 20
DEFAULTS = {"advance_at": 100, "halt_at": 0, "halt_min_finished": 1, "wave_timeout": 3600}
MAX_WAVE_TIMEOUT = 30 * 24 * 3600


def tag(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError("Not a valid string.")
    if not TAG_RE.match(value):
        raise FieldError(
            f'"{value[:80]}" is not a valid tag: 1 to 64 characters from A-Z a-z 0-9 _ . : -.'
        )
    return value


def tags(value: Any) -> list[str]:
    """A list of at most 50 tags; duplicates are dropped, order is kept."""
    if not isinstance(value, list):
        raise FieldError(f'Expected a list of items but got type "{type(value).__name__}".')
    if len(value) > MAX_TAGS:
        raise FieldError(f"Ensure this field has no more than {MAX_TAGS} elements.")
    result, errors = [], {}
    for i, item in enumerate(value):
        try:
            result.append(tag(item))
        except FieldError as exc:
            errors[str(i)] = exc.detail
    if errors:
        raise FieldError(errors)
    return list(dict.fromkeys(result))


def _strict_int(low: int, high: int):
    def check(value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 2.0: an integer to JSON Schema, as to api.validation.integer
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError("A valid integer is required.")
        if not low <= value <= high:
            raise FieldError(f"Ensure this value is between {low} and {high}.")
        return value

    return check


def _waves(value: Any) -> list[int]:
    if not isinstance(value, list):
        raise FieldError(f'Expected a list of items but got type "{type(value).__name__}".')
    if not value:
        raise FieldError("This list may not be empty.")
    if len(value) > MAX_WAVES:
        raise FieldError(f"Ensure this field has no more than {MAX_WAVES} elements.")
    check = _strict_int(1, 100)
    errors, result = {}, []
    for i, item in enumerate(value):
        try:
            result.append(check(item))
        except FieldError as exc:
            errors[str(i)] = exc.detail
    if errors:
        raise FieldError(errors)
    if any(b <= a for a, b in zip(result, result[1:], strict=False)):
        raise FieldError(
            "Waves are cumulative percentages: each must be larger than the one before."
        )
    if result[-1] != 100:
        raise FieldError("The last wave must be 100 (every target gets the release).")
    return result


def rollout(value: Any) -> dict:
    """``{"waves": [...], "advance_at", "halt_at", "halt_min_finished", "wave_timeout"}``."""
    if not isinstance(value, dict):
        raise FieldError(
            {
                "non_field_errors": [
                    f"Invalid data. Expected a dictionary, but got {type(value).__name__}."
                ]
            }
        )
    rules = {
        "waves": _waves,
        "advance_at": _strict_int(1, 100),
        "halt_at": _strict_int(0, 100),
        "halt_min_finished": _strict_int(1, 1_000_000),
        "wave_timeout": _strict_int(1, MAX_WAVE_TIMEOUT),
    }
    policy, errors = {}, {}
    for name, check in rules.items():
        if name not in value:
            if name in DEFAULTS:
                policy[name] = DEFAULTS[name]
            else:
                errors[name] = ["This field is required."]
            continue
        if value[name] is None:
            errors[name] = ["This field may not be null."]
            continue
        try:
            policy[name] = check(value[name])
        except FieldError as exc:
            errors[name] = exc.detail
    for name in sorted(set(value) - set(rules)):
        errors[str(name)[:64]] = ["Unknown field."]
    if errors:
        raise FieldError(errors)
    return policy


# -- wave membership -----------------------------------------------------------


def _hash(release_id: int, device_id: str) -> int:
    digest = hashlib.sha256(f"{release_id}:{device_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def wave_sizes(n: int, waves: Sequence[int]) -> list[int]:
    """How many of ``n`` targets each wave holds: cumulative ``ceil(n * percent / 100)``, every
    wave at least one device while devices remain."""
    sizes, reached = [], 0
    for percent in waves:
        cumulative = min(n, max(math.ceil(n * percent / 100), reached + 1))
        sizes.append(cumulative - reached)
        reached = cumulative
    return sizes


def assign_waves(
    release_id: int, device_ids: Sequence[str], waves: Sequence[int]
) -> dict[str, int]:
    """{device id: wave (1-based)} for the targets a release has at creation."""
    ordered = sorted(device_ids, key=lambda d: _hash(release_id, d))
    result, start = {}, 0
    for index, size in enumerate(wave_sizes(len(ordered), waves), start=1):
        for device_id in ordered[start : start + size]:
            result[device_id] = index
        start += size
    return result


def wave_of_newcomer(release_id: int, device_id: str, waves: Sequence[int]) -> int:
    """The wave of a device that becomes a target after the release was created."""
    point = _hash(release_id, device_id) / 2**64 * 100
    for index, percent in enumerate(waves, start=1):
        if point < percent:
            return index
    return len(waves)
