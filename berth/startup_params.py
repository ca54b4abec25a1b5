"""The one definition of a container's ``startup_parameters``.

The API calls :func:`validate` so a bad value is a 400 naming the field, never a
failure on the device; the release engine calls :func:`to_create_kwargs` to turn
the same parameters into Docker SDK ``containers.create`` keyword arguments.

Supported keys and accepted shapes:

``environment``
    a shell-quoted string (``"A='x y' B=z"``, as in the seed), a list of
    ``KEY=VALUE`` strings, or a map ``{KEY: value}``.
``binds``
    list of ``/abs/host/path:/container/path[:ro|rw]`` strings.
``volumes``
    named volumes: list of ``NAME:/container/path[:ro|rw]`` or map ``{NAME: /container/path}``.
``ports``
    map ``{"80[/tcp|udp]": host_port | "ip:port" | null}`` or list of
    ``[ip:]host:container[/proto]`` strings.
``network_mode``
    ``host``, ``none``, ``bridge``, ``container:<name>`` or a network name.
``restart_policy``
    ``no``, ``always``, ``unless-stopped``, ``on-failure`` or ``on-failure:N``.
``privileged``
    boolean.
``command`` / ``entrypoint``
    a string (split like a shell would) or a list of strings.
``labels``
    map of string to string (keys starting with ``io.berth.`` are reserved).
``devices``
    list of ``/dev/host[:/dev/container[:rwm]]``.
``cap_add``
    list of capability names (``NET_ADMIN`` or ``CAP_NET_ADMIN``).
``mem_limit``
    bytes as an integer or a string like ``512m``, ``1g``.
``user``
    ``name``, ``uid``, ``name:group`` or ``uid:gid``.
``working_dir``
    absolute path.
``log_config``
    ``{"type": driver, "config": {str: str}}``.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable
from typing import Any

from berth.contract import RESERVED_LABEL_PREFIX

_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAMED_VOLUME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MEM = re.compile(r"^[0-9]+(\.[0-9]+)?\s*([bkmg]b?)?$", re.IGNORECASE)
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")
_CAP = re.compile(r"^(CAP_)?[A-Z_]+$")
_NETWORK = re.compile(r"^(host|none|bridge|container:[A-Za-z0-9_.-]+|[A-Za-z0-9][A-Za-z0-9_.-]*)$")
_RESTART = re.compile(r"^(no|always|unless-stopped|on-failure(:([0-9]+))?)$")
_PORT = re.compile(r"^([0-9]{1,5})(/(tcp|udp|sctp))?$")
_PORT_NUMBER = re.compile(r"^[0-9]{1,5}$")
_LOG_DRIVER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MODES = ("ro", "rw")


def _whole(value: Any) -> int | None:
    """An integer, or a float with no fraction (``80.0``: JSON Schema's integers include it)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


class StartupParameterError(ValueError):
    """Raised by :func:`to_create_kwargs` with the same per-field errors as :func:`validate`."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))


class _Invalid(Exception):
    pass


def _str_or_list(value: Any, what: str) -> list[str]:
    if isinstance(value, str):
        try:
            parts = shlex.split(value)
        except ValueError as exc:
            raise _Invalid(f"Not a valid shell-quoted {what}: {exc}.") from None
        if not parts:
            raise _Invalid(f"The {what} must not be empty.")
        return parts
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise _Invalid(f"Expected a string or a non-empty list of strings for the {what}.")


def _environment(value: Any) -> dict[str, str]:  # noqa: C901 - the three accepted forms (map, list, shell string) and their value rules
    if isinstance(value, dict):
        items = []
        for key, val in value.items():
            if isinstance(val, bool):
                val = "true" if val else "false"
            elif val is None:
                val = ""
            elif not isinstance(val, (str, int, float)):
                raise _Invalid(f"Value of {key!r} must be a string or a number.")
            items.append((str(key), str(val)))
    else:
        if isinstance(value, str):
            try:
                entries = shlex.split(value)
            except ValueError as exc:
                raise _Invalid(f"Not a valid shell-quoted string: {exc}.") from None
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            entries = value
        else:
            raise _Invalid("Expected a shell-quoted string, a list of KEY=VALUE strings or a map.")
        items = []
        for entry in entries:
            if "=" not in entry:
                raise _Invalid(f"{entry!r} is not KEY=VALUE.")
            key, _, val = entry.partition("=")
            items.append((key, val))
    env = {}
    for key, val in items:
        if not _ENV_KEY.fullmatch(key):
            raise _Invalid(f"{key!r} is not a valid environment variable name.")
        env[key] = val
    return env


def _split_mount(spec: str) -> tuple[str, str, str]:
    parts = spec.split(":")
    if len(parts) == 2:
        parts.append("rw")
    if len(parts) != 3 or parts[2] not in _MODES:
        raise _Invalid(f"{spec!r} is not SOURCE:/container/path[:ro|rw].")
    src, dst, mode = parts
    if not dst.startswith("/"):
        raise _Invalid(f"{spec!r}: the container path must be absolute.")
    return src, dst, mode


def _binds(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Invalid("Expected a list of '/host/path:/container/path[:ro|rw]' strings.")
    out = []
    for spec in value:
        src, dst, mode = _split_mount(spec)
        if not src.startswith("/"):
            raise _Invalid(
                f"{spec!r}: the host path must be absolute (use 'volumes' for named volumes)."
            )
        out.append(f"{src}:{dst}:{mode}")
    return out


def _volumes(value: Any) -> list[str]:
    if isinstance(value, dict):
        value = (
            [f"{k}:{v}" for k, v in value.items() if isinstance(v, str)]
            if all(isinstance(v, str) for v in value.values())
            else None
        )
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Invalid(
            "Expected a list of 'NAME:/container/path[:ro|rw]' strings or a map NAME -> path."
        )
    out = []
    for spec in value:
        src, dst, mode = _split_mount(spec)
        if not _NAMED_VOLUME.fullmatch(src):
            raise _Invalid(
                f"{spec!r}: {src!r} is not a valid volume name (host paths go in 'binds')."
            )
        out.append(f"{src}:{dst}:{mode}")
    return out


def _ip_address(text: str) -> bool:
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _host_port(value: Any, where: str) -> int | tuple[str, int] | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise _Invalid(f"{where}: host port must be a number, 'ip:port' or null.")
    if (whole := _whole(value)) is not None:
        port = whole
        ip = None
    elif isinstance(value, str):
        ip, _, port_s = value.rpartition(":")
        if not _PORT_NUMBER.fullmatch(port_s):
            raise _Invalid(f"{where}: {value!r} is not a port or 'ip:port'.")
        port = int(port_s)
        if ip and not _ip_address(ip):
            raise _Invalid(
                f"{where}: {ip!r} is not an IP address (Docker binds host ports to one)."
            )
    else:
        raise _Invalid(f"{where}: host port must be a number, 'ip:port' or null.")
    if not 1 <= port <= 65535:
        raise _Invalid(f"{where}: port {port} is out of range 1-65535.")
    return (ip, port) if ip else port


def _container_port(key: str) -> str:
    match = _PORT.fullmatch(key)
    if not match or not 1 <= int(match.group(1)) <= 65535:
        raise _Invalid(f"{key!r} is not a container port like '80' or '80/tcp'.")
    return f"{match.group(1)}/{match.group(3) or 'tcp'}"


def _ports(value: Any) -> dict[str, Any]:
    ports: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, host in value.items():
            ports[_container_port(str(key))] = _host_port(host, str(key))
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        for spec in value:
            head, _, container = spec.rpartition(":")
            if not head:
                raise _Invalid(f"{spec!r} is not '[ip:]host:container[/proto]'.")
            ports[_container_port(container)] = _host_port(head, spec)
    else:
        raise _Invalid(
            "Expected a map {container_port: host_port} or a list of '[ip:]host:container' strings."
        )
    return ports


def _network_mode(value: Any) -> str:
    if not isinstance(value, str) or not _NETWORK.fullmatch(value):
        raise _Invalid("Expected 'host', 'none', 'bridge', 'container:<name>' or a network name.")
    return value


def _restart_policy(value: Any) -> dict[str, Any]:
    if not isinstance(value, str) or not _RESTART.fullmatch(value):
        raise _Invalid(
            "Expected one of 'no', 'always', 'unless-stopped', 'on-failure', 'on-failure:N'."
        )
    name, _, count = value.partition(":")
    policy: dict[str, Any] = {"Name": "" if name == "no" else name}
    if name == "on-failure":
        policy["MaximumRetryCount"] = int(count or 0)
    return policy


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("Expected true or false.")
    return value


def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and k for k in value):
        raise _Invalid("Expected a map of label names to string values.")
    for key, val in value.items():
        if not isinstance(val, str):
            raise _Invalid(f"Label {key!r} must have a string value.")
        if key.startswith(RESERVED_LABEL_PREFIX):
            raise _Invalid(f"Label {key!r} uses the reserved prefix {RESERVED_LABEL_PREFIX!r}.")
    return dict(value)


def _devices(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Invalid("Expected a list of '/dev/host[:/dev/container[:rwm]]' strings.")
    for spec in value:
        parts = spec.split(":")
        if (
            len(parts) > 3
            or not all(p.startswith("/") for p in parts[:2])
            or (len(parts) == 3 and not re.fullmatch(r"[rwm]{1,3}", parts[2]))
        ):
            raise _Invalid(f"{spec!r} is not '/dev/host[:/dev/container[:rwm]]'.")
    return list(value)


def _cap_add(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(
        isinstance(v, str) and _CAP.fullmatch(v) for v in value
    ):
        raise _Invalid("Expected a list of capability names such as 'NET_ADMIN'.")
    return list(value)


def _mem_limit(value: Any) -> int | str | None:
    whole = _whole(value)
    if not (
        (whole is not None and whole > 0)
        or (isinstance(value, str) and _MEM.fullmatch(value.strip()))
    ):
        raise _Invalid("Expected a positive number of bytes or a size like '512m' or '1g'.")
    return value.strip().lower() if isinstance(value, str) else whole


def _user(value: Any) -> str:
    if (whole := _whole(value)) is not None and whole >= 0:
        return str(whole)
    if not isinstance(value, str) or not _USER.fullmatch(value):
        raise _Invalid("Expected a user name or uid, optionally ':group' or ':gid'.")
    return value


def _working_dir(value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise _Invalid("Expected an absolute path.")
    return value


def _log_config(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) - {"type", "config"} or "type" not in value:
        raise _Invalid("Expected {'type': driver, 'config': {option: value}}.")
    if not isinstance(value["type"], str) or not _LOG_DRIVER.fullmatch(value["type"]):
        raise _Invalid("'type' must be a logging driver name such as 'json-file'.")
    config = value.get("config") or {}
    if not isinstance(config, dict) or not all(isinstance(v, str) for v in config.values()):
        raise _Invalid("'config' must be a map of option names to string values.")
    return {"type": value["type"], "config": dict(config)}


# key -> (converter, docker SDK keyword)
_PARAMS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "environment": (_environment, "environment"),
    "binds": (_binds, "volumes"),
    "volumes": (_volumes, "volumes"),
    "ports": (_ports, "ports"),
    "network_mode": (_network_mode, "network_mode"),
    "restart_policy": (_restart_policy, "restart_policy"),
    "privileged": (_bool, "privileged"),
    "command": (lambda v: _str_or_list(v, "command"), "command"),
    "entrypoint": (lambda v: _str_or_list(v, "entrypoint"), "entrypoint"),
    "labels": (_labels, "labels"),
    "devices": (_devices, "devices"),
    "cap_add": (_cap_add, "cap_add"),
    "mem_limit": (_mem_limit, "mem_limit"),
    "user": (_user, "user"),
    "working_dir": (_working_dir, "working_dir"),
    "log_config": (_log_config, "log_config"),
}

SUPPORTED = tuple(_PARAMS)


def _convert(params: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    if params is None:
        return {}, {}
    if not isinstance(params, dict):
        return {}, {"non_field_errors": ["Expected a map of startup parameters."]}
    kwargs: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for key, value in params.items():
        if key not in _PARAMS:
            errors[key] = [f"Unknown startup parameter. Supported: {', '.join(SUPPORTED)}."]
            continue
        converter, sdk_key = _PARAMS[key]
        try:
            converted = converter(value)
        except _Invalid as exc:
            errors[key] = [str(exc)]
            continue
        if sdk_key == "volumes":
            kwargs.setdefault("volumes", []).extend(converted)
        else:
            kwargs[sdk_key] = converted
    return kwargs, errors


def validate(params: Any) -> dict[str, list[str]]:
    """Return ``{field: [message]}`` for every bad startup parameter; empty when valid."""
    return _convert(params)[1]


def to_create_kwargs(params: Any) -> dict[str, Any]:
    """Docker SDK ``containers.create`` keyword arguments for these startup parameters."""
    kwargs, errors = _convert(params)
    if errors:
        raise StartupParameterError(errors)
    return kwargs
