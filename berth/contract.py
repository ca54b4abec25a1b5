"""The words the parts of Berth exchange: the one place each of them is spelled.

Imported by the API (``api/``), the master-side code (``berth/master/``), the device's
release engine (``berth/release/``) and the Salt loader modules. It depends on the
standard library only, so a device can import it without the API's dependencies.

Every member is a ``StrEnum``: it compares equal to, serialises as and is stored as
its plain string, so databases, events and JSON bodies carry the same bytes as before.
``tests/unit/test_contract.py`` fails when a deployment state or an event tag is
spelled as a string literal anywhere else in the product code.

To add a word: add the member here, then follow docs/architecture.md "Where to change what".
"""

from __future__ import annotations

from enum import StrEnum


class DeploymentState(StrEnum):
    """``deployments.status``: where one release stands on one device."""

    QUEUED = "queued"
    APPLYING = "applying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: an update lock held by a container of the running release kept the device from
    #: applying (``error`` names the holder); not a failure: it tries again at the next sleep
    DEFERRED = "deferred"
    SUPERSEDED = "superseded"
    #: the rollout of this release was reverted; the device has not reported on its revert yet
    REVERTING = "reverting"
    #: the device went back to the release it ran before (it reported success on it)
    REVERTED = "reverted"
    #: the device's revert failed (or it had no earlier release to go back to)
    REVERT_FAILED = "revert_failed"


class DerivedDeploymentState(StrEnum):
    """States the deployments list derives for a device that has not reported (never stored)."""

    #: its rollout wave has not started
    WAITING = "waiting"
    #: its wave is the current one and ``wave_timeout`` has passed
    TIMED_OUT = "timed_out"
    #: the rollout halted or was aborted/reverted before the device applied the release
    CANCELLED = "cancelled"
    #: the account's current release policy refuses the release: it is served to no device
    #: (``error`` says why); the device keeps its previous release
    REFUSED_BY_POLICY = "refused_by_policy"


class DeviceOutcome(StrEnum):
    """A device at a glance (the console's fleet page, ``api.deployments.fleet``): its newest
    stored deployment's state, folded."""

    #: ``succeeded`` or ``reverted`` (it went back to its earlier release)
    SUCCEEDED = "succeeded"
    #: ``failed`` or ``revert_failed``
    FAILED = "failed"
    #: any other stored state: the device has work in hand or waits to report
    PENDING = "pending"
    #: no stored deployment: the device never reported on a release
    NEVER_REPORTED = "never_reported"


#: A deployment the device still has to act on (or is acting on).
ACTIVE_DEPLOYMENT_STATES = (
    DeploymentState.QUEUED,
    DeploymentState.APPLYING,
    DeploymentState.DEFERRED,
)

#: Reports in one ``POST /master/deployments/report/`` list: the API's cap (``api.limits``) and the
#: most the master's ``berth.flush`` sends at once (``berth.master.forward``).
MAX_REPORT_BATCH = 1000

#: A forwarded command return (``POST /master/execute/returns/``, docs/scale.md "The path up"):
#: its ``response`` as JSON text is at most this many characters. The lower master's
#: ``berth.forward_return`` replaces a larger ``return`` by a note saying so.
MAX_FORWARDED_RETURN_CHARS = 1_000_000


class RolloutState(StrEnum):
    """Where a staged rollout of one release stands (docs/rollouts.md)."""

    RUNNING = "running"
    PAUSED = "paused"
    HALTED = "halted"
    COMPLETED = "completed"
    ABORTED = "aborted"
    REVERTING = "reverting"
    REVERTED = "reverted"


class WaveState(StrEnum):
    """``state`` of one wave in ``GET .../rollout/``."""

    WAITING = "waiting"
    RUNNING = "running"
    PAUSED = "paused"
    HALTED = "halted"
    ABORTED = "aborted"
    DONE = "done"
    CANCELLED = "cancelled"
    REVERTED = "reverted"


class RolloutAction(StrEnum):
    """Operator actions: ``POST .../rollout/<action>/``."""

    PAUSE = "pause"
    RESUME = "resume"
    ABORT = "abort"
    REVERT = "revert"


class RolloutEvent(StrEnum):
    """``event`` of a rollout webhook body."""

    WAVE_STARTED = "rollout.wave_started"
    HALTED = "rollout.halted"
    COMPLETED = "rollout.completed"
    ABORTED = "rollout.aborted"
    REVERTED = "rollout.reverted"


class ReleaseOutcome(StrEnum):
    """``outcome`` of an apply, as the device reports it (event ``berth/release/result``)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: ``docker.release_apply`` only: the release was already applied and running.
    UNCHANGED = "unchanged"
    #: nothing was changed: a container of the running release holds its update lock
    #: (``berth.release.locks``); ``error`` names the holder
    DEFERRED = "deferred"


class ReportOutcome(StrEnum):
    """``outcome`` accepted by ``POST /master/deployments/report/``."""

    APPLYING = "applying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEFERRED = "deferred"


class AppliedReleaseState(StrEnum):
    """``state`` of ``docker.release_status``: the release a device last applied, as it is now."""

    #: no release applied yet
    NONE = "none"
    #: an apply is in progress, or died and will be recovered
    INTERRUPTED = "interrupted"
    RUNNING = "running"
    #: a container of the applied release is not running
    DEGRADED = "degraded"


class JournalPhase(StrEnum):
    """``phase`` of the device's release journal (``docker.release_status`` ``interrupted.phase``)."""

    #: forward steps running; interrupted -> rolled back
    APPLYING = "applying"
    #: undoing a failed apply; the journal stays until every undo step succeeded
    ROLLING_BACK = "rolling_back"
    #: verified; interrupted -> the cleanup is finished
    COMMITTING = "committing"


class ExecuteJobState(StrEnum):
    """``execute_jobs.state``: the remote-command job's life (``/execute/`` API)."""

    PENDING = "PENDING"
    COMMAND_EXECUTED = "COMMAND_EXECUTED"
    TIMEOUT = "TIMEOUT"


class LoginOutcome(StrEnum):
    """Per registry, what ``docker.registries`` / ``docker.login`` did; any other value is the error."""

    LOGGED_IN = "logged in"
    ALREADY_LOGGED_IN = "already logged in"

    @classmethod
    def succeeded(cls, value: object) -> bool:
        return value in (cls.LOGGED_IN, cls.ALREADY_LOGGED_IN)


class EventTag(StrEnum):
    """Salt event tags Berth fires or reacts to."""

    #: device -> master after every real apply that did something or failed
    RELEASE_RESULT = "berth/release/result"
    #: device-local: one logbook sample (or ``{"records": [...]}``) to ship
    LOGBOOK_RECORD = "berth/logbook/record"


class Label(StrEnum):
    """Docker labels Berth puts on the containers it creates."""

    PROJECT = "io.berth.project"
    RELEASE = "io.berth.release"
    VERSION_HASH = "io.berth.version_hash"
    NAME = "io.berth.name"


#: Keys starting with this are Berth's (``Label``); a release may not set them.
RESERVED_LABEL_PREFIX = "io.berth."


def fully_qualified_name(name: str, release_id: int | str) -> str:
    """The container name a release container runs as on the device."""
    return f"deployment-{name}-{release_id}"
