"""The rules of ``tags``, ``device_tags`` and the ``rollout`` policy's fields (checks raising
``FieldError`` with DRF's messages, attached to the bodies of :mod:`api.schemas.rollouts`,
``devices`` and ``releases``), and wave membership.

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

from api.validation import FieldError, list_of

TAG_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_TAGS = 50
MAX_WAVES = 20
MAX_WAVE_TIMEOUT = 30 * 24 * 3600


def tag(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError("Not a valid string.")
    if not TAG_RE.match(value):
        raise FieldError(
            f'"{value[:80]}" is not a valid tag: 1 to 64 characters from A-Z a-z 0-9 _ . : -.'
        )
    return value


_tag_list = list_of(tag, max_items=MAX_TAGS)


def tags(value: Any) -> list[str]:
    """A list of at most 50 tags; duplicates are dropped, order is kept."""
    return list(dict.fromkeys(_tag_list(value)))


def strict_int(low: int, high: int):
    """An integer (``2.0`` too, not ``"2"`` or ``true``) in [low, high]."""

    def check(value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 2.0: an integer to JSON Schema, as to api.validation.integer
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError("A valid integer is required.")
        if not low <= value <= high:
            raise FieldError(f"Ensure this value is between {low} and {high}.")
        return value

    return check


_percent_list = list_of(strict_int(1, 100), max_items=MAX_WAVES)


def waves(value: Any) -> list[int]:
    if isinstance(value, list) and not value:
        raise FieldError("This list may not be empty.")
    result = _percent_list(value)
    if any(b <= a for a, b in zip(result, result[1:], strict=False)):
        raise FieldError(
            "Waves are cumulative percentages: each must be larger than the one before."
        )
    if result[-1] != 100:
        raise FieldError("The last wave must be 100 (every target gets the release).")
    return result


def rollout(value: Any) -> dict:
    """``{"waves": [...], "advance_at", "halt_at", "halt_min_finished", "wave_timeout"}``: the
    fields of :class:`api.schemas.rollouts.RolloutPolicy`, by their rules (above)."""
    from api.schemas.rollouts import rollout_policy  # the model imports this module's rules

    return rollout_policy(value)


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
