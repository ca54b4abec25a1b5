"""Docker on the device: container helpers and Berth's release engine.

Thin Salt wrappers around :mod:`berth.release` and :mod:`berth.dockerutil`. The
engine is the minion option ``docker.url``, else ``$DOCKER_HOST``, else the
default socket. Registry credentials come only from pillar ``docker:registries``.

CLI examples::

    salt-call docker.logs curveball tail=50
    salt-call docker.ps
    salt-call docker.release_plan
    salt-call docker.release_apply
    salt-call docker.release_status
"""

import functools
import logging
import pathlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # injected by Salt's loader when it loads this module
    __opts__: dict[str, Any]
    __salt__: dict[str, Callable[..., Any]]

try:
    import docker.errors
    import requests.exceptions

    from berth import dockerutil, results
    from berth.contract import RESERVED_LABEL_PREFIX, EventTag, LoginOutcome, ReleaseOutcome
    from berth.release import commands
    from berth.release import pillar as release_pillar
    from berth.release import policy as release_policy
    from berth.release import volumes as release_volumes
    from berth.release.apply import StepFailed
    from berth.release.images import ReleaseError
    from berth.release.result import ApplyResult
    from berth.release.statefiles import ReleaseBusy, read_json, write_json

    HAS_BERTH = True
except ImportError as _exc:  # docker SDK or berth not installed
    HAS_BERTH = False
    _IMPORT_ERROR = str(_exc)

log = logging.getLogger(__name__)

__virtualname__ = "docker"

RESULT_EVENT_TAG = EventTag.RELEASE_RESULT
# The release last pre-pulled ({id, version_hash}): what a failure report names when the
# master is away (the local API engine's in-memory pillar is the one it started with).
PREPULLED = "prepulled-release.json"
# The deferral last reported ({release_id, holders}): not reported again while it lasts.
DEFERRED = "deferred-release.json"


def __virtual__():
    if not HAS_BERTH:
        return False, f"berth docker module: cannot import berth / docker SDK: {_IMPORT_ERROR}"
    return __virtualname__


def _pillar(key, default=None):
    return release_pillar.get(__salt__, key, default)


def _fail(message) -> None:
    from salt.exceptions import CommandExecutionError

    raise CommandExecutionError(message)


def _clear_errors(func):
    """Known failures become a CommandExecutionError with a clear message (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (
            ReleaseError,
            ReleaseBusy,
            StepFailed,
            dockerutil.DockerUnavailable,
            dockerutil.PullError,
            dockerutil.RegistryLoginError,
        ) as exc:
            _fail(str(exc))
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            _fail(
                f"Docker engine error ({dockerutil.engine_url(__opts__)}): {dockerutil.api_message(exc)}"
            )

    return wrapper


def _pillar_release(release, registries):
    try:
        return release_pillar.release_and_registries(__salt__, release, registries)
    except release_pillar.PillarError as exc:
        _fail(f"pillar docker:error is set, refusing to act on it: {exc}")


def _target(release, registries):
    try:
        target = commands.target(release, registries)
    except ReleaseError as exc:
        raise ReleaseError(f"invalid release: {exc}") from None
    release_policy.enforce(target, __opts__)  # docs/security.md: never a system path
    # nor a volume of another app, of the salt-minion or one that binds a host path
    release_volumes.enforce(_client, target, __opts__)
    return target


def _executor(**overrides):
    return commands.executor(__opts__, **overrides)


def _client():
    return commands.client(__opts__)


@_clear_errors
def logs(name, tail=100, since=None, timestamps=False):
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
    cli = _client()
    full = commands.resolve_container(__opts__, cli, str(name))
    if isinstance(tail, str) and tail != "all":
        try:
            tail = int(tail)
        except ValueError:
            _fail(f"tail must be a number of lines or 'all', got {tail!r}")
    if isinstance(since, str) and since.isdigit():
        since = int(since)
    try:
        return dockerutil.logs(cli, full, tail=tail, since=since, timestamps=timestamps)
    except docker.errors.APIError as exc:
        _fail(f"logs of {full}: {dockerutil.api_message(exc)}")


@_clear_errors
def ps(all=False):  # `all` shadows the builtin: it is the CLI word (docker.ps all=True)
    """
    Containers on the engine (running only unless ``all=True``): name, state, status, image, and
    the Berth release labels.

    CLI Example: ``salt '*' docker.ps all=True``
    """
    cli = _client()
    out = []
    for c in dockerutil.list_containers(cli):
        if not all and c["state"] != "running":
            continue
        out.append(
            {
                "name": c["name"],
                "id": c["id"][:12],
                "state": c["state"],
                "status": c["status"],
                "image": c["image"],
                "labels": {
                    k: v for k, v in c["labels"].items() if k.startswith(RESERVED_LABEL_PREFIX)
                },
            }
        )
    return out


@_clear_errors
def login(registry):
    """
    Log in to one registry of pillar ``docker:registries``, given by id or url.

    CLI Example: ``salt '*' docker.login 1``
    """
    registries = _pillar("docker:registries", {}) or {}
    result = commands.login_registries(__opts__, registries, only=registry)
    failed = {k: v for k, v in result.items() if not LoginOutcome.succeeded(v)}
    if failed:
        _fail("; ".join(failed.values()))
    return result


@_clear_errors
def registries():
    """
    Log in to every registry in pillar ``docker:registries``, skipping the ones already
    logged in with the same credentials. Returns ``{registry: outcome}``.

    CLI Example: ``salt '*' docker.registries``
    """
    regs = _pillar("docker:registries", {}) or {}
    return commands.login_registries(__opts__, regs)


@_clear_errors
def pull(image, registry=None):
    """
    Pull IMAGE (``name:tag``); with ``registry`` (a pillar registry id) as
    ``<registry url>/name:tag`` using that registry's credentials.

    CLI Example: ``salt '*' docker.pull curveball:base registry=1``
    """
    from berth.release.images import find_registry, ref

    name, tag = dockerutil.split_ref(str(image))
    auth = None
    entry = None
    if registry is not None:
        entry = find_registry(_pillar("docker:registries", {}) or {}, registry)
        auth = {"username": entry.get("username"), "password": entry.get("password")}
    full = ref(name, tag, entry)
    image_id = dockerutil.pull(_client(), full, auth)
    return {"image": full, "id": image_id}


@_clear_errors
def release_plan(release=None, registries=None):
    """
    The steps that would bring the engine to the release (default: pillar
    ``docker:release``); an empty list when it is applied and running. Changes nothing.

    CLI Example: ``salt '*' docker.release_plan``
    """
    release, registries = _pillar_release(release, registries)
    target = _target(release, registries)
    if target is None:
        return []
    return [step.to_dict() for step in _executor().plan(target)]


@_clear_errors
def release_apply(
    release=None,
    registries=None,
    settle_seconds=None,
    health_timeout=None,
    fire_event=True,
    ignore_locks=None,
):
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
    release, registries = _pillar_release(release, registries)
    if ignore_locks is None:
        ignore_locks = _pillar("docker:update_lock_override", False) is True
    if not release:
        return {
            "outcome": ReleaseOutcome.UNCHANGED,
            "error": None,
            "changes": {},
            "comment": "no release for this device",
        }
    try:
        target = _target(release, registries)
        ex = _executor(settle_seconds=settle_seconds, health_timeout=health_timeout)
        result = ex.run(target, ignore_locks=bool(ignore_locks))
    except ReleaseBusy:
        raise  # the apply that holds the lock reports
    except Exception as exc:
        # the operator must hear that this device could not apply the release, whatever broke
        if fire_event and isinstance(release, dict) and release.get("id") is not None:
            failed = ApplyResult.failed(
                release.get("id"), release.get("version_hash"), _error_text(exc)
            )
            _fire_result(failed.event())
        raise
    if fire_event:
        recovered = ex.recovery
        same = recovered and str(recovered.release_id) == str(target.release_id)
        if recovered and not same:
            _fire_result(recovered.event())
        if result.outcome != ReleaseOutcome.UNCHANGED and _news(result):
            _fire_result(result.event())
        elif same:
            # the interrupted apply of this very release ended with it running: say so
            _fire_result(result.event(ReleaseOutcome.SUCCEEDED))
    return result.as_dict()


def _news(result):
    """Whether ``result`` is worth a report: a deferral is reported once per release and
    holders (the sleep hook asks again and again while it waits for the lock)."""
    path = _state_path(DEFERRED)
    if result.outcome != ReleaseOutcome.DEFERRED:
        path.unlink(missing_ok=True)
        return True
    seen = {"release_id": str(result.release_id), "holders": result.holders}
    if read_json(path) == seen:
        return False
    write_json(path, seen)
    return True


def _error_text(exc):
    if isinstance(
        exc,
        (
            ReleaseError,
            dockerutil.DockerUnavailable,
            dockerutil.PullError,
            dockerutil.RegistryLoginError,
        ),
    ):
        return str(exc)
    if isinstance(exc, (docker.errors.DockerException, requests.exceptions.RequestException)):
        return f"Docker engine error ({dockerutil.engine_url(__opts__)}): {dockerutil.api_message(exc)}"
    return f"{type(exc).__name__}: {exc}"


def release_report_failed(error, send=True):
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
    release = _pillar("docker:release", None)  # the minion's copy when the master is away
    if not isinstance(release, dict) or release.get("id") is None:
        release = read_json(_state_path(PREPULLED))
    if _masterless() or __salt__["minionutil.master_reachable"]():
        try:  # the release the master (or the local pillar) would give now
            fresh = (__salt__["pillar.items"](unmask=True).get("docker") or {}).get("release")
        except Exception:  # noqa: BLE001 - master unreachable in any way: use the minion's copy
            pass
        else:
            # salt-call --local of a master's minion: its local pillar has no release
            if not (_masterless() and not isinstance(fresh, dict)):
                release = fresh
    if not isinstance(release, dict) or release.get("id") is None:
        return {"reported": False, "comment": "no release for this device"}
    applied = _executor().applied() or {}
    if str(applied.get("release_id")) == str(release["id"]):
        return {"reported": False, "comment": f"release {release['id']} is already applied"}
    failed = ApplyResult.failed(release["id"], release.get("version_hash"), str(error))
    queued = _fire_result(failed.event(), send=send)
    if not send and not queued:
        return {"reported": False, "comment": "cannot queue the result event (see the log)"}
    answer = {"reported": True, "release_id": release["id"], "error": str(error)}
    return answer if send else {**answer, "sent": False}  # in the result queue


def _fire_result(event, send=True):
    """Queue the result event on disk, then (``send``) send everything queued (oldest first).
    Returns whether the event was queued."""
    queued = True
    try:
        commands.queue_result(__opts__, event)
    except OSError as exc:
        queued = False
        log.warning(
            "berth release %s: cannot queue the result event: %s", event.get("release_id"), exc
        )
    if send:
        _flush_results()
    return queued


def _masterless():
    return __opts__.get("file_client") == "local" or not __opts__.get("master_uri")


def _flush_results():
    """Send the queued result events; an event leaves the queue only when the master's request
    channel took it (``event.fire_master`` with a preload is a synchronous request, where
    ``event.send`` reports success even when the minion drops the event). With the master
    away nothing is sent: the queue waits for the next flush (the pre-pull schedule, the
    next apply, minion start)."""
    masterless = _masterless()
    if not masterless and not __salt__["minionutil.master_reachable"]():
        log.info("berth release: master unreachable, queued result events kept for later")
        return 0

    key = _report_key()
    if key is None:
        log.warning(
            "berth release: no report key (pillar berth:report_key) yet: results are sent "
            "unsigned and the API refuses them"
        )

    def fire(data):
        if key is not None:
            data = results.signed(key, __opts__["id"], data)
        if masterless:
            return __salt__["event.send"](RESULT_EVENT_TAG, data)
        return __salt__["event.fire_master"](
            data, RESULT_EVENT_TAG, preload={"berth": "acknowledged"}
        )

    def send(data):
        try:
            sent = fire(data)
        except Exception as exc:  # noqa: BLE001 - never let reporting break the apply
            log.warning(
                "berth release %s: cannot fire %s: %s",
                data.get("release_id"),
                RESULT_EVENT_TAG,
                exc,
            )
            return False
        if not sent:
            log.warning(
                "berth release %s: result event %s was not sent, kept for the next run",
                data.get("release_id"),
                RESULT_EVENT_TAG,
            )
        return bool(sent)

    try:
        return commands.flush_results(__opts__, send)
    except OSError as exc:
        log.warning("berth release: cannot send queued result events: %s", exc)
        return 0


@_clear_errors
def release_pull(release=None, registries=None):
    """
    Log in and pull the images of the release (default: pillar ``docker:release``)
    without stopping or starting anything, so the apply at the next idle moment is quick.

    CLI Example: ``salt '*' docker.release_pull``
    """
    _flush_results()  # the awake schedule also delivers results queued while the master was away
    release, registries = _pillar_release(release, registries)
    target = _target(release, registries)
    if target is None:
        return {}
    pulled = _executor().pull(target)
    try:
        write_json(
            _state_path(PREPULLED),
            {"id": release.get("id"), "version_hash": release.get("version_hash")},
        )
    except OSError as exc:
        log.warning("berth release %s: cannot record the pre-pull: %s", release.get("id"), exc)
    return pulled


def _report_key():
    """The device's report key: pillar ``berth:report_key`` (kept on the device for the paths
    without the master), else the kept one; None when the device never had one."""
    key = _pillar("berth:report_key", None)
    if results.valid_key(key):
        try:
            commands.keep_report_key(__opts__, key)
        except OSError as exc:
            log.warning("berth release: cannot keep the report key: %s", exc)
        return key
    return commands.kept_report_key(__opts__)


def _state_path(name):
    return pathlib.Path(commands.state_dir(__opts__)) / name


@_clear_errors
def release_recover():
    """
    Finish or roll back an apply that was interrupted (power loss, killed minion, engine
    restart), fire its result event, and send result events queued earlier. Run at minion
    start; ``release_apply`` also does it first. While the rollback cannot be completed
    (e.g. the engine is down) the journal stays and the answer says "rollback incomplete".

    CLI Example: ``salt '*' docker.release_recover``
    """
    _flush_results()
    ex = _executor()
    done = ex.recover()
    if ex.recovery:
        _fire_result(ex.recovery.event())
    return done or "nothing to recover"


@_clear_errors
def release_status():
    """
    The applied release (id, version, version_hash, applied_at), its state
    (``none``, ``running``, ``degraded`` or ``interrupted``) and the release containers.

    CLI Example: ``salt '*' docker.release_status``
    """
    return commands.status(__opts__)


@_clear_errors
def release_report():
    """
    The result the applied release implies (``running`` -> succeeded, ``degraded`` -> failed),
    signed with the device's report key, or None when there is nothing to report (no release,
    an apply in progress). What ``salt-run berth.resync`` forwards to the API.

    CLI Example: ``salt '*' docker.release_report``
    """
    result = results.status_to_result(commands.status(__opts__))
    if result is None:
        return None
    key = _report_key()
    if key is None:
        log.warning("berth release: no report key (pillar berth:report_key): report unsigned")
        return result
    return results.signed(key, __opts__["id"], result)
