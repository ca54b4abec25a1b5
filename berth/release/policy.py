"""What a release may ask of a device's host: sensitive host paths, device nodes, protected
containers (docs/security.md, "Release policy").

One definition, used twice:

* by the API (``api/policies/release.py``) so a release that binds ``/etc`` or removes
  ``salt-minion`` is a 400 naming the field;
* by the device (:func:`enforce`, called on every release target the ``docker.*`` functions
  build): even a forged pillar can never make it bind-mount a system path, rename or delete one
  (``purge_data``), or remove a protected container. Here paths are also resolved
  (``os.path.realpath``), so a symlink into ``/etc`` does not get through.

Device minion options (all optional):

``docker.release_data_roots``            purge only bind sources under these directories
                                         (default: any non-sensitive path at least two levels deep)
``docker.release_protected_containers``  never removed (default :data:`PROTECTED_CONTAINERS`)
``docker.release_allowed_host_paths``    sensitive paths a release may still bind (never purge),
                                         e.g. ``/var/run/docker.sock`` for a monitoring agent
``docker.release_device_nodes``          device-node globs a release may use (default
                                         :data:`DEVICE_NODES`)
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from collections.abc import Iterable

# Binding any of these (or anything under them, or a parent of them) gives a container the host.
SENSITIVE_PATHS: tuple[str, ...] = (
    "/etc",
    "/proc",
    "/sys",
    "/boot",
    "/dev",
    "/root",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    # container engines: sockets and data
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/docker",
    "/var/run/docker",
    "/var/lib/docker",
    "/run/containerd",
    "/var/run/containerd",
    "/var/lib/containerd",
    "/run/balena-engine.sock",
    "/var/run/balena-engine.sock",
    "/var/lib/balena-engine",
    # Salt's own directories
    "/etc/salt",
    "/var/cache/salt",
    "/var/log/salt",
    "/run/salt",
    "/var/run/salt",
    "/srv/salt",
    "/srv/pillar",
    "/opt/saltstack",
)

# Device nodes a release may use (binds or ``devices``) unless the account/device lists others.
DEVICE_NODES: tuple[str, ...] = (
    "/dev/ttyUSB*",
    "/dev/ttyACM*",
    "/dev/ttyS*",
    "/dev/ttyAMA*",
    "/dev/i2c-*",
    "/dev/spidev*",
    "/dev/gpiochip*",
    "/dev/video*",
    "/dev/snd",
    "/dev/snd/*",
    "/dev/bus/usb",
    "/dev/bus/usb/*",
)

PROTECTED_CONTAINERS: tuple[str, ...] = ("salt-minion", "salt-master", "salt")


def normalize(path: str) -> str:
    """Absolute, normalised (``/data/../etc`` -> ``/etc``, ``//x`` -> ``/x``)."""
    return "/" + posixpath.normpath("/" + path).lstrip("/") if path else "/"


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def sensitive(
    path: str,
    *,
    device_nodes: Iterable[str] = DEVICE_NODES,
    allowed: Iterable[str] = (),
) -> str | None:
    """The sensitive path ``path`` touches (itself, under it, or a parent of it), or None.

    ``device_nodes`` globs under ``/dev`` and ``allowed`` paths (exact or under) are not sensitive.
    """
    path = normalize(path)
    if any(_under(path, normalize(a)) for a in allowed):
        return None
    if path == "/":
        return "/"
    if _under(path, "/dev") and path != "/dev":
        if any(fnmatch.fnmatchcase(path, g) for g in device_nodes):
            return None
        return "/dev"
    for s in SENSITIVE_PATHS:
        if _under(path, s) or _under(s, path):
            return s
    return None


def bind_source(spec: str) -> str:
    return spec.split(":", 1)[0]


# Docker resolves ``container:<ref>`` as a full container id, then a name, then an id prefix:
# a reference of hex digits only may name any container on the engine.
_CONTAINER_ID = re.compile(r"^[0-9a-fA-F]+$")


def joined_container(network_mode, protected: Iterable[str]) -> str | None:
    """Why ``network_mode: container:<ref>`` may not be used, or None.

    Joining a container's namespaces gives its network (and loopback services): a protected
    container (the salt-minion, its local API) is never joined, and a reference that could be a
    container id (or id prefix) is refused, as it may resolve to one."""
    if not isinstance(network_mode, str) or not network_mode.startswith("container:"):
        return None
    ref = network_mode.split(":", 1)[1]
    if any(fnmatch.fnmatchcase(ref, p) for p in protected):
        return f"{ref!r} is a protected container; a release may not join its namespaces"
    if _CONTAINER_ID.fullmatch(ref):
        return (
            f"{ref!r} could be a container id (Docker resolves ids and id prefixes); "
            "join a container by its name"
        )
    return None


# -- on the device -------------------------------------------------------------------------


def _option(opts: dict, key: str, default):
    value = opts.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _resolved(path: str) -> list[str]:
    """The path as written and where it really leads on this host."""
    normal = normalize(path)
    real = os.path.realpath(normal)
    return [normal] if real == normal else [normal, real]


def violations(target, opts: dict) -> list[str]:
    """Why this device must refuse ``target`` (a :class:`berth.release.model.Target`); [] when it may apply it."""
    data_roots = [normalize(r) for r in _option(opts, "docker.release_data_roots", ())]
    protected = _option(opts, "docker.release_protected_containers", PROTECTED_CONTAINERS)
    allowed = _option(opts, "docker.release_allowed_host_paths", ())
    nodes = _option(opts, "docker.release_device_nodes", DEVICE_NODES)
    problems = []
    for c in target.containers:
        for spec in c.create_kwargs.get("volumes") or []:
            src = bind_source(spec)
            if not src.startswith("/"):
                continue  # a named volume
            for path in _resolved(src):
                hit = sensitive(path, device_nodes=nodes, allowed=allowed)
                if hit:
                    problems.append(
                        f"container {c.name!r}: bind of {src!r} ({path}) touches {hit}, a system path"
                    )
                    break
        joined = joined_container(c.create_kwargs.get("network_mode"), protected)
        if joined:
            problems.append(f"container {c.name!r}: network_mode: {joined}")
        for spec in c.create_kwargs.get("devices") or []:
            src = spec.split(":", 1)[0]
            for path in _resolved(src):
                if sensitive(path, device_nodes=nodes, allowed=allowed):
                    problems.append(
                        f"container {c.name!r}: device {src!r} is not an allowed device node"
                    )
                    break
        for path in c.purge_paths:
            for resolved in _resolved(path):
                reason = None
                if sensitive(
                    resolved, device_nodes=()
                ):  # never purge a system path, allowed or not
                    reason = "a system path"
                elif resolved.count("/") < 2:
                    reason = "a top-level directory"
                elif data_roots and not any(
                    _under(resolved, r) and resolved != r for r in data_roots
                ):
                    reason = f"outside the data roots ({', '.join(data_roots)})"
                if reason:
                    problems.append(f"container {c.name!r}: purge_data of {path!r}: {reason}")
                    break
    for name in target.remove_containers:
        if any(fnmatch.fnmatchcase(name, p) for p in protected):
            problems.append(f"remove_containers: {name!r} is a protected container")
    return problems


def enforce(target, opts: dict) -> None:
    """Raise ``ReleaseError`` before any step when the release asks
    for something this device never does."""
    if target is None:
        return
    problems = violations(target, opts)
    if problems:
        from berth.release.images import ReleaseError

        raise ReleaseError("refused by the device's release policy: " + "; ".join(problems))
