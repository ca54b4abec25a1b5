"""What a release may ask of a device's host: which host paths it may bind (an allow-list, with
a deny-list of sensitive paths as a second line), device nodes, protected containers
(docs/security.md, "Release policy").

One definition, used twice:

* by the API (``api/policies/release.py``) so a release that binds ``/etc`` or ``/home``, or
  removes ``salt-minion``, is a 400 naming the field;
* by the device (:func:`enforce`, called on every release target the ``docker.*`` functions
  build): even a forged pillar can never make it bind-mount a path outside its data roots and
  the account's bind prefixes, or a system path at all, rename or delete one (``purge_data``),
  or remove a protected container. Here paths are also resolved (``os.path.realpath``), so a
  symlink into ``/etc`` does not get through.

A bind source must be under a data root (:data:`DEFAULT_DATA_ROOTS`, or the device's own list)
or under one of the account's bind prefixes (an audited policy; they reach the device in pillar
``docker:release:bind_prefixes``), and must never touch a sensitive path (:func:`sensitive`):
no prefix opens one. Named volumes are Docker's own storage and are not host paths; which of
them a release may mount is :mod:`berth.release.volumes` (it needs the engine).

Device minion options (all optional):

``docker.release_data_roots``            bind (and purge) only under these directories
                                         (default :data:`DEFAULT_DATA_ROOTS`)
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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from berth.release.model import Target

# Where a release may bind host paths unless the device (``docker.release_data_roots``) lists its
# own: the directories Berth's documented device layout keeps application data in.
DEFAULT_DATA_ROOTS: tuple[str, ...] = ("/data", "/srv/data", "/home/balenaEngine/data")

# At most this many bind prefixes come with a release (pillar), each at most this long.
MAX_BIND_PREFIXES = 32
MAX_BIND_PREFIX_LENGTH = 255

# Binding any of these (or anything under them, or a parent of them) gives a container the host.
# The second line behind the allow-list: no account bind prefix opens one.
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
    "/run/balena.sock",
    "/var/run/balena.sock",
    "/run/podman",
    "/var/run/podman",
    "/run/crio",
    "/var/run/crio",
    "/run/containers",
    "/var/lib/containers",
    "/run/k3s",
    "/var/lib/rancher",
    "/var/lib/kubelet",
    "/run/snapd.socket",
    "/run/snapd-snap.socket",
    "/var/lib/snapd",
    "/var/snap/lxd",
    "/var/lib/lxd",
    "/run/libvirt",
    "/var/run/libvirt",
    # D-Bus, systemd and per-user runtime dirs (their sockets run anything as root or the user)
    "/run/dbus",
    "/var/run/dbus",
    "/run/systemd",
    "/var/run/systemd",
    "/var/lib/systemd",
    "/run/user",
    "/var/run/user",
    "/run/sudo",
    "/var/lib/sudo",
    # what runs things later: cron and at spools
    "/var/spool/cron",
    "/var/spool/at",
    "/var/spool/anacron",
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


def under_any(path: str, roots: Iterable[str]) -> bool:
    """``path`` is one of ``roots`` or under one (both normalised)."""
    path = normalize(path)
    return any(_under(path, normalize(r)) for r in roots)


def prefix_problem(prefix: object) -> str | None:
    """Why ``prefix`` cannot be an account's bind prefix, or None."""
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        return "give an absolute path"
    if len(prefix) > MAX_BIND_PREFIX_LENGTH or "\x00" in prefix:
        return f"at most {MAX_BIND_PREFIX_LENGTH} characters, no NUL"
    path = normalize(prefix)
    if path == "/":
        return "the whole host cannot be allowed"
    hit = sensitive(path, device_nodes=())
    if hit and _under(path, hit):
        return f"{path} is a sensitive path ({hit}); no bind prefix opens one"
    return None


def bind_prefixes(value: object) -> tuple[str, ...]:
    """Pillar ``bind_prefixes`` of a release, checked: a list of at most
    :data:`MAX_BIND_PREFIXES` absolute paths; raises ``ValueError`` naming the problem."""
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_BIND_PREFIXES:
        raise ValueError(f"'bind_prefixes' must be a list of at most {MAX_BIND_PREFIXES} paths")
    out = []
    for prefix in value:
        problem = prefix_problem(prefix)
        if problem:
            raise ValueError(f"'bind_prefixes': {str(prefix)[:80]!r}: {problem}")
        out.append(normalize(prefix))
    return tuple(dict.fromkeys(out))


# Docker resolves ``container:<ref>`` as a full container id, then a name, then an id prefix:
# a reference of hex digits only may name any container on the engine.
_CONTAINER_ID = re.compile(r"^[0-9a-fA-F]+$")


def joined_container(network_mode: object, protected: Iterable[str]) -> str | None:
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


def _option(opts: dict[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
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


def data_roots(opts: dict[str, Any]) -> tuple[str, ...]:
    """This device's data roots (``docker.release_data_roots``, else :data:`DEFAULT_DATA_ROOTS`)."""
    return tuple(
        normalize(r) for r in _option(opts, "docker.release_data_roots", DEFAULT_DATA_ROOTS)
    )


def protected_containers(opts: dict[str, Any]) -> tuple[str, ...]:
    """Container names (globs) a release never removes, joins or shares a volume with
    (``docker.release_protected_containers``, else :data:`PROTECTED_CONTAINERS`)."""
    return _option(opts, "docker.release_protected_containers", PROTECTED_CONTAINERS)


def violations(target: Target, opts: dict[str, Any]) -> list[str]:  # noqa: C901 - one check per device rule, each adding its reason
    """Why this device must refuse ``target`` (a :class:`berth.release.model.Target`); [] when it may apply it."""
    roots = data_roots(opts)
    protected = protected_containers(opts)
    allowed = _option(opts, "docker.release_allowed_host_paths", ())
    nodes = _option(opts, "docker.release_device_nodes", DEVICE_NODES)
    prefixes = tuple(getattr(target, "bind_prefixes", ()) or ())
    may_bind = (*roots, *prefixes, *allowed)
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
                if not under_any(path, may_bind):
                    problems.append(
                        f"container {c.name!r}: bind of {src!r} ({path}) is outside the data roots "
                        f"({', '.join(roots)}) and the account's bind prefixes"
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
                elif not any(_under(resolved, r) and resolved != r for r in (*roots, *prefixes)):
                    reason = f"outside the data roots ({', '.join(roots)}) and bind prefixes"
                if reason:
                    problems.append(f"container {c.name!r}: purge_data of {path!r}: {reason}")
                    break
    for name in target.remove_containers:
        if any(fnmatch.fnmatchcase(name, p) for p in protected):
            problems.append(f"remove_containers: {name!r} is a protected container")
    return problems


def enforce(target: Target | None, opts: dict[str, Any]) -> None:
    """Raise ``ReleaseError`` before any step when the release asks
    for something this device never does."""
    if target is None:
        return
    problems = violations(target, opts)
    if problems:
        from berth.release.images import ReleaseError

        raise ReleaseError("refused by the device's release policy: " + "; ".join(problems))
