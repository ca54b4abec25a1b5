"""Rollout bodies (docs/rollouts.md): the release's ``rollout`` policy, device ``tags``, the
rollout state with its per-wave counts, and rollout webhooks. The rules (checks with DRF's
messages) live in :mod:`api.rollouts.policy`; :func:`rollout_policy` validates a policy with
:class:`RolloutPolicy`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict

from api.rollouts import policy
from api.rollouts.policy import MAX_TAGS, MAX_WAVE_TIMEOUT, MAX_WAVES, TAG_RE, strict_int
from api.schemas.base import RequestBody, ResponseBody, doc, parse, rule
from api.schemas.execute import HTTP_URL_PATTERN, http_url
from api.validation import FieldError
from berth.contract import RolloutAction, RolloutState, WaveState

TAG = Annotated[str, doc(pattern=TAG_RE.pattern)]
TAGS_DOC = doc("At most 50 tags of 1-64 characters from A-Z a-z 0-9 _ . : -.", maxItems=MAX_TAGS)


class RolloutPolicy(RequestBody):
    """A staged rollout: absent or null on a release means every target at once."""

    model_config = ConfigDict(extra="forbid")  # an unknown key is a 400 ("Unknown field.")

    waves: Annotated[
        list[Annotated[int, doc(minimum=1, maximum=100)]],
        rule(policy.waves),
        doc(
            "Cumulative percentages of the release's targets, increasing, the last one 100.",
            minItems=1,
            maxItems=MAX_WAVES,
        ),
    ]
    advance_at: Annotated[
        int,
        rule(strict_int(1, 100)),
        doc("% of the current wave succeeded that starts the next.", minimum=1, maximum=100),
    ] = 100
    halt_at: Annotated[
        int,
        rule(strict_int(0, 100)),
        doc(
            "Halt when failed + timed out exceed this % of the wave's finished devices.",
            minimum=0,
            maximum=100,
        ),
    ] = 0
    halt_min_finished: Annotated[
        int,
        rule(strict_int(1, 1_000_000)),
        doc("... once at least this many have finished.", minimum=1, maximum=1_000_000),
    ] = 1
    wave_timeout: Annotated[
        int,
        rule(strict_int(1, MAX_WAVE_TIMEOUT)),
        doc(
            "Seconds after its wave started after which a silent device counts as timed out.",
            minimum=1,
            maximum=MAX_WAVE_TIMEOUT,
        ),
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
    at: Annotated[str, doc(format="date-time")]


class Rollout(ResponseBody):
    """``GET .../rollout/`` and the answer of every rollout action."""

    release: int
    state: RolloutState
    wave: Annotated[int, doc("The current wave (1-based).")]
    wave_started_at: Annotated[str, doc(format="date-time")]
    waves: list[WaveCounts]
    halt_reason: str | None
    policy: RolloutPolicy
    revert: RevertCounts | None
    history: list[RolloutActionEntry]


class RolloutWebhookInput(RequestBody):
    url: Annotated[
        str,
        rule(http_url),
        doc(
            "http(s) URL receiving signed rollout events.",
            maxLength=2048,
            pattern=HTTP_URL_PATTERN,
        ),
    ]


class RolloutWebhook(ResponseBody):
    id: Annotated[int, doc(readOnly=True)]
    url: str
    created: Annotated[str, doc(format="date-time", readOnly=True)]
