"""The Salt options a Berth fleet needs: one definition, used by the test harness and
``scripts/demo`` (``python -m berth.master.config master|top|syndic|minion KEY=VALUE...`` prints
YAML). ``conf/master.d/berth.conf`` and ``conf/minion.d/berth.conf`` document the same options,
``conf/master.d/berth-top.conf`` and ``berth-syndic.conf`` those of a syndic topology;
the salt-api settings are read from ``conf/master.d/salt-api.conf`` itself (the one copy,
shown verbatim in docs/fleet-api.md), only its port and secret replaced.
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Callable
from typing import Any

import yaml

from berth import paths
from berth.contract import EventTag

REPO = pathlib.Path(__file__).resolve().parents[2]
# What last_logs reads: the local API's request lines are INFO (docs/device.md).
MINION_LOG_LEVEL = "info"


def salt_api_options(
    *, port: int | str, sharedsecret: str, user: str = "berth", host: str = "127.0.0.1"
) -> dict[str, Any]:
    """``conf/master.d/salt-api.conf`` with its port, secret and eauth user replaced."""
    options: dict[str, Any] = yaml.safe_load(
        (paths.conf() / "master.d" / "salt-api.conf").read_text()
    )
    options["rest_cherrypy"].update(host=host, port=int(port))
    options["sharedsecret"] = sharedsecret
    users = options["external_auth"]["sharedsecret"]
    users[user] = users.pop("berth")
    return options


def master_options(
    *,
    api_url: str,
    token_file: str | pathlib.Path,
    spool_dir: str | pathlib.Path,
    salt_api_port: int | str,
    sharedsecret: str,
    salt_api_user: str = "berth",
    flush_seconds: int = 30,
) -> dict[str, Any]:
    """One master serving the devices and the API's salt-api (the single-tier fleet)."""
    return {
        **berth_master_options(
            api_url=api_url, token_file=token_file, spool_dir=spool_dir, flush_seconds=flush_seconds
        ),
        **salt_api_options(port=salt_api_port, sharedsecret=sharedsecret, user=salt_api_user),
    }


# What the top master of a syndic topology names itself in what it publishes: the lower
# masters' ``job_return.sls`` reactor forwards the returns of jobs that carry one.
TOP_MASTER_ID = "berth-top"
JOB_RETURN_REACTOR = {"salt/job/*/ret/*": ["salt://reactor/job_return.sls"]}


def top_master_options(
    *,
    salt_api_port: int | str,
    sharedsecret: str,
    salt_api_user: str = "berth",
    master_id: str = TOP_MASTER_ID,
) -> dict[str, Any]:
    """The master of masters of a syndic topology (``conf/master.d/berth-top.conf``): it
    publishes the API's calls to every syndic, naming itself (``master_id``) so the lower
    masters know which returns to forward to the API. No Berth reactor, ext_pillar or
    credential: those live on the lower masters (docs/scale.md)."""
    return {
        "order_masters": True,
        "master_id": master_id,
        **salt_api_options(port=salt_api_port, sharedsecret=sharedsecret, user=salt_api_user),
    }


def syndic_master_options(
    *,
    api_url: str,
    token_file: str | pathlib.Path,
    spool_dir: str | pathlib.Path,
    syndic_master: str,
    syndic_master_port: int | str = 4506,
    flush_seconds: int = 30,
) -> dict[str, Any]:
    """A lower master of a syndic topology (``conf/master.d/berth-syndic.conf`` + ``berth.conf``):
    Berth's ext_pillar, reactor, runners and credential for the devices that hang off it, and
    the ``salt-syndic`` options that tie it to the top master, and the reactor that forwards
    the returns of the top master's jobs to the API (``job_return.sls``). No salt-api."""
    options = berth_master_options(
        api_url=api_url, token_file=token_file, spool_dir=spool_dir, flush_seconds=flush_seconds
    )
    return {
        **options,
        "reactor": [*options["reactor"], JOB_RETURN_REACTOR],
        "syndic_master": syndic_master,
        "syndic_master_port": int(syndic_master_port),
    }


def berth_master_options(
    *,
    api_url: str,
    token_file: str | pathlib.Path,
    spool_dir: str | pathlib.Path,
    flush_seconds: int = 30,
) -> dict[str, Any]:
    """What a master that the devices connect to needs from Berth (``conf/master.d/berth.conf``)."""
    return {
        "module_dirs": [str(REPO)],
        # what `python3 -m berth.paths state_tree` prints (docs/fleet.md)
        "file_roots": {"base": [str(paths.state_tree())]},
        "ext_pillar": [{"berth_api": {}}],
        "berth_api": {
            "url": api_url,
            "token_file": str(token_file),
            "timeout": 5,
            "spool_dir": str(spool_dir),
        },
        "pillar_cache": False,
        "reactor": [
            {EventTag.RELEASE_RESULT.value: ["salt://reactor/release_result.sls"]},
            {"salt/minion/*/start": ["salt://reactor/minion_start.sls"]},
        ],
        "schedule": {"berth-flush": {"function": "berth.flush", "seconds": int(flush_seconds)}},
    }


def minion_options(
    *,
    docker_host: str,
    hook_dir: str | pathlib.Path,
    localapi_port: int,
    settle_seconds: float = 3,
    repo: pathlib.Path = REPO,
) -> dict[str, Any]:
    hook_dir = pathlib.Path(hook_dir)
    return {
        "module_dirs": [str(repo)],
        # The on-device local API; the sleep hook applies through it (docs/fleet.md).
        # Several minions on one machine each need their own port.
        "engines": [{"berth_localapi": {"host": "127.0.0.1", "port": int(localapi_port)}}],
        "docker.url": docker_host,
        "log_level_logfile": MINION_LOG_LEVEL,
        "docker.release_settle_seconds": float(settle_seconds),
        # state.sls docker.sleep installs the hook here (default /usr/local/sbin, /etc/systemd/system)
        "berth": {
            "sleep": {
                "script": str(hook_dir / "berth-before-sleep"),
                "unit_dir": str(hook_dir / "systemd"),
            }
        },
    }


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BUILDERS:
        print(
            "usage: python -m berth.master.config master|top|syndic|minion KEY=VALUE..."
            " [--extra KEY=VALUE...]",
            file=sys.stderr,
        )
        return 2
    kind, pairs = argv[0], argv[1:]
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    target: dict[str, Any] | None = None
    for pair in pairs:
        if pair == "--extra":
            target = extra
            continue
        key, sep, value = pair.partition("=")
        if not sep:
            print(f"config: expected KEY=VALUE, got {pair!r}", file=sys.stderr)
            return 2
        (target if target is not None else known)[key] = (
            yaml.safe_load(value) if target is not None else value
        )
    builder = BUILDERS[kind]
    try:
        options = builder(**known)
    except TypeError as exc:
        print(f"config: {exc}", file=sys.stderr)
        return 2
    options.update(extra)
    yaml.safe_dump(options, sys.stdout, default_flow_style=False, sort_keys=False)
    return 0


BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {
    "master": master_options,
    "top": top_master_options,
    "syndic": syndic_master_options,
    "minion": minion_options,
}

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
