"""
States for Berth releases.

.. code-block:: yaml

    berth-release:
      docker_release.applied: []        # the release in pillar docker:release

    berth-registries:
      docker_release.registries_logged_in: []
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from berth.contract import LoginOutcome, ReleaseOutcome
from berth.release import pillar as release_pillar
from berth.release import steps as release_steps

if TYPE_CHECKING:  # injected by Salt's loader when it loads this module
    __opts__: dict[str, Any]
    __salt__: dict[str, Callable[..., Any]]

log = logging.getLogger(__name__)

__virtualname__ = "docker_release"


def __virtual__() -> str | tuple[bool, str]:
    if "docker.release_apply" not in __salt__:
        return False, "docker_release: the berth docker execution module is not available"
    return __virtualname__


def _ret(name: str) -> dict[str, Any]:
    return {"name": name, "result": False, "changes": {}, "comment": ""}


def applied(
    name: str,
    release: Any = None,
    registries: Any = None,
    settle_seconds: Any = None,
    health_timeout: Any = None,
) -> dict[str, Any]:
    """
    Ensure the release is applied and all its containers run.

    release / registries
        default: pillar ``docker:release`` / ``docker:registries``. The state refuses
        to run when pillar ``docker:error`` is set (the API could not be asked).
    settle_seconds / health_timeout
        override the minion options ``docker.release_settle_seconds`` / ``docker.release_health_timeout``.
    """
    ret = _ret(name)
    try:
        release, registries = release_pillar.release_and_registries(__salt__, release, registries)
    except release_pillar.PillarError as exc:
        ret["comment"] = f"Refusing to apply: the release pillar could not be built: {exc}"
        return ret
    if not release:
        ret["result"] = True
        ret["comment"] = "No release for this device"
        return ret

    release_id = release.get("id") if isinstance(release, dict) else None
    try:
        if __opts__.get("test"):
            steps = __salt__["docker.release_plan"](release=release, registries=registries)
            if not steps:
                ret["result"] = True
                ret["comment"] = f"Release {release_id} is applied and running"
                return ret
            ret["result"] = None
            ret["changes"] = release_steps.dry_run_changes(steps)
            ret["comment"] = f"Release {release_id} would be applied in {len(steps)} steps"
            return ret
        result = __salt__["docker.release_apply"](
            release=release,
            registries=registries,
            settle_seconds=settle_seconds,
            health_timeout=health_timeout,
        )
    except Exception as exc:  # noqa: BLE001 - any error is a failed state with its message
        # (CommandExecutionError carries a clear one), never a traceback
        ret["comment"] = str(exc)
        return ret

    ret["changes"] = {k: v for k, v in (result.get("changes") or {}).items() if v}
    ret["result"], ret["comment"] = _outcome(release_id, result)
    return ret


def _outcome(release_id: Any, result: dict[str, Any]) -> tuple[bool, str]:
    """The state's result and comment for ``docker.release_apply``'s answer."""
    outcome = result["outcome"]
    recovered = f" ({result['recovered']})" if result.get("recovered") else ""
    if outcome == ReleaseOutcome.UNCHANGED:
        return True, f"Release {release_id} is already applied and running{recovered}"
    if outcome == ReleaseOutcome.SUCCEEDED:
        comment = f"Release {release_id} ({result.get('version_hash')}) applied{recovered}"
        if result.get("warnings"):
            comment += "; " + "; ".join(result["warnings"])
        return True, comment
    if outcome == ReleaseOutcome.DEFERRED:
        # not a failure: nothing was changed, the device tries again at its next apply
        return True, f"Release {release_id} {result.get('error')}{recovered}"
    if result.get("rollback_incomplete"):
        after = "rollback incomplete, the next run retries it"
    elif result.get("rolled_back"):
        after = "it was rolled back"
    else:
        after = "the running release was left untouched"
    return False, f"Release {release_id} failed, {after}: {result.get('error')}{recovered}"


def registries_logged_in(name: str, registries: Any = None) -> dict[str, Any]:
    """Log in to every registry in pillar ``docker:registries`` (skipping those already logged in)."""
    ret = _ret(name)
    if __opts__.get("test"):
        ret["result"] = None
        ret["comment"] = "Registries would be logged in"
        return ret
    try:
        if registries is None:
            result = __salt__["docker.registries"]()
        else:
            from berth.release import commands  # needs the Docker SDK, unlike this module

            result = commands.login_registries(__opts__, registries)
    except Exception as exc:  # noqa: BLE001 - any error is a failed state, never a traceback
        ret["comment"] = str(exc)
        return ret
    failed = {k: v for k, v in result.items() if not LoginOutcome.succeeded(v)}
    new = [k for k, v in result.items() if v == LoginOutcome.LOGGED_IN]
    if new:
        ret["changes"] = {"logged_in": new}
    ret["result"] = not failed
    ret["comment"] = (
        "; ".join(failed.values())
        if failed
        else (
            f"Logged in to {len(result)} registr{'y' if len(result) == 1 else 'ies'}"
            if result
            else "No registries in pillar"
        )
    )
    return ret
