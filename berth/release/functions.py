"""One function per ``docker.release_*`` Salt function: what it does, given the minion ``opts``
and the loader's ``__salt__`` (``salt``). ``_modules/docker.py`` parses the call's arguments,
calls one of these and shapes Salt's answer (:func:`known_error` for a failure).

Result events are chosen and delivered by :mod:`berth.release.delivery`.
"""

from __future__ import annotations

import logging
from typing import Any

import docker.errors
import requests.exceptions

from berth import dockerutil, results
from berth.contract import RESERVED_LABEL_PREFIX, ReleaseOutcome
from berth.release import commands, delivery, images, policy, volumes
from berth.release import pillar as release_pillar
from berth.release.apply import StepFailed
from berth.release.delivery import Opts, Salt
from berth.release.images import ReleaseError
from berth.release.model import Target
from berth.release.result import ApplyResult
from berth.release.statefiles import ReleaseBusy, read_json, write_json

log = logging.getLogger(__name__)

# The release last pre-pulled ({id, version_hash}): what a failure report names when the
# master is away (the local API engine's in-memory pillar is the one it started with).
PREPULLED = "prepulled-release.json"

# failures whose text is the whole story (no traceback, no exception name)
REPORTED_AS_IS = (
    ReleaseError,
    dockerutil.DockerUnavailable,
    dockerutil.PullError,
    dockerutil.RegistryLoginError,
)
ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException)


def known_error(opts: Opts, exc: BaseException) -> str | None:
    """The message of a known failure of a ``docker.*`` function (None: not a known one)."""
    if isinstance(exc, (*REPORTED_AS_IS, ReleaseBusy, StepFailed)):
        return str(exc)
    if isinstance(exc, ENGINE_ERRORS):
        return _engine_error(opts, exc)
    return None


def error_text(opts: Opts, exc: BaseException) -> str:
    """What a ``failed`` report says about an apply that raised ``exc``."""
    if isinstance(exc, REPORTED_AS_IS):
        return str(exc)
    if isinstance(exc, ENGINE_ERRORS):
        return _engine_error(opts, exc)
    return f"{type(exc).__name__}: {exc}"


def _engine_error(opts: Opts, exc: BaseException) -> str:
    return f"Docker engine error ({dockerutil.engine_url(opts)}): {dockerutil.api_message(exc)}"


def registries(salt: Salt) -> dict[Any, Any]:
    """Pillar ``docker:registries`` (``{}`` when there is none)."""
    found: dict[Any, Any] = release_pillar.get(salt, "docker:registries", {}) or {}
    return found


def logs(
    opts: Opts, name: Any, tail: Any = 100, since: Any = None, timestamps: bool = False
) -> str:
    """``docker.logs``: a container's output; ``name`` may be a release container's short name."""
    cli = commands.client(opts)
    full = commands.resolve_container(opts, cli, str(name))
    if isinstance(tail, str) and tail != "all":
        try:
            tail = int(tail)
        except ValueError:
            raise ReleaseError(f"tail must be a number of lines or 'all', got {tail!r}") from None
    if isinstance(since, str) and since.isdigit():
        since = int(since)
    try:
        text: str = dockerutil.logs(cli, full, tail=tail, since=since, timestamps=timestamps)
    except docker.errors.APIError as exc:
        raise ReleaseError(f"logs of {full}: {dockerutil.api_message(exc)}") from None
    return text


def containers(opts: Opts, all: bool = False) -> list[dict[str, Any]]:  # `all`: the CLI word
    """``docker.ps``: the engine's containers (running only unless ``all``) with Berth's labels."""
    return [
        {
            "name": c["name"],
            "id": c["id"][:12],
            "state": c["state"],
            "status": c["status"],
            "image": c["image"],
            "labels": {k: v for k, v in c["labels"].items() if k.startswith(RESERVED_LABEL_PREFIX)},
        }
        for c in dockerutil.list_containers(commands.client(opts))
        if all or c["state"] == "running"
    ]


def pull_image(
    opts: Opts, known: dict[Any, Any], image: Any, registry: Any = None
) -> dict[str, Any]:
    """``docker.pull``: ``image`` (``name:tag``), from pillar registry ``registry`` when given."""
    name, tag = dockerutil.split_ref(str(image))
    auth = None
    entry = None
    if registry is not None:
        entry = images.find_registry(known, registry)
        auth = {"username": entry.get("username"), "password": entry.get("password")}
    full = images.ref(name, tag, entry)
    return {"image": full, "id": dockerutil.pull(commands.client(opts), full, auth)}


def pillar_release(salt: Salt, release: Any, registries: Any) -> tuple[Any, Any]:
    """``(release, registries)``: the ones given, else the pillar's; refused while pillar
    ``docker:error`` is set."""
    try:
        return release_pillar.release_and_registries(salt, release, registries)
    except release_pillar.PillarError as exc:
        raise ReleaseError(f"pillar docker:error is set, refusing to act on it: {exc}") from None


def target(opts: Opts, release: Any, registries: Any) -> Target | None:
    """The release as the device checks it (None: no release): valid, never a system path
    (docs/security.md), nor a volume of another app, of the salt-minion or one that binds a
    host path."""
    try:
        checked: Target | None = commands.target(release, registries)
    except ReleaseError as exc:
        raise ReleaseError(f"invalid release: {exc}") from None
    policy.enforce(checked, opts)
    volumes.enforce(lambda: commands.client(opts), checked, opts)
    return checked


def plan(opts: Opts, salt: Salt, release: Any = None, registries: Any = None) -> list[Any]:
    release, registries = pillar_release(salt, release, registries)
    checked = target(opts, release, registries)
    if checked is None:
        return []
    return [step.to_dict() for step in commands.executor(opts).plan(checked)]


def apply(
    opts: Opts,
    salt: Salt,
    release: Any = None,
    registries: Any = None,
    settle_seconds: Any = None,
    health_timeout: Any = None,
    fire_event: bool = True,
    ignore_locks: Any = None,
) -> dict[str, Any]:
    """``docker.release_apply``: apply the release and report what :func:`delivery.select`
    picks; a failure before the apply could answer is reported ``failed`` and raised."""
    release, registries = pillar_release(salt, release, registries)
    if ignore_locks is None:
        ignore_locks = release_pillar.get(salt, "docker:update_lock_override", False) is True
    if not release:
        return {
            "outcome": ReleaseOutcome.UNCHANGED,
            "error": None,
            "changes": {},
            "comment": "no release for this device",
        }
    try:
        checked = target(opts, release, registries)
        assert checked is not None  # a release was given
        ex = commands.executor(opts, settle_seconds=settle_seconds, health_timeout=health_timeout)
        result = ex.run(checked, ignore_locks=bool(ignore_locks))
    except ReleaseBusy:
        raise  # the apply that holds the lock reports
    except Exception as exc:
        # the operator must hear that this device could not apply the release, whatever broke
        if fire_event and isinstance(release, dict) and release.get("id") is not None:
            failed = ApplyResult.failed(
                release.get("id"), release.get("version_hash"), error_text(opts, exc)
            )
            delivery.fire(opts, salt, failed.event())
        raise
    if fire_event:
        for event in delivery.select(opts, result, ex.recovery):
            delivery.fire(opts, salt, event)
    return result.as_dict()


def report_failed(opts: Opts, salt: Salt, error: Any, send: bool = True) -> dict[str, Any]:
    """``docker.release_report_failed``: the pending release reported ``failed`` (see there)."""
    release = release_pillar.get(salt, "docker:release", None)  # the minion's copy
    if not isinstance(release, dict) or release.get("id") is None:
        release = read_json(delivery.state_path(opts, PREPULLED))
    if delivery.master_reachable(opts, salt):
        try:  # the release the master (or the local pillar) would give now
            fresh = (salt["pillar.items"](unmask=True).get("docker") or {}).get("release")
        except Exception:  # noqa: BLE001 - master unreachable in any way: use the minion's copy
            pass
        else:
            # salt-call --local of a master's minion: its local pillar has no release
            if not (delivery.masterless(opts) and not isinstance(fresh, dict)):
                release = fresh
    if not isinstance(release, dict) or release.get("id") is None:
        return {"reported": False, "comment": "no release for this device"}
    applied = commands.executor(opts).applied() or {}
    if str(applied.get("release_id")) == str(release["id"]):
        return {"reported": False, "comment": f"release {release['id']} is already applied"}
    failed = ApplyResult.failed(release["id"], release.get("version_hash"), str(error))
    queued = delivery.fire(opts, salt, failed.event(), send=send)
    if not send and not queued:
        return {"reported": False, "comment": "cannot queue the result event (see the log)"}
    answer = {"reported": True, "release_id": release["id"], "error": str(error)}
    return answer if send else {**answer, "sent": False}  # in the result queue


def pull(opts: Opts, salt: Salt, release: Any = None, registries: Any = None) -> dict[str, Any]:
    """``docker.release_pull``: deliver queued results, then log in and pull the release's images."""
    delivery.flush(opts, salt)  # the awake schedule also delivers results queued meanwhile
    release, registries = pillar_release(salt, release, registries)
    checked = target(opts, release, registries)
    if checked is None:
        return {}
    pulled = commands.executor(opts).pull(checked)
    try:
        write_json(
            delivery.state_path(opts, PREPULLED),
            {"id": release.get("id"), "version_hash": release.get("version_hash")},
        )
    except OSError as exc:
        log.warning("berth release %s: cannot record the pre-pull: %s", release.get("id"), exc)
    return pulled


def recover(opts: Opts, salt: Salt) -> str:
    """``docker.release_recover``: deliver queued results, finish or roll back an interrupted
    apply and report what happened to it."""
    delivery.flush(opts, salt)
    ex = commands.executor(opts)
    done = ex.recover()
    if ex.recovery:
        delivery.fire(opts, salt, ex.recovery.event())
    return done or "nothing to recover"


def report(opts: Opts, salt: Salt) -> dict[str, Any] | None:
    """``docker.release_report``: the result the applied release implies, signed."""
    result: dict[str, Any] | None = results.status_to_result(commands.status(opts))
    if result is None:
        return None
    key = delivery.report_key(opts, salt)
    if key is None:
        log.warning("berth release: no report key (pillar berth:report_key): report unsigned")
        return result
    signed: dict[str, Any] = results.signed(key, opts["id"], result)
    return signed
