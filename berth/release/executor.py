"""The release engine of one device: a Docker engine, a state directory and the options of an apply.

:class:`Executor` holds what every job of the engine shares and calls into the module that
does the job:

* :mod:`berth.release.statefiles`  state files (``applied.json``, ``logins.json``, ...) and the lock
* :mod:`berth.release.journal`     the apply's journal and its typed undo list
* :mod:`berth.release.apply`       an apply, a pre-pull, each step type mapped to its call
* :mod:`berth.release.recovery`    rollback, and recovery of an apply that died
* :mod:`berth.release.purge`       purged data moved aside and put back
* :mod:`berth.release.trust`       which signatures the device requires, checked before a pull
* :mod:`berth.release.result`      :class:`~berth.release.result.ApplyResult`, the result event
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from berth import dockerutil
from berth.release import apply as applying
from berth.release import plan as planner
from berth.release import policy, recovery, trust
from berth.release import steps as st
from berth.release.apply import StepFailed
from berth.release.journal import JOURNAL_KEYS, Journal
from berth.release.model import EngineState, Target
from berth.release.result import ApplyResult, RecoveryResult
from berth.release.statefiles import (
    CORRUPT,
    Corrupt,
    ReleaseBusy,
    StateFiles,
    read_json,
    write_json,
)

__all__ = [
    "CORRUPT",
    "Corrupt",
    "Executor",
    "ReleaseBusy",
    "StepFailed",
    "read_json",
    "write_json",
]


class Executor:
    def __init__(
        self,
        cli: Any,
        state_dir: str | Path,
        *,
        settle_seconds: float = 3.0,
        health_timeout: float = 60.0,
        stop_timeout: int = 10,
        device: str = "device",
        space_factor: float = 3.0,
        space_margin_mb: float = 64,
        protected: tuple[str, ...] = policy.PROTECTED_CONTAINERS,
        trusted_keys: Any = None,
    ) -> None:
        self.cli = cli
        self.files = StateFiles(state_dir)
        self.dir = self.files.dir
        self.journal_path = self.files.journal_path
        self.applied_path = self.files.applied_path
        self.settle_seconds = float(settle_seconds)
        self.health_timeout = max(float(health_timeout), self.settle_seconds)
        self.stop_timeout = int(stop_timeout)
        self.device = device  # for log lines
        self.space_factor = float(space_factor)  # 0: free space not checked
        self.space_margin = int(float(space_margin_mb) * 1e6)
        self.protected = tuple(protected)  # containers whose volumes a release never mounts
        # the minion option berth_trusted_keys, as configured (berth.release.trust)
        self.trusted_keys = trusted_keys
        self.journal: Journal | None = None  # while an apply runs (or its rollback is owed)
        # fault-injection tests set this to kill the process at a named point (see _at)
        self.fault_hook: Callable[[str], None] | None = None
        # what the last recovery did to which release
        self.recovery: RecoveryResult | None = None

    def _at(self, point: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(point)

    # ---- observation -------------------------------------------------------------------

    def applied(self) -> dict[str, Any] | None:
        return self.files.applied()

    def pending(self) -> dict[str, Any] | None:
        """The journal of an apply that is not finished or rolled back yet (None when there is none)."""
        return read_json(self.journal_path, JOURNAL_KEYS) or None

    def verified_logins(self) -> set[str]:
        return self.files.verified_logins()

    def remember_login(self, key: str) -> None:
        self.files.remember_login(key)

    def observe(self) -> EngineState:
        return EngineState(
            containers=dockerutil.list_containers(self.cli),
            images=dockerutil.local_image_refs(self.cli),
            applied=self.applied(),
            logged_in=self.verified_logins(),
        )

    def login_key(self, entry: dict[str, Any]) -> str:
        # the password is kept only as a keyed digest; the key is private to this device
        digest = self.files.password_digest(str(entry.get("password") or ""))
        return planner.login_key(
            dockerutil.registry_host(entry["url"]), str(entry.get("username") or ""), digest
        )

    def login_keys(self, target: Target) -> dict[str, str]:
        return {str(rid): self.login_key(entry) for rid, entry in target.registries.items()}

    def plan(self, target: Target, current: EngineState | None = None) -> list[st.Step]:
        current = current or self.observe()
        return planner.plan(current, target, self.login_keys(target))

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self.files.locked():
            yield

    # ---- the jobs --------------------------------------------------------------------

    def run(self, target: Target, ignore_locks: bool = False) -> ApplyResult:
        """Bring the engine to ``target`` (:func:`berth.release.apply.apply`)."""
        return applying.apply(self, target, ignore_locks)

    def apply(self, target: Target, ignore_locks: bool = False) -> dict[str, Any]:
        """:meth:`run`'s answer as ``docker.release_apply`` returns it."""
        return self.run(target, ignore_locks).as_dict()

    def pull(self, target: Target) -> dict[str, list[str]]:
        return applying.pull(self, target)

    def recover(self) -> str | None:
        with self.locked():
            return recovery.recover_locked(self)

    def check_signatures(self, target: Target) -> dict[str, str]:
        return trust.verify_target(self.files, target, self.trusted_keys, self.device)

    # ---- the parts the jobs share (fault-injection tests replace some) -----------------

    def _space_shortfall(self, steps: list[st.Step], target: Target) -> str | None:
        return applying.space_shortfall(self, steps, target)

    def _verify(self, names: list[str]) -> None:
        applying.verify(self, names)

    def _commit(self, steps: list[st.Step], changes: dict[str, list[str]]) -> list[str]:
        return applying.commit(self, steps, changes)

    def remove_container(self, name: str) -> None:
        applying.remove_container(self, name)

    def clear_journal(self) -> None:
        self.files.clear_journal()
        self.journal = None

    def set_journal_aside(self) -> None:
        self.files.set_journal_aside()
        self.journal = None
