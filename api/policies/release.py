"""An account's release policy: what a release may ask of its devices' hosts (docs/security.md).

Defaults accept the seed's release body verbatim (privileged, host network, its binds):

* binds and devices of sensitive host paths (``berth.release.policy.SENSITIVE_PATHS``: ``/``,
  ``/etc``, ``/proc``, ``/sys``, ``/boot``, ``/dev`` except the listed device nodes, Docker and
  containerd sockets and data, Salt's directories, ...) are refused, 400 naming the field;
* ``privileged``, ``cap_add`` and ``devices`` are allowed unless switched off per account;
* ``purge_data`` is refused when a bind source is a sensitive path (even one the account may bind);
* ``remove_containers`` may not name a protected container (``salt-minion``, ...).
* ``network_mode: container:<ref>`` may not join a protected container, nor use a reference that
  could be a container id.

Set with ``flask --app api accounts release-policy NAME ...``. The device enforces the same
rules itself (``berth.release.policy.enforce``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import g
from sqlalchemy import JSON, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from api.extensions import db
from api.models.types import UTCDateTime, utcnow
from berth.release import policy as rules


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
    protected_containers: Mapped[list[str] | None] = mapped_column(JSON)
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
            "protected_containers": self.protected,
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
        )
    return row


def _current() -> ReleasePolicy:
    cached = g.get("_release_policy")
    if cached is None:
        cached = g._release_policy = policy_for(g.account.id)
    return cached


def container_errors(container: dict[str, Any]) -> dict[str, Any]:
    """Errors of one validated container of a release body, DRF-shaped: ``{"startup_parameters":
    {"binds": [...]}, "purge_data": [...]}``; empty when the account's policy allows it."""
    policy = _current()
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
    return errors


def remove_containers_errors(names: list[str]) -> list[str]:
    import fnmatch

    protected = _current().protected
    return [
        f'"{n}" is a protected container; a release may not remove it.'
        for n in names
        if any(fnmatch.fnmatchcase(n, p) for p in protected)
    ]
