"""Docker on the device: container helpers and Berth's release engine.

Thin Salt wrappers: each function parses its arguments, calls one function of
:mod:`berth.release.functions` (or :mod:`berth.release.commands`) and shapes Salt's answer
(a known failure is a ``CommandExecutionError`` with its message, no traceback). The
engine is the minion option ``docker.url``, else ``$DOCKER_HOST``, else the default
socket. Registry credentials come only from pillar ``docker:registries``.

CLI examples::

    salt-call docker.logs curveball tail=50
    salt-call docker.ps
    salt-call docker.release_plan
    salt-call docker.release_apply
    salt-call docker.release_status
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

if TYPE_CHECKING:  # injected by Salt's loader when it loads this module
    __opts__: dict[str, Any]
    __salt__: dict[str, Callable[..., Any]]

try:
    from berth.contract import LoginOutcome
    from berth.release import commands, functions

    HAS_BERTH = True
except ImportError as _exc:  # docker SDK or berth not installed
    HAS_BERTH = False
    _IMPORT_ERROR = str(_exc)

log = logging.getLogger(__name__)

__virtualname__ = "docker"

F = TypeVar("F", bound=Callable[..., Any])


def __virtual__() -> str | tuple[bool, str]:
    if not HAS_BERTH:
        return False, f"berth docker module: cannot import berth / docker SDK: {_IMPORT_ERROR}"
    return __virtualname__


def _fail(message: str) -> NoReturn:
    from salt.exceptions import CommandExecutionError

    raise CommandExecutionError(message)


def _clear_errors(func: F) -> F:
    """Known failures become a CommandExecutionError with a clear message (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            message = functions.known_error(__opts__, exc)
            if message is None:
                raise
            _fail(message)

    return wrapper  # type: ignore[return-value]


def _registries() -> dict[Any, Any]:
    return functions.registries(__salt__)


@_clear_errors
def logs(name: Any, tail: Any = 100, since: Any = None, timestamps: bool = False) -> str:
    """
    Output of a container: NAME is a container name or the short name of a
    container of the current release (``curveball`` -> ``deployment-curveball-7``).

    tail
        number of lines from the end, or ``all``
    since
        UNIX timestamp or datetime; only lines after it
    timestamps
        prefix lines with their timestamp

    CLI Example: ``salt '*' docker.logs curveball tail=20``
    """
    return functions.logs(__opts__, name, tail=tail, since=since, timestamps=timestamps)


@_clear_errors
def ps(
    all: bool = False,
) -> list[dict[str, Any]]:  # `all` shadows the builtin: it is the CLI word (docker.ps all=True)
    """
    Containers on the engine (running only unless ``all=True``): name, state, status, image, and
    the Berth release labels.

    CLI Example: ``salt '*' docker.ps all=True``
    """
    return functions.containers(__opts__, all=all)


@_clear_errors
def login(registry: Any) -> dict[str, str]:
    """
    Log in to one registry of pillar ``docker:registries``, given by id or url.

    CLI Example: ``salt '*' docker.login 1``
    """
    result = commands.login_registries(__opts__, _registries(), only=registry)
    failed = {k: v for k, v in result.items() if not LoginOutcome.succeeded(v)}
    if failed:
        _fail("; ".join(failed.values()))
    return result


@_clear_errors
def registries() -> dict[str, str]:
    """
    Log in to every registry in pillar ``docker:registries``, skipping the ones already
    logged in with the same credentials. Returns ``{registry: outcome}``.

    CLI Example: ``salt '*' docker.registries``
    """
    return commands.login_registries(__opts__, _registries())


@_clear_errors
def pull(image: Any, registry: Any = None) -> dict[str, Any]:
    """
    Pull IMAGE (``name:tag``); with ``registry`` (a pillar registry id) as
    ``<registry url>/name:tag`` using that registry's credentials.

    CLI Example: ``salt '*' docker.pull curveball:base registry=1``
    """
    return functions.pull_image(__opts__, _registries(), image, registry)


@_clear_errors
def release_plan(release: Any = None, registries: Any = None) -> list[Any]:
    """
    The steps that would bring the engine to the release (default: pillar
    ``docker:release``); an empty list when it is applied and running. Changes nothing.

    CLI Example: ``salt '*' docker.release_plan``
    """
    return functions.plan(__opts__, __salt__, release, registries)


@_clear_errors
def release_apply(
    release: Any = None,
    registries: Any = None,
    settle_seconds: Any = None,
    health_timeout: Any = None,
    fire_event: bool = True,
    ignore_locks: Any = None,
) -> dict[str, Any]:
    """
    Apply the release (default: pillar ``docker:release``) with the flow and
    rollback of docs/release.md. Returns ``{"outcome": "succeeded"|"failed"|"unchanged", "error", "changes",
    "containers", ...}``. After a real apply (not a no-op), and for an earlier interrupted
    apply this one finished or rolled back, the result event ``berth/release/result`` is
    fired; events the minion could not hand over are kept and sent with the next event
    or by ``release_recover`` at minion start (a no-op apply stays a quick no-op).

    While a container it would stop holds its update lock (``berth.release.locks``) nothing
    is changed and the outcome is ``deferred`` (reported once per release and holders), unless
    ``ignore_locks`` -- default: pillar ``docker:update_lock_override``, the operator's
    one-time override (``POST /devices/{id}/override-lock/``).

    CLI Example: ``salt '*' docker.release_apply``
    """
    return functions.apply(
        __opts__,
        __salt__,
        release,
        registries,
        settle_seconds=settle_seconds,
        health_timeout=health_timeout,
        fire_event=fire_event,
        ignore_locks=ignore_locks,
    )


def release_report_failed(error: Any, send: bool = True) -> dict[str, Any]:
    """
    Report the pending release (pillar ``docker:release``, fresh from the master, else the
    minion's in-memory copy, else the release last pre-pulled) ``failed`` with ``error``,
    through the usual result event, e.g. when the sleep hook could not apply it before its
    timeout (``berth/sleephook.py``). Nothing is reported when there is no release or this
    device already runs it: a failure report never overwrites a success.

    ``send=False`` only queues the event in the device's result queue (sent by the next flush
    once the master acknowledges: pre-pull schedule, next apply, minion start): what the sleep
    hook's ``salt-call`` fallback runs with ``--local`` when the master is away (``--local``
    has no master to send to).

    CLI Example: ``salt '*' docker.release_report_failed "minion busy"``,
    ``salt-call --local docker.release_report_failed "master away" send=False``
    """
    return functions.report_failed(__opts__, __salt__, error, send=send)


@_clear_errors
def release_pull(release: Any = None, registries: Any = None) -> dict[str, Any]:
    """
    Log in and pull the images of the release (default: pillar ``docker:release``)
    without stopping or starting anything, so the apply at the next idle moment is quick.

    CLI Example: ``salt '*' docker.release_pull``
    """
    return functions.pull(__opts__, __salt__, release, registries)


@_clear_errors
def release_recover() -> str:
    """
    Finish or roll back an apply that was interrupted (power loss, killed minion, engine
    restart), fire its result event, and send result events queued earlier. Run at minion
    start; ``release_apply`` also does it first. While the rollback cannot be completed
    (e.g. the engine is down) the journal stays and the answer says "rollback incomplete".

    CLI Example: ``salt '*' docker.release_recover``
    """
    return functions.recover(__opts__, __salt__)


@_clear_errors
def release_status() -> dict[str, Any]:
    """
    The applied release (id, version, version_hash, applied_at), its state
    (``none``, ``running``, ``degraded`` or ``interrupted``) and the release containers.

    CLI Example: ``salt '*' docker.release_status``
    """
    return commands.status(__opts__)


@_clear_errors
def release_report() -> dict[str, Any] | None:
    """
    The result the applied release implies (``running`` -> succeeded, ``degraded`` -> failed),
    signed with the device's report key, or None when there is nothing to report (no release,
    an apply in progress). What ``salt-run berth.resync`` forwards to the API.

    CLI Example: ``salt '*' docker.release_report``
    """
    return functions.report(__opts__, __salt__)
