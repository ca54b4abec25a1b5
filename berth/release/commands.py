"""What the ``docker.*`` Salt functions do, as plain Python taking the minion ``opts``.

Minion options read here:

``docker.url``                      engine URL (else ``$DOCKER_HOST``, else the default socket)
``docker.release_settle_seconds``   how long new containers must stay running (default 3)
``docker.release_health_timeout``   how long a HEALTHCHECK may take to report healthy (default 60)
``docker.release_stop_timeout``     seconds ``docker stop`` waits before killing (default 10)
``docker.release_state_dir``        journal, lock and applied record (default ``<cachedir>/berth``)
``docker.release_space_factor``     free space needed = download size x this + margin (default 3; 0: no check)
``docker.release_space_margin_mb``  the margin (default 64)
``berth_trusted_keys``              keys whose signatures this device requires on every image
                                    (PEM strings or PEM file paths; :mod:`berth.release.trust`)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from berth import dockerutil, results, secretfile
from berth.contract import AppliedReleaseState, Label, LoginOutcome
from berth.diskspool import Spool
from berth.release import trust
from berth.release.executor import Executor
from berth.release.images import ReleaseError, find_registry
from berth.release.model import Target, target_from_pillar
from berth.release.pillar import ReleasePillar
from berth.release.policy import protected_containers
from berth.release.statefiles import read_json

log = logging.getLogger(__name__)

DEFAULT_SETTLE_SECONDS = 3.0
DEFAULT_HEALTH_TIMEOUT = 60.0
DEFAULT_STOP_TIMEOUT = 10
DEFAULT_SPACE_FACTOR = 3.0
DEFAULT_SPACE_MARGIN_MB = 64


def state_dir(opts: dict[str, Any]) -> str:
    return str(
        opts.get("docker.release_state_dir")
        or os.path.join(opts.get("cachedir") or "/var/cache/salt/minion", "berth")
    )


def client(opts: dict[str, Any]) -> Any:
    return dockerutil.client(dockerutil.engine_url(opts))


def executor(
    opts: dict[str, Any],
    settle_seconds: float | None = None,
    health_timeout: float | None = None,
    stop_timeout: float | None = None,
) -> Executor:
    def opt(value: object, key: str, default: float) -> float:
        value = value if value is not None else opts.get(key, default)
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ReleaseError(f"{key} must be a number, got {value!r}") from None

    return Executor(
        client(opts),
        state_dir(opts),
        settle_seconds=opt(settle_seconds, "docker.release_settle_seconds", DEFAULT_SETTLE_SECONDS),
        health_timeout=opt(health_timeout, "docker.release_health_timeout", DEFAULT_HEALTH_TIMEOUT),
        stop_timeout=int(opt(stop_timeout, "docker.release_stop_timeout", DEFAULT_STOP_TIMEOUT)),
        device=str(opts.get("id") or "device"),
        space_factor=opt(None, "docker.release_space_factor", DEFAULT_SPACE_FACTOR),
        space_margin_mb=opt(None, "docker.release_space_margin_mb", DEFAULT_SPACE_MARGIN_MB),
        protected=protected_containers(opts),
        trusted_keys=opts.get(trust.MINION_OPTION),
    )


def status(opts: dict[str, Any]) -> dict[str, Any]:
    ex = executor(opts)
    applied = ex.applied()
    journal = ex.pending()
    containers = [c for c in dockerutil.list_containers(ex.cli) if Label.RELEASE in c["labels"]]
    report = [
        {
            "name": c["labels"].get(Label.NAME),
            "fully_qualified_name": c["name"],
            "image": c["image"],
            "release_id": c["labels"].get(Label.RELEASE),
            "version_hash": c["labels"].get(Label.VERSION_HASH),
            "status": c["state"],
        }
        for c in containers
    ]
    if applied is None:
        state = AppliedReleaseState.NONE
    elif journal or ex.journal_path.exists():
        state = AppliedReleaseState.INTERRUPTED
    else:
        mine = [c for c in report if c["version_hash"] == applied.get("version_hash")]
        expected = {c["fully_qualified_name"] for c in applied.get("containers") or []}
        running = {c["fully_qualified_name"] for c in mine if c["status"] == "running"}
        state = AppliedReleaseState.RUNNING if expected <= running else AppliedReleaseState.DEGRADED
    return {
        "release_id": (applied or {}).get("release_id"),
        "version": (applied or {}).get("version"),
        "version_hash": (applied or {}).get("version_hash"),
        "applied_at": (applied or {}).get("applied_at"),
        "state": state,
        "containers": report,
        # an apply not finished or rolled back yet (the next apply or release_recover retries it)
        "interrupted": None
        if not journal
        else {
            "release_id": journal.get("release_id"),
            "phase": journal.get("phase"),
            "started_at": journal.get("started_at"),
        },
    }


REPORT_KEY = "report.key"


def keep_report_key(opts: dict[str, Any], key: str) -> None:
    """Keep the device's report key (pillar ``berth:report_key``) in a file only root may read,
    so the paths that run without the master (``salt-call --local``, the local API engine's
    pillar of its start) still sign their results (berth/results.py)."""
    path = Path(state_dir(opts)) / REPORT_KEY
    if kept_report_key(opts) == key:
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{REPORT_KEY}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key + "\n")
    os.replace(tmp, path)


def kept_report_key(opts: dict[str, Any]) -> str | None:
    """The kept report key, or None (no file, readable by others, not a key)."""
    path = Path(state_dir(opts)) / REPORT_KEY
    if not path.exists():
        return None
    try:
        key = secretfile.read_private(str(path))
    except ValueError as exc:
        log.warning("berth release: the kept report key is not used: %s", exc)
        return None
    return key if results.valid_key(key) else None


# the results outbox: a berth.diskspool directory; RESULTS_OUTBOX is the single JSON file
# ({"events": [...]}) of earlier versions, moved into the spool on first use
RESULTS_SPOOL = "results-outbox"
RESULTS_OUTBOX = "results-outbox.json"
OUTBOX_LIMIT = 50
OUTBOX_MAX_BYTES = 4 * 1024 * 1024


def results_outbox(opts: dict[str, Any]) -> Spool:
    """The device's queue of result events not yet handed to the master (a full one drops its
    oldest events, logged). The minion daemon and a ``salt-call --local`` of the sleep hook
    change it at the same time (berth/diskspool.py)."""
    directory = Path(state_dir(opts))
    outbox = Spool(
        directory / RESULTS_SPOOL,
        name=f"results outbox of {opts.get('id') or 'this device'}",
        max_entries=OUTBOX_LIMIT,
        max_bytes=OUTBOX_MAX_BYTES,
    )
    legacy = directory / RESULTS_OUTBOX
    if legacy.exists():
        with outbox.writing():
            _migrate_outbox(legacy, outbox)
    return outbox


def _migrate_outbox(legacy: Path, outbox: Spool) -> None:
    """Move the events of an outbox file written before the upgrade into the spool, oldest
    first; the file goes only once they are all there (a crash in between sends some twice,
    which the API takes: reports are idempotent)."""
    if not legacy.exists():  # another process moved it meanwhile
        return
    events = (read_json(legacy) or {}).get("events") or []
    for event in events[-OUTBOX_LIMIT:]:
        outbox.put_locked(event)
    legacy.unlink(missing_ok=True)
    Path(str(legacy) + ".lock").unlink(missing_ok=True)
    log.info("berth release: %d queued result event(s) moved into %s", len(events), outbox.dir)


def queue_result(opts: dict[str, Any], event: dict[str, Any]) -> None:
    """Keep a result event on disk until it was handed to the event bus (:func:`flush_results`)."""
    results_outbox(opts).put(event)


def flush_results(opts: dict[str, Any], send: Callable[[dict[str, Any]], bool]) -> int:
    """Send the queued result events in order with ``send(data) -> bool``; each leaves the queue
    only once sent; the first unsent one stops (it and the rest stay, with any queued
    meanwhile). Returns how many were sent."""
    return results_outbox(opts).drain(send)


def resolve_container(opts: dict[str, Any], cli: Any, name: str) -> str:
    """A full container name, or the short name of a container of the applied (else any) release."""
    containers = dockerutil.list_containers(cli)
    applied_record = read_json(Path(state_dir(opts)) / "applied.json")
    if applied_record:
        for c in containers:
            if c["labels"].get(Label.NAME) == name and c["labels"].get(
                Label.VERSION_HASH
            ) == applied_record.get("version_hash"):
                return str(c["name"])
    if any(c["name"] == name for c in containers):
        return name
    release_matches = sorted(
        (c for c in containers if c["labels"].get(Label.NAME) == name),
        key=lambda c: (c["state"] == "running", c["created"]),
        reverse=True,
    )
    if release_matches:
        return str(release_matches[0]["name"])
    raise ReleaseError(
        f"no container named {name!r} (neither a container name nor a release container's short name)"
    )


def login_registries(
    opts: dict[str, Any], registries: dict[Any, Any] | None, only: object = None
) -> dict[str, str]:
    """Log in to every registry in pillar ``docker:registries`` (or just ``only``: an id or url),
    skipping ones whose credentials were already verified. Returns ``{url: "logged in"|"already logged in"|error}``."""
    registries = registries or {}
    if only is not None:
        matches = [
            k
            for k, v in registries.items()
            if str(k) == str(only)
            or dockerutil.registry_host(str((v or {}).get("url", "")))
            == dockerutil.registry_host(str(only))
        ]
        if not matches:
            raise ReleaseError(
                f"registry {only!r} is not in pillar docker:registries (give its id or url)"
            )
        registries = {k: registries[k] for k in matches}
    ex = executor(opts)
    logged = ex.verified_logins()
    out: dict[str, str] = {}
    for rid in registries:
        entry = find_registry(registries, rid)
        host = dockerutil.registry_host(entry["url"])
        key = ex.login_key(entry)
        if key in logged:
            out[host] = LoginOutcome.ALREADY_LOGGED_IN
            continue
        try:
            dockerutil.login(
                ex.cli,
                entry["url"],
                str(entry.get("username") or ""),
                str(entry.get("password") or ""),
            )
        except dockerutil.RegistryLoginError as exc:
            log.error("berth on %s: %s", opts.get("id"), exc)
            out[host] = str(exc)
            continue
        ex.remember_login(key)
        log.info("berth on %s: logged in to registry %s", opts.get("id"), host)
        out[host] = LoginOutcome.LOGGED_IN
    return out


def target(release: ReleasePillar | None, registries: Mapping[str, Any] | None) -> Target | None:
    if not release:
        return None
    return target_from_pillar(release, registries)
