"""Which named volumes a release may mount on this device (docs/security.md "Release policy").

A named volume belongs to a project (the app), not to one release, so a new version of the same
app keeps its data: the release engine creates every volume a release names that does not exist
yet itself -- local driver, no driver options, label ``io.berth.project=<project id>`` -- before
the container that mounts it. A volume that exists already may be mounted only when

* its driver is ``local`` and it has no driver options (``type: none, o: bind, device: /etc``
  makes a "volume" a bind of any host path; Berth never creates one with options),
* no protected container (the salt-minion, ...) mounts it, and
* it carries the label of this release's project, or it has no label and every container that
  mounts it is a Berth container of this project (Docker created it for a release from before
  volumes were labelled: the upgrade path).

So a release never mounts another app's volume, one made outside Berth, or one that binds a
host path. :func:`enforce` runs before any step (a forged pillar is refused with nothing changed);
:func:`ensure` runs at each container's creation, so Docker never creates one unlabelled.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import docker.errors

from berth.contract import Label
from berth.release.images import ReleaseError
from berth.release.policy import bind_source, protected_containers

if TYPE_CHECKING:
    from berth.release.model import Target

LOCAL_DRIVER = "local"


def named(create_kwargs: dict[str, Any]) -> list[str]:
    """The named volumes (not host paths) in ``containers.create`` keyword arguments."""
    out = []
    for spec in create_kwargs.get("volumes") or []:
        src = bind_source(spec)
        if not src.startswith("/") and src not in out:
            out.append(src)
    return out


def _mounted_by(containers: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [
        c
        for c in containers
        if any(m.get("Type") == "volume" and m.get("Name") == name for m in c.get("Mounts") or [])
    ]


def problem(cli: Any, name: str, project: object, protected: Iterable[str]) -> str | None:
    """Why a release of ``project`` may not mount volume ``name``; None when it may (also when
    the volume does not exist: :func:`ensure` creates it for the project)."""
    if project is None:
        return (
            f"volume {name!r}: a named volume needs the release's project (docker:release:project)"
        )
    try:
        volume = cli.api.inspect_volume(name)
    except docker.errors.NotFound:
        return None
    driver = volume.get("Driver")
    if driver != LOCAL_DRIVER:
        return f"volume {name!r} uses the volume driver {driver!r}; only local volumes are mounted"
    options = volume.get("Options") or {}
    if options:
        return (
            f"volume {name!r} has driver options ({', '.join(sorted(options))}): it may bind a "
            "host path; Berth mounts only volumes without options"
        )
    users = _mounted_by(cli.api.containers(all=True), name)
    for c in users:
        cname = (c.get("Names") or ["/"])[0].lstrip("/")
        if any(fnmatch.fnmatchcase(cname, p) for p in protected):
            return f"volume {name!r} is mounted by {cname!r}, a protected container"
    owner = (volume.get("Labels") or {}).get(Label.PROJECT)
    if owner is None:
        if users and all((c.get("Labels") or {}).get(Label.PROJECT) == str(project) for c in users):
            return None
        return (
            f"volume {name!r} was not created by Berth for this project (no {Label.PROJECT} "
            "label); remove it or name another volume"
        )
    if owner != str(project):
        return f"volume {name!r} belongs to another project ({Label.PROJECT}={owner})"
    return None


def violations(cli: Any, target: Target, opts: dict[str, Any]) -> list[str]:
    """Why this device must refuse the named volumes of ``target``; [] when it may mount them."""
    protected = protected_containers(opts)
    problems = []
    for c in target.containers:
        for name in named(c.create_kwargs):
            reason = problem(cli, name, target.project, protected)
            if reason:
                problems.append(f"container {c.name!r}: {reason}")
    return problems


def enforce(client_factory: Callable[[], Any], target: Target | None, opts: dict[str, Any]) -> None:
    """Raise ``ReleaseError`` before any step when ``target`` names a volume it may not mount.
    ``client_factory`` is only called when the release names a volume."""
    if target is None or not any(named(c.create_kwargs) for c in target.containers):
        return
    problems = violations(client_factory(), target, opts)
    if problems:
        raise ReleaseError("refused by the device's release policy: " + "; ".join(problems))


def ensure(
    cli: Any, create_kwargs: dict[str, Any], project: object, protected: Iterable[str]
) -> list[str]:
    """Create the named volumes of one container that do not exist yet (labelled for
    ``project``) and check each again; returns the names created."""
    created = []
    for name in named(create_kwargs):
        reason = problem(cli, name, project, protected)
        if reason is None:
            try:
                cli.api.inspect_volume(name)
            except docker.errors.NotFound:
                cli.api.create_volume(
                    name, driver=LOCAL_DRIVER, labels={Label.PROJECT: str(project)}
                )
                created.append(name)
                # created meanwhile by someone else (Docker then keeps theirs): check it again
                reason = problem(cli, name, project, protected)
        if reason:
            raise ReleaseError("refused by the device's release policy: " + reason)
    return created
