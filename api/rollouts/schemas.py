"""Rollout bodies (docs/rollouts.md): the release's ``rollout`` policy, device ``tags``, the
rollout state with its per-wave counts, and rollout webhooks. The field rules (checks with
DRF's messages) are here too, used by the device and release bodies; :func:`rollout_policy`
validates a policy with :class:`RolloutPolicy`."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import ConfigDict

from api.bodies import TIMESTAMP, RequestBody, ResponseBody, doc, parse
from api.execute.schemas import http_url
from api.fields import Check, FieldError, checks, list_of, rule
from berth.contract import RolloutAction, RolloutState, WaveState

DEVICE_TAG_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_TAGS = 50
MAX_WAVES = 20
MAX_WAVE_TIMEOUT = 30 * 24 * 3600
MAX_HALT_MIN_FINISHED = 1_000_000


@checks(pattern=DEVICE_TAG_RE.pattern)
def tag(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError("Not a valid string.")
    if not DEVICE_TAG_RE.match(value):
        raise FieldError(
            f'"{value[:80]}" is not a valid tag: 1 to 64 characters from A-Z a-z 0-9 _ . : -.'
        )
    return value


_tag_list = list_of(tag, max_items=MAX_TAGS)


@checks(**_tag_list.schema)
def tags(value: Any) -> list[str]:
    """A list of at most 50 tags; duplicates are dropped, order is kept."""
    return list(dict.fromkeys(_tag_list(value)))


def strict_int(low: int, high: int) -> Check:
    """An integer (``2.0`` too, not ``"2"`` or ``true``) in [low, high]."""

    @checks(minimum=low, maximum=high)
    def check(value: Any) -> int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 2.0: an integer to JSON Schema, as to api.fields.integer
        if isinstance(value, bool) or not isinstance(value, int):
            raise FieldError("A valid integer is required.")
        if not low <= value <= high:
            raise FieldError(f"Ensure this value is between {low} and {high}.")
        return value

    return check


_percent_list = list_of(strict_int(1, 100), max_items=MAX_WAVES)


@checks(minItems=1, **_percent_list.schema)
def wave_list(value: Any) -> list[int]:
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


TAG = Annotated[str, doc(pattern=DEVICE_TAG_RE.pattern)]


class RolloutPolicy(RequestBody):
    """A staged rollout: absent or null on a release means every target at once."""

    model_config = ConfigDict(extra="forbid")  # an unknown key is a 400 ("Unknown field.")

    waves: Annotated[
        list[int],
        rule(wave_list),
        doc("Cumulative percentages of the release's targets, increasing, the last one 100."),
    ]
    advance_at: Annotated[
        int,
        rule(strict_int(1, 100)),
        doc("% of the current wave succeeded that starts the next."),
    ] = 100
    halt_at: Annotated[
        int,
        rule(strict_int(0, 100)),
        doc("Halt when failed + timed out exceed this % of the wave's finished devices."),
    ] = 0
    halt_min_finished: Annotated[
        int,
        rule(strict_int(1, MAX_HALT_MIN_FINISHED)),
        doc("... once at least this many have finished."),
    ] = 1
    wave_timeout: Annotated[
        int,
        rule(strict_int(1, MAX_WAVE_TIMEOUT)),
        doc("Seconds after its wave started after which a silent device counts as timed out."),
    ] = 3600


def rollout_policy(value: Any) -> dict:
    """A release's ``rollout`` -> the policy with its defaults; ``FieldError`` naming every bad
    field (an unknown key: "Unknown field.")."""
    if not isinstance(value, dict):
        raise FieldError(
            {
                "non_field_errors": [
                    f"Invalid data. Expected a dictionary, but got {type(value).__name__}."
                ]
            }
        )
    parsed = parse(RolloutPolicy, value)
    for name in sorted(set(value) - set(RolloutPolicy.model_fields)):
        parsed.errors[str(name)[:64]] = ["Unknown field."]
    if parsed.errors:
        raise FieldError(parsed.errors)
    return parsed.values


class WaveCounts(ResponseBody):
    index: int
    percent: Annotated[int, doc("Cumulative share of the targets.")]
    targets: Annotated[int, doc("This wave's own devices (not cumulative).")]
    succeeded: int
    failed: int
    timed_out: int
    pending: int
    state: WaveState


class RevertCounts(ResponseBody):
    devices: Annotated[int, doc("Devices that applied the release and go back.")]
    reverted: int
    failed: int
    pending: int


class RolloutActionEntry(ResponseBody):
    action: RolloutAction
    state_before: RolloutState
    state_after: RolloutState
    user: int | None
    user_email: str
    at: Annotated[str, TIMESTAMP, doc(format="date-time")]


class Rollout(ResponseBody):
    """``GET .../rollout/`` and the answer of every rollout action."""

    release: int
    state: RolloutState
    wave: Annotated[int, doc("The current wave (1-based).")]
    wave_started_at: Annotated[str, TIMESTAMP, doc(format="date-time")]
    waves: list[WaveCounts]
    halt_reason: str | None
    policy: RolloutPolicy
    revert: RevertCounts | None
    history: list[RolloutActionEntry]


class RolloutWebhookInput(RequestBody):
    url: Annotated[str, rule(http_url), doc("http(s) URL receiving signed rollout events.")]


class RolloutWebhook(ResponseBody):
    id: Annotated[int, doc(readOnly=True)]
    url: str
    created: Annotated[str, TIMESTAMP, doc(format="date-time", readOnly=True)]
