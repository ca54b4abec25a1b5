"""Wave membership of a staged rollout (docs/rollouts.md).

Membership is a pure function of (release id, device id): devices are ordered by
``sha256("<release id>:<device id>")``. At release creation the ordered targets are cut at
the cumulative percentages (ceil, every wave at least one device while devices remain); a
device that becomes a target later (tagged, or added to ``devices``) joins the wave its
hash falls in as a fraction of 2^64 -- the same order, so membership is reproducible.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence


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
