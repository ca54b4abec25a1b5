"""Rollout bodies (docs/rollouts.md): the release's ``rollout`` policy, device ``tags``, the
rollout state with its per-wave counts, and rollout webhooks. The rules live in
:mod:`api.rollouts.policy`; these models are what OpenAPI shows."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict

from api.rollouts.policy import MAX_TAGS, MAX_WAVE_TIMEOUT, MAX_WAVES, TAG_RE
from api.schemas.base import RequestBody, ResponseBody, doc, rule
from api.schemas.execute import HTTP_URL_PATTERN, http_url
from berth.contract import RolloutAction, RolloutState, WaveState

TAG = Annotated[str, doc(pattern=TAG_RE.pattern)]
TAGS_DOC = doc("At most 50 tags of 1-64 characters from A-Z a-z 0-9 _ . : -.", maxItems=MAX_TAGS)


class RolloutPolicy(RequestBody):
    """A staged rollout: absent or null on a release means every target at once."""

    model_config = ConfigDict(extra="forbid")  # an unknown key is a 400 ("Unknown field.")

    waves: Annotated[
        list[Annotated[int, doc(minimum=1, maximum=100)]],
        doc(
            "Cumulative percentages of the release's targets, increasing, the last one 100.",
            minItems=1,
            maxItems=MAX_WAVES,
        ),
    ]
    advance_at: Annotated[
        int, doc("% of the current wave succeeded that starts the next.", minimum=1, maximum=100)
    ] = 100
    halt_at: Annotated[
        int,
        doc(
            "Halt when failed + timed out exceed this % of the wave's finished devices.",
            minimum=0,
            maximum=100,
        ),
    ] = 0
    halt_min_finished: Annotated[
        int, doc("... once at least this many have finished.", minimum=1, maximum=1_000_000)
    ] = 1
    wave_timeout: Annotated[
        int,
        doc(
            "Seconds after its wave started after which a silent device counts as timed out.",
            minimum=1,
            maximum=MAX_WAVE_TIMEOUT,
        ),
    ] = 3600


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
