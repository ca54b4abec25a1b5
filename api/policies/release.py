"""An account's release policy: what a release may ask of its devices' hosts (docs/security.md).

Defaults accept the seed's release body verbatim (privileged, host network, its binds):

* a bind source must be under a data root (``berth.release.policy.DEFAULT_DATA_ROOTS``) or one
  of the account's bind prefixes (``--bind-prefix``, audited); else 400 naming the field;
* binds and devices of sensitive host paths (``berth.release.policy.SENSITIVE_PATHS``: ``/``,
  ``/etc``, ``/proc``, ``/sys``, ``/boot``, ``/dev`` except the listed device nodes, Docker and
  containerd sockets and data, Salt's directories, D-Bus, systemd, cron, ...) are refused, 400
  naming the field, whatever the bind prefixes;
* ``privileged``, ``cap_add`` and ``devices`` are allowed unless switched off per account;
* ``purge_data`` is refused when a bind source is a sensitive path (even one the account may
  bind), or a data root or bind prefix itself;
* ``remove_containers`` may not name a protected container (``salt-minion``, ...).
* ``network_mode: container:<ref>`` may not join a protected container, nor use a reference that
  could be a container id.
* with ``require_signatures`` (``--require-signatures``), every container of a new release is
  pinned to a digest and signed by one of the account's signing keys
  (``api/releases/signatures.py``, docs/release.md "Signatures").

Set with ``flask --app api accounts release-policy NAME ...``. The device enforces the same
rules itself (``berth.release.policy.enforce``); the bind prefixes reach it with the release.

A stored release is checked again against the account's current policy (:func:`refusal`) when it
gains devices and whenever pillar is served: a release the policy now refuses is served to no
device, and its deployments list says why (status ``refused_by_policy``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from flask import g
from sqlalchemy import JSON, ForeignKey, false
from sqlalchemy.orm import Mapped, mapped_column

from api.deployments.targets import target_release_id
from api.extensions import db
from api.releases.models import Release
from api.types import UTCDateTime, utcnow
from berth.release import policy as rules

log = logging.getLogger(__name__)


class ReleasePolicy(db.Model):
    __tablename__ = "release_policies"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    allow_privileged: Mapped[bool] = mapped_column(default=True)
    allow_cap_add: Mapped[bool] = mapped_column(default=True)
    allow_devices: Mapped[bool] = mapped_column(default=True)
    # None: the defaults (berth.release.policy.DEVICE_NODES / PROTECTED_CONTAINERS)
    device_nodes: Mapped[list[str] | None] = mapped_column(JSON)
    host_paths: Mapped[list[str]] = mapped_column(JSON, default=list)
    # where binds may go besides the data roots (never a sensitive path)
    bind_prefixes: Mapped[list[str] | None] = mapped_column(JSON)
    protected_containers: Mapped[list[str] | None] = mapped_column(JSON)
    # every container of a new release pinned and signed by one of the account's signing keys
    require_signatures: Mapped[bool] = mapped_column(default=False, server_default=false())
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def nodes(self) -> list[str]:
        return list(rules.DEVICE_NODES) if self.device_nodes is None else list(self.device_nodes)

    @property
    def protected(self) -> list[str]:
        if self.protected_containers is None:
            return list(rules.PROTECTED_CONTAINERS)
        return list(self.protected_containers)

    def describe(self) -> dict[str, Any]:
        return {
            "privileged": self.allow_privileged,
            "cap_add": self.allow_cap_add,
            "devices": self.allow_devices,
            "device_nodes": self.nodes,
            "host_paths": list(self.host_paths or []),
            "bind_prefixes": list(self.bind_prefixes or []),
            "protected_containers": self.protected,
            "require_signatures": bool(self.require_signatures),
        }


def policy_for(account_id: int) -> ReleasePolicy:
    """The account's policy (an unsaved default one when none was set)."""
    row = db.session.get(ReleasePolicy, account_id)
    if row is None:
        row = ReleasePolicy(
            account_id=account_id,
            allow_privileged=True,
            allow_cap_add=True,
            allow_devices=True,
            host_paths=[],
            bind_prefixes=[],
            require_signatures=False,
        )
    return row


def pillar_prefixes(policy: ReleasePolicy) -> list[str]:
    """Pillar ``docker:release:bind_prefixes``: where a device may bind besides its data roots.
    (A sensitive path the account may bind, ``host_paths``, needs the device's own
    ``docker.release_allowed_host_paths`` as well.)"""
    return list(policy.bind_prefixes or [])


def _current() -> ReleasePolicy:
    cached = g.get("_release_policy")
    if cached is None:
        cached = g._release_policy = policy_for(g.account.id)
    return cached


def container_errors(  # noqa: C901 - one branch per policy rule, each adding its field's error
    container: dict[str, Any], policy: ReleasePolicy | None = None
) -> dict[str, Any]:
    """Errors of one validated container of a release body, DRF-shaped: ``{"startup_parameters":
    {"binds": [...]}, "purge_data": [...]}``; empty when the account's policy (default: the
    request's account's) allows it."""
    policy = policy or _current()
    may_bind = (*rules.DEFAULT_DATA_ROOTS, *pillar_prefixes(policy), *(policy.host_paths or []))
    params = container.get("startup_parameters") or {}
    errors: dict[str, Any] = {}
    sp: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        sp.setdefault(field, []).append(message)

    sensitive_sources = []
    for spec in params.get("binds") or []:
        src = rules.bind_source(spec)
        hit = rules.sensitive(src, device_nodes=policy.nodes, allowed=policy.host_paths)
        if hit:
            add(
                "binds",
                f"{spec!r}: {src} is a sensitive host path ({hit}); a release may not bind it.",
            )
        elif not rules.under_any(src, may_bind):
            add(
                "binds",
                f"{spec!r}: {rules.normalize(src)} is outside the data roots "
                f"({', '.join(rules.DEFAULT_DATA_ROOTS)}) and this account's bind prefixes; "
                "use a named volume, or ask an administrator for a bind prefix (docs/security.md).",
            )
        if rules.sensitive(src, device_nodes=()):
            sensitive_sources.append(src)
    devices = params.get("devices") or []
    if devices and not policy.allow_devices:
        add("devices", "This account's release policy does not allow devices.")
    for spec in devices:
        src = spec.split(":", 1)[0]
        if rules.sensitive(src, device_nodes=policy.nodes, allowed=policy.host_paths):
            add(
                "devices",
                f"{src!r} is not an allowed device node (allowed: {', '.join(policy.nodes)}).",
            )
    joined = rules.joined_container(params.get("network_mode"), policy.protected)
    if joined:
        add("network_mode", f"Refused: {joined}.")
    if params.get("privileged") and not policy.allow_privileged:
        add("privileged", "This account's release policy does not allow privileged containers.")
    if params.get("cap_add") and not policy.allow_cap_add:
        add("cap_add", "This account's release policy does not allow cap_add.")
    if sp:
        errors["startup_parameters"] = sp
    if container.get("purge_data") and sensitive_sources:
        errors["purge_data"] = [
            f"Refused: the bind source {sensitive_sources[0]} is a sensitive host path; "
            "purge_data would rename and then delete it."
        ]
    elif container.get("purge_data"):
        roots = {rules.normalize(r) for r in (*rules.DEFAULT_DATA_ROOTS, *pillar_prefixes(policy))}
        whole = [
            s
            for s in (rules.bind_source(b) for b in params.get("binds") or [])
            if rules.normalize(s) in roots
        ]
        if whole:
            errors["purge_data"] = [
                f"Refused: the bind source {whole[0]} is a data root or bind prefix itself; "
                "purge_data would delete everything under it (bind a directory under it)."
            ]
    return errors


def remove_containers_errors(names: list[str], policy: ReleasePolicy | None = None) -> list[str]:
    import fnmatch

    protected = (policy or _current()).protected
    return [
        f'"{n}" is a protected container; a release may not remove it.'
        for n in names
        if any(fnmatch.fnmatchcase(n, p) for p in protected)
    ]


def _flat(errors: Any, where: str) -> list[str]:
    if isinstance(errors, dict):
        return [m for k, v in errors.items() for m in _flat(v, f"{where}.{k}")]
    return [f"{where}: {m}" for m in errors]


def refusal(release, policy: ReleasePolicy | None = None) -> str | None:
    """Why the account's current release policy refuses a stored release (created under an
    earlier, wider one), or None. Same rules as a new release body."""
    # a module cycle: api.releases.schemas checks a body with this module's rules
    from api.releases.serializers import container_spec

    if policy is None:
        policy = policy_for(release.project.account_id)
    problems = []
    for i, container in enumerate(release.containers):
        problems += _flat(container_errors(container_spec(container), policy), f"containers[{i}]")
    problems += [
        f"remove_containers: {m}"
        for m in remove_containers_errors(list(release.remove_containers), policy)
    ]
    if not problems:
        return None
    return "refused by the account's current release policy: " + "; ".join(problems)


# A device is a target of a handful of releases; a refused one is skipped for the next older.
_MAX_SKIPPED = 50


def served_release(device):
    """The release pillar serves ``device``: its target (``api.deployments.targets``), unless the
    account's current policy refuses it; then the next release it would fall back to, as if the
    refused one did not target it (the device keeps what it runs when there is none)."""
    policy = policy_for(device.account_id)
    skip: set[int] = set()
    while len(skip) <= _MAX_SKIPPED:
        release_id = target_release_id(device.id, frozenset(skip))
        if release_id is None:
            return None
        release = db.session.get(Release, release_id)
        reason = refusal(release, policy)
        if reason is None:
            return release
        # the reason (which quotes the release body) is in the deployments list
        log.info(
            "release %s is refused by its account's current release policy: not served to %s",
            release_id,
            device.unit_id,
        )
        skip.add(release_id)
    return None
