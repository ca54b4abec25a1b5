"""Rollback of a failed apply and recovery of one that died.

:func:`rollback` undoes what the journal's undo list says was done (each kind of
:data:`berth.release.journal.Undo` maps to its call); :func:`recover_locked` finishes an
interrupted apply that had passed verification, or rolls it back; with an unreadable journal,
:func:`recover_from_engine` brings back the applied release from what the engine shows.
Every undo is safe to repeat: a retried rollback (next apply, ``release_recover``, minion
start) runs the same list again and skips what an earlier attempt finished.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import docker.errors

from berth import dockerutil
from berth.contract import JournalPhase, Label, ReleaseOutcome
from berth.release import apply, purge
from berth.release import plan as planner
from berth.release import steps as st
from berth.release.journal import JOURNAL_KEYS, Journal, JournalCorrupt
from berth.release.result import RecoveryResult
from berth.release.statefiles import CORRUPT, read_json

if TYPE_CHECKING:
    from berth.release.executor import Executor

log = logging.getLogger(__name__)


def rollback(ex: Executor, journal: Journal) -> list[str]:
    """Undo what the journal says was done; return the problems (empty when all is undone)."""
    journal.set_phase(JournalPhase.ROLLING_BACK)
    undo = journal.undo
    errors: list[str] = []

    def step(key: str, point: str, fn: Callable[[], None]) -> bool:
        if key in journal.undone:
            return True
        try:
            ex._at(point)
            fn()
        except Exception as exc:  # noqa: BLE001 - collected, the journal keeps the step
            errors.append(f"{key}: {apply.reason(exc)}")
            return False
        journal.mark_undone(key)
        return True

    for created in reversed(undo.created):
        step(
            f"remove {created.name}",
            "rollback:remove",
            functools.partial(ex.remove_container, created.name),
        )
    for purged in reversed(undo.purged):
        step(
            f"restore {purged.path}",
            "rollback:restore",
            functools.partial(purge.restore, purged.path, purged.aside),
        )
    restart = []
    for stopped in reversed(undo.stopped):
        renamed = stopped.renamed_to
        if renamed and not step(
            f"rename {renamed}",
            "rollback:rename",
            functools.partial(rename_back, ex, renamed, stopped.name),
        ):
            continue
        if stopped.was_running:
            restart.append(stopped.name)

    def restart_one(name: str) -> None:
        step(f"restart {name}", "rollback:restart", lambda: restart_container(ex, name))

    apply.parallel(restart_one, restart)
    return errors


def rename_back(ex: Executor, renamed: str, name: str) -> None:
    if exists(ex, renamed):
        ex.cli.api.rename(renamed, name)
    elif not exists(ex, name):
        raise apply.StepFailed(f"neither {renamed} nor {name} exists")


def restart_container(ex: Executor, name: str) -> None:
    """Start a container the apply stopped, and check it runs.

    A killed apply's ``docker stop`` keeps running inside the engine, and ``start`` on a
    container that is still stopping is a no-op; so stop first (which waits for a stop in
    flight to end), then start."""
    try:
        ex.cli.api.stop(name, timeout=ex.stop_timeout)
    except docker.errors.NotFound:
        # removed by someone else meanwhile: there is nothing left to start
        log.warning("berth release rollback on %s: %s no longer exists", ex.device, name)
        return
    ex.cli.api.start(name)
    state = ex.cli.api.inspect_container(name).get("State") or {}
    if not state.get("Running"):
        raise apply.StepFailed(
            f"{name} is not running after start (status {state.get('Status')}, "
            f"exit code {state.get('ExitCode')})"
        )
    log.info("berth release rollback on %s: restarted %s", ex.device, name)


def exists(ex: Executor, name: str) -> bool:
    try:
        ex.cli.api.inspect_container(name)
        return True
    except docker.errors.NotFound:
        return False


def recover_locked(ex: Executor) -> str | None:
    """Finish or roll back a run that died (the caller holds the lock); returns what was done,
    or None.

    ``ex.journal`` stays set (and the journal on disk) when the rollback or cleanup is still
    incomplete; ``ex.recovery`` says what happened to which release."""
    ex.journal = None
    ex.recovery = None
    data = read_json(ex.journal_path, JOURNAL_KEYS)
    if data is CORRUPT:
        return recover_from_engine(ex)
    if not data:
        return None
    try:
        steps = [st.from_dict(d) for d in data["steps"]]
        journal = Journal.from_json(ex.journal_path, data)
    except (st.UnknownStep, JournalCorrupt) as exc:
        log.error("berth release on %s: journal names %s", ex.device, exc)
        return recover_from_engine(ex)
    ex.journal = journal
    if journal.phase == JournalPhase.COMMITTING:
        return _finish(ex, journal, steps)
    return _roll_back_interrupted(ex, journal)


def _finish(ex: Executor, journal: Journal, steps: list[st.Step]) -> str:
    release = journal.release_id
    log.warning("berth release %s on %s: finishing an interrupted apply", release, ex.device)
    problems = ensure_running(ex, steps) + ex._commit(steps, {})
    if problems:
        # the new release runs; only its cleanup is owed
        message = (
            f"interrupted apply of release {release}: cleanup still incomplete: "
            f"{'; '.join(problems)}"
        )
    else:
        ex.clear_journal()
        message = f"finished interrupted apply of release {release}"
    ex.recovery = RecoveryResult(
        release, journal.version_hash, ReleaseOutcome.SUCCEEDED, None, message
    )
    return message


def _roll_back_interrupted(ex: Executor, journal: Journal) -> str:
    release = journal.release_id
    log.warning("berth release %s on %s: rolling back an interrupted apply", release, ex.device)
    errors = rollback(ex, journal)
    if errors:
        message = (
            f"interrupted apply of release {release}: rollback incomplete: {'; '.join(errors)}"
        )
        log.error("berth release %s on %s: %s", release, ex.device, message)
        error = message
    else:
        ex.clear_journal()
        message = f"rolled back interrupted apply of release {release}"
        error = f"the apply was interrupted; {message}"
    ex.recovery = RecoveryResult(
        release, journal.version_hash, ReleaseOutcome.FAILED, error, message
    )
    return message


def ensure_running(ex: Executor, steps: list[st.Step]) -> list[str]:
    """The verified containers of an interrupted commit run (an engine restart since may
    have stopped those without a restart policy)."""
    problems = []
    for step in steps:
        if not isinstance(step, st.Start):
            continue
        for name in step.names:
            try:
                state = ex.cli.api.inspect_container(name).get("State") or {}
                if not state.get("Running"):
                    ex.cli.api.start(name)
            except Exception as exc:  # noqa: BLE001 - kept for the next run
                problems.append(f"start {name}: {apply.reason(exc)}")
    return problems


def recover_from_engine(ex: Executor) -> str:
    """The journal is unreadable: bring back the applied release from what the engine shows.

    When every container of the applied record exists, containers of other releases go,
    ``.berth-previous`` copies get their name back, purged copies made by another release
    move back (by this one: are dropped) and the applied containers are started. Otherwise
    nothing is touched and the next apply converges from the engine's state."""
    applied = ex.applied()
    note = "journal was unreadable"
    if not applied:
        ex.set_journal_aside()
        return f"{note}; no applied release recorded, the next apply starts from the engine"
    vh = applied.get("version_hash")
    wanted = [c.get("fully_qualified_name") for c in applied.get("containers") or []]
    _rename_previous_back(ex, wanted, vh)
    by_name = {c["name"]: c for c in dockerutil.list_containers(ex.cli)}
    if not all(n in by_name and by_name[n]["labels"].get(Label.VERSION_HASH) == vh for n in wanted):
        ex.set_journal_aside()
        return (
            f"{note}; the engine does not hold release {applied.get('release_id')} complete, "
            "left as is for the next apply"
        )
    for c in by_name.values():
        if Label.RELEASE in c["labels"] and c["labels"].get(Label.VERSION_HASH) != vh:
            ex.remove_container(c["name"])
    for name in wanted:
        _restore_binds(ex, name, str(applied.get("release_id")))
        if by_name[name]["state"] != "running":
            restart_container(ex, name)
    ex.set_journal_aside()
    return f"{note}; release {applied.get('release_id')} brought back from the engine's state"


def _rename_previous_back(ex: Executor, wanted: list[Any], vh: Any) -> None:
    """``<name>.berth-previous`` of the applied release gets its name back from a newer copy."""
    by_name = {c["name"]: c for c in dockerutil.list_containers(ex.cli)}
    for name in wanted:
        prev = by_name.get(name + planner.PREVIOUS_SUFFIX)
        cur = by_name.get(name)
        if prev and prev["labels"].get(Label.VERSION_HASH) == vh:
            if cur and cur["labels"].get(Label.VERSION_HASH) != vh:
                ex.remove_container(name)
                cur = None
            if cur is None:
                ex.cli.api.rename(name + planner.PREVIOUS_SUFFIX, name)


def _restore_binds(ex: Executor, name: str, release_id: str) -> None:
    """Purged copies of ``name``'s bind sources: the applied release's own are dropped, another
    release's are put back."""
    host_config = ex.cli.api.inspect_container(name).get("HostConfig") or {}
    for bind in host_config.get("Binds") or []:
        source = bind.split(":", 1)[0]
        for aside in purge.asides(source):
            if aside.rsplit("-", 1)[-1] == release_id:
                purge.drop(aside)
            else:
                purge.restore(source, aside)
