"""Runs a release plan against a Docker engine, with a journal, a lock and rollback.

State lives in ``state_dir`` (on a minion ``<cachedir>/berth``):

``applied.json``  the last successfully applied release (the no-op check reads it)
``journal.json``  written before every change while an apply runs; if the process
                  dies, the next :meth:`Executor.recover` finishes the run (when it
                  had passed verification) or rolls it back (when it had not). It is
                  deleted only once that rollback or cleanup fully succeeded: phase
                  ``applying`` -> ``rolling_back`` or ``committing`` -> gone
``logins.json``   registries whose credentials were verified (password digested)
``release.lock``  ``flock``-ed while an apply runs; a second apply gets :class:`ReleaseBusy`
``signatures.json``  digests whose signature by a trusted key was verified (:mod:`berth.release.trust`)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import hmac
import json
import logging
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker.errors

from berth import dockerutil, registryclient, signing
from berth.contract import JournalPhase, Label, ReleaseOutcome
from berth.release import locks, policy, space, trust, volumes
from berth.release import plan as planner
from berth.release import steps as st
from berth.release.model import EngineState, Target
from berth.release.plan import plan

log = logging.getLogger(__name__)


class ReleaseBusy(RuntimeError):
    """Another apply holds the lock."""


class StepFailed(RuntimeError):
    pass


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def write_json(path: Path, data) -> None:
    """Atomically replace ``path``: write + fsync a temporary file, rename it, fsync the directory,
    so after a power cut the file holds the old or the new content, never a torn one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Corrupt:
    """What :func:`read_json` returns for a file that exists but cannot be used."""

    def __bool__(self):
        return False


CORRUPT = Corrupt()


def read_json(path: Path, required: tuple[str, ...] = ()):
    """The JSON object in ``path``; None when missing; :data:`CORRUPT` (falsy) when empty,
    truncated, not an object or lacking a ``required`` key (e.g. after a power cut on a
    filesystem that lost the data despite fsync)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return None
    except (ValueError, OSError) as exc:
        log.warning("berth release: %s is unreadable (%s), ignoring it", path, exc)
        return CORRUPT
    if not isinstance(data, dict) or any(k not in data for k in required):
        log.warning("berth release: %s does not hold what it should, ignoring it", path)
        return CORRUPT
    return data


JOURNAL_KEYS = ("release_id", "version_hash", "phase", "steps", "undo")
VERIFIED_LIMIT = 256  # remembered (digest, key) pairs
REGISTRY_TIMEOUT = 10.0  # each registry request of a signature check


class Executor:
    def __init__(
        self,
        cli,
        state_dir,
        *,
        settle_seconds: float = 3.0,
        health_timeout: float = 60.0,
        stop_timeout: int = 10,
        device: str = "device",
        space_factor: float = 3.0,
        space_margin_mb: float = 64,
        protected: tuple[str, ...] = policy.PROTECTED_CONTAINERS,
        trusted_keys=None,
    ):
        self.cli = cli
        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.settle_seconds = float(settle_seconds)
        self.health_timeout = max(float(health_timeout), self.settle_seconds)
        self.stop_timeout = int(stop_timeout)
        self.device = device  # for log lines
        self.space_factor = float(space_factor)  # 0: free space not checked
        self.space_margin = int(float(space_margin_mb) * 1e6)
        self.protected = tuple(protected)  # containers whose volumes a release never mounts
        # the minion option berth_trusted_keys, as configured (berth.release.trust)
        self.trusted_keys = trusted_keys
        self.verified_path = self.dir / "signatures.json"
        self.journal_path = self.dir / "journal.json"
        self.applied_path = self.dir / "applied.json"
        self.logins_path = self.dir / "logins.json"
        self.lock_path = self.dir / "release.lock"
        self._journal: Any = None  # the journal's dict while an apply runs, else None
        self._journal_lock = threading.Lock()
        # fault-injection tests set this to kill the process at a named point (see _at)
        self.fault_hook = None
        # what the last recovery did: {"release_id", "version_hash", "outcome", "error", "message"}
        self.recovery: dict | None = None

    def _at(self, point: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(point)

    # ---- observation -------------------------------------------------------------------

    def applied(self) -> dict | None:
        # a truncated record reads as "nothing applied": the next apply replans from the engine
        return read_json(self.applied_path, ("release_id", "version_hash")) or None

    def pending(self) -> dict | None:
        """The journal of an apply that is not finished or rolled back yet (None when there is none)."""
        return read_json(self.journal_path, JOURNAL_KEYS) or None

    def verified_logins(self) -> set[str]:
        return set((read_json(self.logins_path) or {}).get("verified") or [])

    def observe(self) -> EngineState:
        return EngineState(
            containers=dockerutil.list_containers(self.cli),
            images=dockerutil.local_image_refs(self.cli),
            applied=self.applied(),
            logged_in=self.verified_logins(),
        )

    def login_key(self, entry: dict) -> str:
        # the password is kept only as a keyed digest; the key is private to this device
        secret = self._device_secret()
        digest = hmac.new(
            secret, str(entry.get("password") or "").encode(), hashlib.sha256
        ).hexdigest()
        return planner.login_key(
            dockerutil.registry_host(entry["url"]), str(entry.get("username") or ""), digest
        )

    def _device_secret(self) -> bytes:
        path = self.dir / "secret"
        try:
            return path.read_bytes()
        except FileNotFoundError:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(os.urandom(32))
            return path.read_bytes()

    def login_keys(self, target: Target) -> dict[str, str]:
        return {str(rid): self.login_key(entry) for rid, entry in target.registries.items()}

    def plan(self, target: Target, current: EngineState | None = None) -> list[st.Step]:
        current = current or self.observe()
        return plan(current, target, self.login_keys(target))

    # ---- lock ------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self):
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise ReleaseBusy(
                    f"another release apply is already running (pid {holder}); try again later"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            os.close(fd)

    # ---- journal -----------------------------------------------------------------------

    def _save(self) -> None:
        with self._journal_lock:
            write_json(self.journal_path, self._journal)

    def _undo(self, kind: str, entry) -> None:
        with self._journal_lock:
            self._journal["undo"][kind].append(entry)
            write_json(self.journal_path, self._journal)

    # ---- apply -------------------------------------------------------------------------

    def apply(self, target: Target, ignore_locks: bool = False) -> dict:
        """Bring the engine to ``target``; returns a result dict (never raises for a failed step).
        Deferred (nothing changed) while a container it would stop holds its update lock
        (:mod:`berth.release.locks`), unless ``ignore_locks`` (the operator's override)."""
        with self.locked(), contextlib.ExitStack() as update_locks:
            recovered = self._recover_locked()
            result = {
                **target.summary(),
                "outcome": ReleaseOutcome.UNCHANGED,
                "error": None,
                "recovered": recovered,
                "changes": {},
                "steps": [],
            }
            if self._journal is not None:
                # the previous apply's rollback (or cleanup) is still owed: starting another one
                # would lose what it must undo, so this apply waits for the next run
                if self._journal.get("phase") != JournalPhase.COMMITTING:
                    result["rollback_incomplete"] = recovered
                result.update(
                    outcome=ReleaseOutcome.FAILED,
                    error=f"not applied: {recovered}",
                    containers=self._container_report(target),
                )
                return result
            current = self.observe()
            steps = plan(current, target, self.login_keys(target))
            result["steps"] = [s.to_dict() for s in steps]
            if not steps:
                result["containers"] = self._container_report(target)
                return result
            try:  # before anything is pulled, stopped or replaced
                signed = self.check_signatures(target)
            except trust.Refused as exc:
                log.error("berth release %s on %s: %s", target.release_id, self.device, exc)
                return self._not_started(
                    result, target, ReleaseOutcome.FAILED, str(exc), rolled_back=False
                )
            if signed:
                result["signed_by"] = signed
            short = self._space_shortfall(steps, target)
            if short:
                log.error("berth release %s on %s: %s", target.release_id, self.device, short)
                return self._not_started(
                    result, target, ReleaseOutcome.FAILED, short, rolled_back=False
                )
            stopping = [s.name for s in steps if isinstance(s, st.Stop) and s.was_running]
            held = update_locks.enter_context(
                locks.hold(self.dir, [] if ignore_locks else stopping)
            )
            if held:
                reason = locks.deferred_reason(held)
                log.warning("berth release %s on %s: %s", target.release_id, self.device, reason)
                return self._not_started(
                    result, target, ReleaseOutcome.DEFERRED, reason, holders=held
                )
            log.info(
                "berth release %s (%s) on %s: applying %d steps",
                target.release_id,
                target.version_hash,
                self.device,
                len(steps),
            )
            self._journal = {
                "release_id": target.release_id,
                "version_hash": target.version_hash,
                "phase": JournalPhase.APPLYING,
                "started_at": _now(),
                "steps": [s.to_dict() for s in steps],
                "done": 0,
                "undo": {"stopped": [], "purged": [], "created": []},
                "undone": [],
            }
            self._save()
            changes: dict[str, list] = {}
            forward = [s for s in steps if not s.commit]
            try:
                for batch in _batches(forward):
                    # independent stops (and creates) run side by side; each journals itself first
                    self._parallel(lambda step: self._forward(step, target, changes), batch)
                    self._journal["done"] += len(batch)
                    self._save()
            except Exception as exc:  # noqa: BLE001 - any engine error must end in a rollback and a report
                reason = _reason(exc)
                touched = any(self._journal["undo"].values())
                log.error(
                    "berth release %s on %s failed: %s%s",
                    target.release_id,
                    self.device,
                    reason,
                    "; rolling back" if touched else "; nothing was changed",
                )
                rollback_errors = self._rollback()
                if rollback_errors:
                    incomplete = "; ".join(rollback_errors)
                    reason += f"; rollback incomplete: {incomplete}"
                    result["rollback_incomplete"] = incomplete
                else:
                    self._clear_journal()
                result.update(
                    outcome=ReleaseOutcome.FAILED,
                    error=reason,
                    changes=changes,
                    rolled_back=touched and not rollback_errors,
                    containers=self._container_report(target),
                )
                return result
            self._journal["phase"] = JournalPhase.COMMITTING
            self._save()
            problems = self._commit(steps, changes)
            if problems:
                result["warnings"] = [
                    f"cleanup will be retried on the next run: {p}" for p in problems
                ]
            else:
                self._clear_journal()
            locks.prune(self.dir, {c["name"] for c in dockerutil.list_containers(self.cli)})
            log.info(
                "berth release %s (%s) on %s: succeeded",
                target.release_id,
                target.version_hash,
                self.device,
            )
            result.update(
                outcome=ReleaseOutcome.SUCCEEDED,
                changes=changes,
                containers=self._container_report(target),
            )
            return result

    def _not_started(self, result: dict, target: Target, outcome, error: str, **extra) -> dict:
        """``result`` of an apply that changed nothing."""
        result.update(
            outcome=outcome, error=error, containers=self._container_report(target), **extra
        )
        return result

    def pull(self, target: Target) -> dict:
        """Log in and pull what ``target`` needs; stops nothing (for pre-pulling while awake)."""
        current = self.observe()
        changes: dict[str, list] = {}
        steps = plan(current, target, self.login_keys(target))
        if steps:
            try:  # nothing unsigned is even downloaded
                self.check_signatures(target)
            except trust.Refused as exc:
                raise StepFailed(str(exc)) from None
        short = self._space_shortfall(steps, target)
        if short:
            raise StepFailed(short)
        for step in steps:
            if isinstance(step, (st.Login, st.Pull, st.CheckDigest)):
                self._forward(step, target, changes)
        return changes

    def check_signatures(self, target: Target) -> dict:
        """``{container: key name}`` when every container of ``target`` is signed as this device
        requires (:mod:`berth.release.trust`; {} when it requires nothing); else
        :class:`berth.release.trust.Refused` naming the containers and why."""
        decision = trust.decide(self.trusted_keys, target.signatures)
        if not decision.required:
            return {}
        verified = set((read_json(self.verified_path) or {}).get("verified") or [])
        learnt = []
        clients: dict[tuple, registryclient.Client] = {}  # one connection per registry

        def verify(container, pems: list[str]) -> str:
            for fingerprint in decision.fingerprints:
                if f"{container.digest}|{fingerprint}" in verified:
                    return fingerprint  # verified before (pre-pull): no registry needed
            host, repository, _ = registryclient.split(container.image)
            entry = (
                None
                if container.registry_id is None
                else target.registries[_key_in(target.registries, container.registry_id)]
            )
            creds = None
            if entry and entry.get("username"):
                creds = (str(entry["username"]), str(entry.get("password") or ""))
            url = (entry or {}).get("url")
            client = clients.get((host, url, creds))
            if client is None:
                client = clients[(host, url, creds)] = registryclient.Client(
                    host, url, creds, REGISTRY_TIMEOUT
                )
            fingerprint = signing.verify_image(client, repository, container.digest, pems)
            learnt.append(f"{container.digest}|{fingerprint}")
            verified.add(learnt[-1])  # another container of the same image: asked once
            return fingerprint

        try:
            signed = trust.check(target.containers, decision, verify)
        finally:
            for client in clients.values():
                client.close()
            if learnt:
                self._remember_verified(learnt)
        log.info(
            "berth release %s on %s: signatures verified (%s): %s",
            target.release_id,
            self.device,
            decision.source,
            ", ".join(f"{c} by {k}" for c, k in signed.items()),
        )
        return signed

    def _remember_verified(self, entries: list[str]) -> None:
        known = [e for e in (read_json(self.verified_path) or {}).get("verified") or []]
        known = [e for e in known if e not in entries] + entries
        try:
            write_json(self.verified_path, {"verified": known[-VERIFIED_LIMIT:]})
        except OSError as exc:  # the next apply verifies again
            log.warning("berth release on %s: cannot remember signatures: %s", self.device, exc)

    def _space_shortfall(self, steps: list[st.Step], target: Target) -> str | None:
        """Why the images to pull do not fit on the engine's disk (None: they fit)."""
        pulls = []
        for step in steps:
            if isinstance(step, st.Pull):
                entry = (
                    None
                    if step.registry is None
                    else target.registries[_key_in(target.registries, step.registry)]
                )
                pulls.append((step.ref, entry, (entry or {}).get("url")))
        try:
            return space.shortfall(self.cli, pulls, self.space_factor, self.space_margin)
        except Exception as exc:  # noqa: BLE001 - an estimate must never block a release
            log.warning("berth release on %s: free space not checked: %s", self.device, exc)
            return None

    def _forward(self, step: st.Step, target: Target, changes: dict) -> None:
        self._at(step.action)
        self._forward_step(step, target, changes)
        self._at(step.action + ":done")

    def _forward_step(self, step: st.Step, target: Target, changes: dict) -> None:  # noqa: C901 - one match case per step kind, each a few calls
        match step:
            case st.Login():
                entry = target.registries[_key_in(target.registries, step.registry)]
                dockerutil.login(
                    self.cli,
                    entry["url"],
                    str(entry.get("username") or ""),
                    str(entry.get("password") or ""),
                )
                self.remember_login(self.login_key(entry))
                changes.setdefault("logged_in", []).append(dockerutil.registry_host(entry["url"]))
            case st.Pull():
                auth = None
                if step.registry is not None:
                    entry = target.registries[_key_in(target.registries, step.registry)]
                    auth = {"username": entry.get("username"), "password": entry.get("password")}
                log.info(
                    "berth release %s on %s: pulling %s", target.release_id, self.device, step.ref
                )
                try:
                    dockerutil.pull(self.cli, step.ref, auth)
                except dockerutil.PullError as exc:
                    if "@" not in step.ref:
                        raise
                    raise StepFailed(
                        f"refused: the registry does not serve the pinned image {step.ref} "
                        f"({str(exc).split(' failed: ', 1)[-1]}); the release runs that digest or "
                        "nothing, so nothing was stopped"
                    ) from None
                changes.setdefault("pulled", []).append(step.ref)
            case st.CheckDigest():
                self._check_digest(step.ref)
            case st.Stop():
                self._undo(
                    "stopped",
                    {
                        "name": step.name,
                        "was_running": step.was_running,
                        "renamed_to": step.rename_to,
                    },
                )
                if step.was_running:
                    log.info(
                        "berth release %s on %s: stopping %s",
                        target.release_id,
                        self.device,
                        step.name,
                    )
                    self.cli.api.stop(step.name, timeout=self.stop_timeout)
                    changes.setdefault("stopped", []).append(step.name)
                if step.rename_to:
                    self.cli.api.rename(step.name, step.rename_to)
            case st.Purge():
                if os.path.lexists(step.aside):
                    raise StepFailed(
                        f"purge of {step.path}: {step.aside} already exists; refusing to overwrite it"
                    )
                self._undo("purged", {"path": step.path, "aside": step.aside})
                _purge(step.path, step.aside)
                changes.setdefault("purged", []).append(step.path)
            case st.Create():
                self._undo("created", step.name)
                kwargs = dict(
                    next(c for c in target.containers if c.fq_name == step.name).create_kwargs
                )
                image = kwargs.pop("image")
                # the device's own mount, not a release bind (berth.release.locks)
                kwargs["volumes"] = locks.mount(self.dir, step.name, kwargs.get("volumes") or [])
                # before Docker would create a missing one unlabelled (berth.release.volumes)
                volumes.ensure(self.cli, kwargs, target.project, self.protected)
                self.cli.containers.create(image, **kwargs)
            case st.Start():
                self._parallel(self.cli.api.start, list(step.names))
                changes.setdefault("started", []).extend(step.names)
            case st.Verify():
                self._verify(list(step.names))
            case _:
                raise StepFailed(f"not a step to run before verification: {step!r}")

    def _check_digest(self, ref: str) -> None:
        """The image the engine has for ``<repo>@<digest>`` lists that digest in ``RepoDigests``."""
        digests = dockerutil.repo_digests(self.cli, ref)
        if digests is None:
            raise StepFailed(
                f"refused: the pinned image {ref} is not on the engine; nothing was stopped"
            )
        if ref not in digests:
            raise StepFailed(
                f"refused: the engine's image for {ref} does not have the pinned digest "
                f"(its digests: {', '.join(digests) or 'none'}); nothing was stopped"
            )

    def _commit(self, steps: list[st.Step], changes: dict) -> list[str]:
        """The post-verification steps; each is idempotent and tried even if an earlier one failed.

        Returns the problems; the journal is kept while there are any, so the next run retries."""
        problems = []
        for step in steps:
            if not step.commit:
                continue
            try:
                self._at(f"commit:{step.action}")
                match step:
                    case st.Remove():
                        self._parallel(self._remove_container, list(step.names))
                        changes.setdefault("removed", []).extend(step.names)
                    case st.DropPurged():
                        for aside in step.paths:
                            shutil.rmtree(aside) if os.path.isdir(aside) else _unlink(aside)
                    case st.Prune():
                        for ref in step.refs:
                            self._remove_image(ref, changes)
                    case st.Record():
                        write_json(self.applied_path, {**step.record(), "applied_at": _now()})
                    case _:
                        raise StepFailed(f"not a commit step: {step!r}")
            except Exception as exc:  # noqa: BLE001 - the new release runs; cleanup is retried later
                problems.append(f"{step.action}: {dockerutil.api_message(exc)}")
        if problems:
            log.warning(
                "berth release %s on %s: cleanup incomplete, will retry: %s",
                self._journal.get("release_id"),
                self.device,
                "; ".join(problems),
            )
        return problems

    def _remove_image(self, ref: str, changes: dict) -> None:
        try:
            self.cli.api.remove_image(ref)
            changes.setdefault("images_removed", []).append(ref)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            # in use by a container started meanwhile: keeping it is correct
            log.warning(
                "berth release on %s: keeping image %s: %s",
                self.device,
                ref,
                dockerutil.api_message(exc),
            )

    def _ensure_running(self, steps: list[st.Step]) -> list[str]:
        """The verified containers of an interrupted commit run (an engine restart since may
        have stopped those without a restart policy)."""
        problems = []
        for step in steps:
            if not isinstance(step, st.Start):
                continue
            for name in step.names:
                try:
                    state = self.cli.api.inspect_container(name).get("State") or {}
                    if not state.get("Running"):
                        self.cli.api.start(name)
                except Exception as exc:  # noqa: BLE001 - kept for the next run
                    problems.append(f"start {name}: {_reason(exc)}")
        return problems

    def _remove_container(self, name: str, wait: float = 60.0) -> None:
        """Remove ``name`` (gone already is fine). A removal a killed run left in flight inside
        the engine answers 409 "already in progress": wait for it to end."""
        deadline = time.monotonic() + wait
        while True:
            try:
                self.cli.api.remove_container(name, force=True)
                return
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                if exc.status_code != 409 or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _parallel(self, fn, items: list) -> None:
        if len(items) <= 1:
            for item in items:
                fn(item)
            return
        with ThreadPoolExecutor(max_workers=min(8, len(items))) as pool:
            for fut in [pool.submit(fn, item) for item in items]:
                fut.result()

    def _verify(self, names: list[str]) -> None:
        """Each container stays running for the settle time and, with a HEALTHCHECK, becomes healthy."""
        start = time.monotonic()
        settle_until = start + self.settle_seconds
        health_until = start + self.health_timeout
        while True:
            pending_health = []
            for name in names:
                attrs = self.cli.api.inspect_container(name)
                state = attrs.get("State") or {}
                if (
                    state.get("Status") != "running"
                    or state.get("Restarting")
                    or attrs.get("RestartCount", 0)
                ):
                    tail = _last_lines(dockerutil.logs(self.cli, name, tail=5))
                    raise StepFailed(
                        f"container {name} did not stay running (status {state.get('Status')}, "
                        f"exit code {state.get('ExitCode')}){tail}"
                    )
                health = state.get("Health")
                if health:
                    status = health.get("Status")
                    if status == "unhealthy":
                        raise StepFailed(f"container {name} is unhealthy{_health_output(health)}")
                    if status != "healthy":
                        pending_health.append(name)
            now = time.monotonic()
            if now >= settle_until and not pending_health:
                return
            if now >= health_until:
                raise StepFailed(
                    f"container(s) {', '.join(pending_health)} not healthy after "
                    f"{self.health_timeout:g} s"
                )
            time.sleep(min(0.1, max(0.0, settle_until - now)) or 0.1)

    # ---- rollback and recovery ---------------------------------------------------------

    def _rollback(self) -> list[str]:
        """Undo what the journal says was done; return the problems (empty when all is undone).

        Every undo step is safe to repeat: a retried rollback (next apply, ``release_recover``,
        minion start) runs the same list again and skips what an earlier attempt finished."""
        self._journal["phase"] = JournalPhase.ROLLING_BACK
        self._journal.setdefault("undone", [])
        self._save()
        undo = self._journal["undo"]
        errors = []

        def step(key: str, point: str, fn) -> bool:
            if key in self._journal["undone"]:
                return True
            try:
                self._at(point)
                fn()
            except Exception as exc:  # noqa: BLE001 - collected, the journal keeps the step
                errors.append(f"{key}: {_reason(exc)}")
                return False
            with self._journal_lock:
                self._journal["undone"].append(key)
            self._save()
            return True

        for name in reversed(undo["created"]):
            step(
                f"remove {name}", "rollback:remove", lambda name=name: self._remove_container(name)
            )
        for entry in reversed(undo["purged"]):
            step(
                f"restore {entry['path']}",
                "rollback:restore",
                lambda entry=entry: _restore(entry["path"], entry["aside"]),
            )
        restart = []
        for entry in reversed(undo["stopped"]):
            name = entry["name"]
            if entry["renamed_to"] and not step(
                f"rename {entry['renamed_to']}",
                "rollback:rename",
                lambda entry=entry: self._rename_back(entry["renamed_to"], entry["name"]),
            ):
                continue
            if entry["was_running"]:
                restart.append(name)

        def restart_one(name):
            step(f"restart {name}", "rollback:restart", lambda: self._restart(name))

        self._parallel(restart_one, restart)
        return errors

    def _rename_back(self, renamed: str, name: str) -> None:
        if self._exists(renamed):
            self.cli.api.rename(renamed, name)
        elif not self._exists(name):
            raise StepFailed(f"neither {renamed} nor {name} exists")

    def _restart(self, name: str) -> None:
        """Start a container the apply stopped, and check it runs.

        A killed apply's ``docker stop`` keeps running inside the engine, and ``start`` on a
        container that is still stopping is a no-op; so stop first (which waits for a stop in
        flight to end), then start."""
        try:
            self.cli.api.stop(name, timeout=self.stop_timeout)
        except docker.errors.NotFound:
            # removed by someone else meanwhile: there is nothing left to start
            log.warning("berth release rollback on %s: %s no longer exists", self.device, name)
            return
        self.cli.api.start(name)
        state = self.cli.api.inspect_container(name).get("State") or {}
        if not state.get("Running"):
            raise StepFailed(
                f"{name} is not running after start (status {state.get('Status')}, "
                f"exit code {state.get('ExitCode')})"
            )
        log.info("berth release rollback on %s: restarted %s", self.device, name)

    def _exists(self, name: str) -> bool:
        try:
            self.cli.api.inspect_container(name)
            return True
        except docker.errors.NotFound:
            return False

    def recover(self) -> str | None:
        with self.locked():
            return self._recover_locked()

    def _recover_locked(self) -> str | None:
        """Finish or roll back a run that died; returns what was done, or None.

        ``self._journal`` stays set (and the journal on disk) when the rollback or cleanup
        is still incomplete; ``self.recovery`` says what happened to which release."""
        self._journal = None
        self.recovery = None
        journal = read_json(self.journal_path, JOURNAL_KEYS)
        if journal is CORRUPT:
            return self._recover_from_engine()
        if not journal:
            return None
        try:
            steps = [st.from_dict(d) for d in journal["steps"]]
        except st.UnknownStep as exc:
            log.error("berth release on %s: journal names %s", self.device, exc)
            return self._recover_from_engine()
        self._journal = journal
        release = journal.get("release_id")
        about = {"release_id": release, "version_hash": journal.get("version_hash")}
        if journal.get("phase") == JournalPhase.COMMITTING:
            log.warning(
                "berth release %s on %s: finishing an interrupted apply", release, self.device
            )
            problems = self._ensure_running(steps) + self._commit(steps, {})
            if problems:
                message = (
                    f"interrupted apply of release {release}: cleanup still incomplete: "
                    f"{'; '.join(problems)}"
                )
                # the new release runs; only its cleanup is owed
                self.recovery = {
                    **about,
                    "outcome": ReleaseOutcome.SUCCEEDED,
                    "error": None,
                    "message": message,
                }
                return message
            self._clear_journal()
            message = f"finished interrupted apply of release {release}"
            self.recovery = {
                **about,
                "outcome": ReleaseOutcome.SUCCEEDED,
                "error": None,
                "message": message,
            }
            return message
        log.warning(
            "berth release %s on %s: rolling back an interrupted apply", release, self.device
        )
        errors = self._rollback()
        if errors:
            message = (
                f"interrupted apply of release {release}: rollback incomplete: {'; '.join(errors)}"
            )
            log.error("berth release %s on %s: %s", release, self.device, message)
            self.recovery = {
                **about,
                "outcome": ReleaseOutcome.FAILED,
                "error": message,
                "message": message,
            }
            return message
        self._clear_journal()
        message = f"rolled back interrupted apply of release {release}"
        self.recovery = {
            **about,
            "outcome": ReleaseOutcome.FAILED,
            "error": f"the apply was interrupted; {message}",
            "message": message,
        }
        return message

    def _recover_from_engine(self) -> str:  # noqa: C901 - each kind of leftover container handled in turn, in recovery order
        """The journal is unreadable: bring back the applied release from what the engine shows.

        When every container of the applied record exists, containers of other releases go,
        ``.berth-previous`` copies get their name back, purged copies made by another release
        move back (by this one: are dropped) and the applied containers are started. Otherwise
        nothing is touched and the next apply converges from the engine's state."""
        applied = self.applied()
        containers = dockerutil.list_containers(self.cli)
        by_name = {c["name"]: c for c in containers}
        note = "journal was unreadable"
        if not applied:
            self._set_journal_aside()
            return f"{note}; no applied release recorded, the next apply starts from the engine"
        vh = applied.get("version_hash")
        wanted = [c.get("fully_qualified_name") for c in applied.get("containers") or []]
        for name in wanted:
            prev = by_name.get(name + planner.PREVIOUS_SUFFIX)
            cur = by_name.get(name)
            if prev and prev["labels"].get(Label.VERSION_HASH) == vh:
                if cur and cur["labels"].get(Label.VERSION_HASH) != vh:
                    self._remove_container(name)
                    cur = None
                if cur is None:
                    self.cli.api.rename(name + planner.PREVIOUS_SUFFIX, name)
        containers = dockerutil.list_containers(self.cli)
        by_name = {c["name"]: c for c in containers}
        if not all(
            n in by_name and by_name[n]["labels"].get(Label.VERSION_HASH) == vh for n in wanted
        ):
            self._set_journal_aside()
            return (
                f"{note}; the engine does not hold release {applied.get('release_id')} complete, "
                "left as is for the next apply"
            )
        for c in containers:
            if Label.RELEASE in c["labels"] and c["labels"].get(Label.VERSION_HASH) != vh:
                self._remove_container(c["name"])
        for name in wanted:
            for bind in (self.cli.api.inspect_container(name).get("HostConfig") or {}).get(
                "Binds"
            ) or []:
                source = bind.split(":", 1)[0]
                for aside in _asides(source):
                    suffix = aside.rsplit("-", 1)[-1]
                    if suffix == str(applied.get("release_id")):
                        shutil.rmtree(aside) if os.path.isdir(aside) else _unlink(aside)
                    else:
                        _restore(source, aside)
            if by_name[name]["state"] != "running":
                self._restart(name)
        self._set_journal_aside()
        return f"{note}; release {applied.get('release_id')} brought back from the engine's state"

    def _set_journal_aside(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.journal_path, self.dir / "journal.json.unreadable")
        self._journal = None

    def _clear_journal(self) -> None:
        _unlink(self.journal_path)
        with contextlib.suppress(OSError):
            _fsync_dir(self.dir)
        self._journal = None

    def remember_login(self, key: str) -> None:
        data = read_json(self.logins_path) or {}
        verified = [k for k in data.get("verified", []) if k.split("|")[0] != key.split("|")[0]]
        verified.append(key)
        write_json(self.logins_path, {"verified": verified})

    # ---- reporting ---------------------------------------------------------------------

    def _container_report(self, target: Target) -> list[dict]:
        try:
            by_name = {c["name"]: c for c in dockerutil.list_containers(self.cli)}
        except Exception as exc:  # noqa: BLE001 - the engine went away: report, do not raise
            log.warning("berth release on %s: cannot list containers: %s", self.device, exc)
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


def _batches(steps: list[st.Step]) -> list[list[st.Step]]:
    """Consecutive stop steps (and create steps) form one batch; every other step is alone."""
    out: list[list[st.Step]] = []
    for step in steps:
        if out and isinstance(step, (st.Stop, st.Create)) and type(out[-1][0]) is type(step):
            out[-1].append(step)
        else:
            out.append([step])
    return out


def _key_in(mapping: dict, key: str):
    for k in mapping:
        if str(k) == str(key):
            return k
    raise KeyError(key)


def _unlink(path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _restore(path: str, aside: str) -> None:
    """Put purged data back (safe to repeat: does nothing once ``aside`` is gone)."""
    if not os.path.lexists(aside):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)
    os.rename(aside, path)


def _asides(path: str) -> list[str]:
    parent, base = os.path.split(path.rstrip("/"))
    prefix = base + planner.PURGED_SUFFIX + "-"
    try:
        return [os.path.join(parent, n) for n in os.listdir(parent or ".") if n.startswith(prefix)]
    except OSError:
        return []


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (StepFailed, dockerutil.PullError, dockerutil.RegistryLoginError)):
        return str(exc)
    return f"{type(exc).__name__}: {dockerutil.api_message(exc)}"


def _purge(path: str, aside: str) -> None:
    """Move ``path`` aside (kept for rollback) and leave an empty one of the same kind."""
    if not os.path.lexists(path):
        return
    is_dir = os.path.isdir(path)
    mode = os.stat(path).st_mode & 0o7777
    os.rename(path, aside)
    if is_dir:
        os.mkdir(path, mode)
    else:
        open(path, "a").close()
        os.chmod(path, mode)


def _last_lines(text: str) -> str:
    text = text.strip()
    return f"; last output: {text[-500:]}" if text else ""


def _health_output(health: dict) -> str:
    entries = health.get("Log") or []
    if not entries:
        return ""
    last = entries[-1]
    return f" (health check exit code {last.get('ExitCode')}: {str(last.get('Output') or '').strip()[:300]})"
