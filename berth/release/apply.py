"""An apply: checks before anything changes, the forward steps (journalled), the commit.

:func:`apply` brings the engine to a target: it plans, checks signatures, free space and update
locks (a refusal changes nothing), journals each forward step's undo before running it, rolls
back on any failure (:func:`berth.release.recovery.rollback`) and, once verification passed,
runs the commit steps. :func:`run_forward` and :func:`run_commit` map each step type to its
call; a step they do not know is an error, never skipped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import docker.errors

from berth import dockerutil
from berth.contract import JournalPhase, ReleaseOutcome
from berth.release import locks, purge, recovery, space, trust, volumes
from berth.release import steps as st
from berth.release.journal import Journal
from berth.release.model import Target
from berth.release.result import ApplyResult

if TYPE_CHECKING:
    from berth.release.executor import Executor

log = logging.getLogger(__name__)

Changes = dict[str, list[str]]
T = TypeVar("T")


class StepFailed(RuntimeError):
    pass


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def apply(ex: Executor, target: Target, ignore_locks: bool = False) -> ApplyResult:
    """Bring the engine to ``target`` (never raises for a failed step). Deferred (nothing changed)
    while a container it would stop holds its update lock (:mod:`berth.release.locks`), unless
    ``ignore_locks`` (the operator's override)."""
    with ex.locked(), contextlib.ExitStack() as update_locks:
        recovered = recovery.recover_locked(ex)
        result = ApplyResult(
            target.release_id,
            target.version_hash,
            version=target.version,
            project=target.project,
            recovered=recovered,
        )
        if ex.journal is not None:
            # the previous apply's rollback (or cleanup) is still owed: starting another one
            # would lose what it must undo, so this apply waits for the next run
            if ex.journal.phase != JournalPhase.COMMITTING:
                result.rollback_incomplete = recovered
            return _not_started(
                ex, result, target, ReleaseOutcome.FAILED, f"not applied: {recovered}"
            )
        steps = ex.plan(target)
        result.steps = [s.to_dict() for s in steps]
        if not steps:
            result.containers = container_report(ex, target)
            return result
        refusal = _refusal(ex, result, target, steps)
        if refusal is not None:
            return _not_started(
                ex, result, target, ReleaseOutcome.FAILED, refusal, rolled_back=False
            )
        stopping = [s.name for s in steps if isinstance(s, st.Stop) and s.was_running]
        held = update_locks.enter_context(locks.hold(ex.dir, [] if ignore_locks else stopping))
        if held:
            reason = locks.deferred_reason(held)
            log.warning("berth release %s on %s: %s", target.release_id, ex.device, reason)
            return _not_started(ex, result, target, ReleaseOutcome.DEFERRED, reason, holders=held)
        return _run(ex, result, target, steps)


def _refusal(ex: Executor, result: ApplyResult, target: Target, steps: list[st.Step]) -> str | None:
    """Why the apply must not start (signatures, free space), before anything is pulled or stopped."""
    try:
        signed = ex.check_signatures(target)
    except trust.Refused as exc:
        log.error("berth release %s on %s: %s", target.release_id, ex.device, exc)
        return str(exc)
    if signed:
        result.signed_by = signed
    short = ex._space_shortfall(steps, target)
    if short:
        log.error("berth release %s on %s: %s", target.release_id, ex.device, short)
    return short


def _not_started(
    ex: Executor,
    result: ApplyResult,
    target: Target,
    outcome: ReleaseOutcome,
    error: str,
    rolled_back: bool | None = None,
    holders: list[Any] | None = None,
) -> ApplyResult:
    """``result`` of an apply that changed nothing."""
    result.outcome = outcome
    result.error = error
    result.containers = container_report(ex, target)
    if rolled_back is not None:
        result.rolled_back = rolled_back
    if holders is not None:
        result.holders = holders
    return result


def _run(ex: Executor, result: ApplyResult, target: Target, steps: list[st.Step]) -> ApplyResult:
    """The journalled run: forward steps (rolled back on failure), then the commit."""
    log.info(
        "berth release %s (%s) on %s: applying %d steps",
        target.release_id,
        target.version_hash,
        ex.device,
        len(steps),
    )
    journal = ex.journal = Journal.start(
        ex.journal_path, target.release_id, target.version_hash, result.steps, now()
    )
    changes: Changes = {}
    try:
        for batch in batches([s for s in steps if not s.commit]):
            # independent stops (and creates) run side by side; each journals itself first
            parallel(lambda step: forward(ex, step, target, changes), batch)
            journal.advance(len(batch))
    except Exception as exc:  # noqa: BLE001 - any engine error must end in a rollback and a report
        return _failed(ex, result, target, journal, reason(exc), changes)
    journal.set_phase(JournalPhase.COMMITTING)
    problems = ex._commit(steps, changes)
    if problems:
        result.warnings = [f"cleanup will be retried on the next run: {p}" for p in problems]
    else:
        ex.clear_journal()
    locks.prune(ex.dir, {c["name"] for c in dockerutil.list_containers(ex.cli)})
    log.info(
        "berth release %s (%s) on %s: succeeded", target.release_id, target.version_hash, ex.device
    )
    result.outcome = ReleaseOutcome.SUCCEEDED
    result.changes = changes
    result.containers = container_report(ex, target)
    return result


def _failed(
    ex: Executor,
    result: ApplyResult,
    target: Target,
    journal: Journal,
    why: str,
    changes: Changes,
) -> ApplyResult:
    touched = bool(journal.undo)
    log.error(
        "berth release %s on %s failed: %s%s",
        target.release_id,
        ex.device,
        why,
        "; rolling back" if touched else "; nothing was changed",
    )
    rollback_errors = recovery.rollback(ex, journal)
    if rollback_errors:
        incomplete = "; ".join(rollback_errors)
        why += f"; rollback incomplete: {incomplete}"
        result.rollback_incomplete = incomplete
    else:
        ex.clear_journal()
    result.outcome = ReleaseOutcome.FAILED
    result.error = why
    result.changes = changes
    result.rolled_back = touched and not rollback_errors
    result.containers = container_report(ex, target)
    return result


def pull(ex: Executor, target: Target) -> Changes:
    """Log in and pull what ``target`` needs; stops nothing (for pre-pulling while awake)."""
    changes: Changes = {}
    steps = ex.plan(target)
    if steps:
        try:  # nothing unsigned is even downloaded
            ex.check_signatures(target)
        except trust.Refused as exc:
            raise StepFailed(str(exc)) from None
    short = ex._space_shortfall(steps, target)
    if short:
        raise StepFailed(short)
    for step in steps:
        if isinstance(step, (st.Login, st.Pull, st.CheckDigest)):
            forward(ex, step, target, changes)
    return changes


def space_shortfall(ex: Executor, steps: list[st.Step], target: Target) -> str | None:
    """Why the images to pull do not fit on the engine's disk (None: they fit)."""
    pulls = []
    for step in steps:
        if isinstance(step, st.Pull):
            entry = None if step.registry is None else target.registry(step.registry)
            pulls.append((step.ref, entry, (entry or {}).get("url")))
    try:
        short: str | None = space.shortfall(ex.cli, pulls, ex.space_factor, ex.space_margin)
        return short
    except Exception as exc:  # noqa: BLE001 - an estimate must never block a release
        log.warning("berth release on %s: free space not checked: %s", ex.device, exc)
        return None


# ---- forward steps: journalled first (their undo), rolled back on failure ------------------


def forward(ex: Executor, step: st.Step, target: Target, changes: Changes) -> None:
    ex._at(step.action)
    run_forward(ex, step, target, changes)
    ex._at(step.action + ":done")


def run_forward(ex: Executor, step: st.Step, target: Target, changes: Changes) -> None:
    """One forward step: each type maps to its call; anything else is refused."""
    match step:
        case st.Login():
            login(ex, target.registry(step.registry), changes)
        case st.Pull():
            pull_image(ex, step, target, changes)
        case st.CheckDigest():
            check_digest(ex, step.ref)
        case st.Stop():
            stop(ex, step, target, changes)
        case st.Purge():
            purge_data(ex, step, changes)
        case st.Create():
            create(ex, step, target)
        case st.Start():
            parallel(ex.cli.api.start, list(step.names))
            changes.setdefault("started", []).extend(step.names)
        case st.Verify():
            ex._verify(list(step.names))
        case _:
            raise StepFailed(f"not a step to run before verification: {step!r}")


def login(ex: Executor, entry: dict[str, Any], changes: Changes) -> None:
    dockerutil.login(
        ex.cli, entry["url"], str(entry.get("username") or ""), str(entry.get("password") or "")
    )
    ex.remember_login(ex.login_key(entry))
    changes.setdefault("logged_in", []).append(dockerutil.registry_host(entry["url"]))


def pull_image(ex: Executor, step: st.Pull, target: Target, changes: Changes) -> None:
    auth = None
    if step.registry is not None:
        entry = target.registry(step.registry)
        auth = {"username": entry.get("username"), "password": entry.get("password")}
    log.info("berth release %s on %s: pulling %s", target.release_id, ex.device, step.ref)
    try:
        dockerutil.pull(ex.cli, step.ref, auth)
    except dockerutil.PullError as exc:
        if "@" not in step.ref:
            raise
        raise StepFailed(
            f"refused: the registry does not serve the pinned image {step.ref} "
            f"({str(exc).split(' failed: ', 1)[-1]}); the release runs that digest or "
            "nothing, so nothing was stopped"
        ) from None
    changes.setdefault("pulled", []).append(step.ref)


def check_digest(ex: Executor, ref: str) -> None:
    """The image the engine has for ``<repo>@<digest>`` lists that digest in ``RepoDigests``."""
    digests = dockerutil.repo_digests(ex.cli, ref)
    if digests is None:
        raise StepFailed(
            f"refused: the pinned image {ref} is not on the engine; nothing was stopped"
        )
    if ref not in digests:
        raise StepFailed(
            f"refused: the engine's image for {ref} does not have the pinned digest "
            f"(its digests: {', '.join(digests) or 'none'}); nothing was stopped"
        )


def stop(ex: Executor, step: st.Stop, target: Target, changes: Changes) -> None:
    _record_undo(ex, step)
    if step.was_running:
        log.info("berth release %s on %s: stopping %s", target.release_id, ex.device, step.name)
        ex.cli.api.stop(step.name, timeout=ex.stop_timeout)
        changes.setdefault("stopped", []).append(step.name)
    if step.rename_to:
        ex.cli.api.rename(step.name, step.rename_to)


def purge_data(ex: Executor, step: st.Purge, changes: Changes) -> None:
    if os.path.lexists(step.aside):
        raise StepFailed(
            f"purge of {step.path}: {step.aside} already exists; refusing to overwrite it"
        )
    _record_undo(ex, step)
    purge.purge(step.path, step.aside)
    changes.setdefault("purged", []).append(step.path)


def create(ex: Executor, step: st.Create, target: Target) -> None:
    _record_undo(ex, step)
    kwargs = dict(next(c for c in target.containers if c.fq_name == step.name).create_kwargs)
    image = kwargs.pop("image")
    # the device's own mount, not a release bind (berth.release.locks)
    kwargs["volumes"] = locks.mount(ex.dir, step.name, kwargs.get("volumes") or [])
    # before Docker would create a missing one unlabelled (berth.release.volumes)
    volumes.ensure(ex.cli, kwargs, target.project, ex.protected)
    ex.cli.containers.create(image, **kwargs)


def _record_undo(ex: Executor, step: st.Step) -> None:
    """Journal what undoes ``step`` before it changes anything."""
    if ex.journal is None:
        raise StepFailed(f"{step.action}: no journal to record its undo in")
    ex.journal.add_undo(step.undo())


def verify(ex: Executor, names: list[str]) -> None:
    """Each container stays running for the settle time and, with a HEALTHCHECK, becomes healthy."""
    start = time.monotonic()
    settle_until = start + ex.settle_seconds
    health_until = start + ex.health_timeout
    while True:
        pending_health = [name for name in names if not _healthy(ex, name)]
        now = time.monotonic()
        if now >= settle_until and not pending_health:
            return
        if now >= health_until:
            raise StepFailed(
                f"container(s) {', '.join(pending_health)} not healthy after "
                f"{ex.health_timeout:g} s"
            )
        time.sleep(min(0.1, max(0.0, settle_until - now)) or 0.1)


def _healthy(ex: Executor, name: str) -> bool:
    """Whether ``name`` runs and is healthy (False: its health check has not passed yet);
    :class:`StepFailed` when it stopped, restarted or is unhealthy."""
    attrs = ex.cli.api.inspect_container(name)
    state = attrs.get("State") or {}
    if state.get("Status") != "running" or state.get("Restarting") or attrs.get("RestartCount", 0):
        tail = _last_lines(dockerutil.logs(ex.cli, name, tail=5))
        raise StepFailed(
            f"container {name} did not stay running (status {state.get('Status')}, "
            f"exit code {state.get('ExitCode')}){tail}"
        )
    health = state.get("Health")
    if not health:
        return True
    status = health.get("Status")
    if status == "unhealthy":
        raise StepFailed(f"container {name} is unhealthy{_health_output(health)}")
    return bool(status == "healthy")


# ---- commit steps: after verification, each idempotent, retried until done ----------------


def commit(ex: Executor, steps: list[st.Step], changes: Changes) -> list[str]:
    """The post-verification steps; each is idempotent and tried even if an earlier one failed.

    Returns the problems; the journal is kept while there are any, so the next run retries."""
    problems = []
    for step in steps:
        if not step.commit:
            continue
        try:
            ex._at(f"commit:{step.action}")
            run_commit(ex, step, changes)
        except Exception as exc:  # noqa: BLE001 - the new release runs; cleanup is retried later
            problems.append(f"{step.action}: {dockerutil.api_message(exc)}")
    if problems:
        log.warning(
            "berth release %s on %s: cleanup incomplete, will retry: %s",
            ex.journal.release_id if ex.journal else None,
            ex.device,
            "; ".join(problems),
        )
    return problems


def run_commit(ex: Executor, step: st.Step, changes: Changes) -> None:
    """One commit step: each type maps to its call; anything else is refused."""
    match step:
        case st.Remove():
            parallel(ex.remove_container, list(step.names))
            changes.setdefault("removed", []).extend(step.names)
        case st.DropPurged():
            for aside in step.paths:
                purge.drop(aside)
        case st.Prune():
            for ref in step.refs:
                remove_image(ex, ref, changes)
        case st.Record():
            ex.files.record_applied({**step.record(), "applied_at": now()})
        case _:
            raise StepFailed(f"not a commit step: {step!r}")


def remove_image(ex: Executor, ref: str, changes: Changes) -> None:
    try:
        ex.cli.api.remove_image(ref)
        changes.setdefault("images_removed", []).append(ref)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        # in use by a container started meanwhile: keeping it is correct
        log.warning(
            "berth release on %s: keeping image %s: %s", ex.device, ref, dockerutil.api_message(exc)
        )


# ---- shared by the apply and the rollback --------------------------------------------------


def remove_container(ex: Executor, name: str, wait: float = 60.0) -> None:
    """Remove ``name`` (gone already is fine). A removal a killed run left in flight inside
    the engine answers 409 "already in progress": wait for it to end."""
    deadline = time.monotonic() + wait
    while True:
        try:
            ex.cli.api.remove_container(name, force=True)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if exc.status_code != 409 or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def parallel(fn: Callable[[T], object], items: list[T]) -> None:
    if len(items) <= 1:
        for item in items:
            fn(item)
        return
    with ThreadPoolExecutor(max_workers=min(8, len(items))) as pool:
        for fut in [pool.submit(fn, item) for item in items]:
            fut.result()


def batches(steps: Iterable[st.Step]) -> list[list[st.Step]]:
    """Consecutive stop steps (and create steps) form one batch; every other step is alone."""
    out: list[list[st.Step]] = []
    for step in steps:
        if out and isinstance(step, (st.Stop, st.Create)) and type(out[-1][0]) is type(step):
            out[-1].append(step)
        else:
            out.append([step])
    return out


def reason(exc: BaseException) -> str:
    if isinstance(exc, (StepFailed, dockerutil.PullError, dockerutil.RegistryLoginError)):
        return str(exc)
    return f"{type(exc).__name__}: {dockerutil.api_message(exc)}"


def container_report(ex: Executor, target: Target) -> list[dict[str, Any]]:
    try:
        by_name = {c["name"]: c for c in dockerutil.list_containers(ex.cli)}
    except Exception as exc:  # noqa: BLE001 - the engine went away: report, do not raise
        log.warning("berth release on %s: cannot list containers: %s", ex.device, exc)
        by_name = None
    return [
        {
            "name": tc.name,
            "fully_qualified_name": tc.fq_name,
            "image": tc.image,
            "status": "unknown"
            if by_name is None
            else (by_name.get(tc.fq_name) or {}).get("state", "missing"),
        }
        for tc in target.containers
    ]


def _last_lines(text: str) -> str:
    text = text.strip()
    return f"; last output: {text[-500:]}" if text else ""


def _health_output(health: dict[str, Any]) -> str:
    entries = health.get("Log") or []
    if not entries:
        return ""
    last = entries[-1]
    return f" (health check exit code {last.get('ExitCode')}: {str(last.get('Output') or '').strip()[:300]})"
