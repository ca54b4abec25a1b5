#!py
"""state.sls docker.sleep -- install the device's "about to sleep" hook (docs/fleet.md).

A oneshot systemd unit ordered Before=sleep.target and WantedBy=sleep.target runs
berth-before-sleep, which applies the pending release (state.sls docker.release)
while the device is idle. A power manager that does not go through sleep.target
runs the script itself and waits for it to exit before suspending.

When the minion runs the berth_localapi engine, the hook (berth.sleephook, a few
milliseconds of stdlib Python) asks the running minion to apply through the local
API and waits for the answer; salt-call (a new Salt process, seconds of CPU) is
only the fallback when the local API cannot be reached. A minion busy with another
state run is waited for up to the timeout; after that the hook has the device report
the release failed with the reason (docs/fleet.md "A busy minion"). The salt-call
fallback keeps the same promise (the hook runs it, reads its JSON result, retries it
while the minion is busy and reports with the same salt-call line).

Settings (minion config or pillar, via config.get):
  berth:sleep:script    path of the hook script   (/usr/local/sbin/berth-before-sleep)
  berth:sleep:unit_dir  systemd unit directory    (/etc/systemd/system)
  berth:sleep:timeout   seconds the hook waits for a busy minion / a salt-call that has not
                        started (1200: pulls were done while awake); the unit allows
                        120 s more, for the failure report (queued on the device
                        when the master is away)
  berth:sleep:salt_call salt-call to run          (next to the minion's python, else PATH)

Python, not a template: every setting is data. Paths are checked (absolute, no space,
quote, newline, `%` or `$`: they end up in a systemd unit) and every word of the hook
script is shell-quoted, so no setting becomes YAML, Jinja, shell or unit syntax
(docs/security.md "1.").
"""

import re
import shlex

SAFE_PATH = re.compile(r"/[A-Za-z0-9._/@+-]*\Z")
SAFE_COMMAND = re.compile(r"[A-Za-z0-9._/@+-]+\Z")


def _config(key, default):
    return __salt__["config.get"](key, default)  # noqa: F821 - set by the py renderer


def _path(key, default, pattern=SAFE_PATH):
    value = _config(key, default)
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(
            f"{key} must be an absolute path of letters, digits and ._/@+- only, got {value!r}"
        )
    return value


def _timeout():
    value = _config("berth:sleep:timeout", 1200)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"berth:sleep:timeout must be a whole number, got {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"berth:sleep:timeout must be a whole number, got {value!r}") from None
    if number < 1:
        raise ValueError(f"berth:sleep:timeout must be a positive number, got {value!r}")
    return number


def _salt_call():
    beside_python = __grains__["pythonexecutable"].rsplit("/", 1)[0] + "/salt-call"  # noqa: F821
    default = beside_python if __salt__["file.file_exists"](beside_python) else "salt-call"  # noqa: F821
    return _path("berth:sleep:salt_call", default, SAFE_COMMAND)


def _script_text(timeout):
    opts = __opts__  # noqa: F821 - set by the py renderer
    # the release engine's lock: the hook stops a salt-call that has not started applying
    release_lock = (opts.get("docker.release_state_dir") or opts["cachedir"] + "/berth") + (
        "/release.lock"
    )
    local_api = __salt__["minionutil.local_api_url"]()  # noqa: F821
    salt_call_line = [
        _salt_call(),
        "-c",
        opts["conf_file"].rsplit("/", 1)[0],
        "--retcode-passthrough",
        "--log-level=warning",
        "--out=highstate",
        "--state-output=changes",
        "--state-verbose=False",
        "state.sls",
        "docker.release",
    ]
    hook = [__grains__["pythonexecutable"], __salt__["minionutil.sleep_hook_program"]()]  # noqa: F821
    if local_api:
        comment = "# The running minion applies (local API); salt-call only if unreachable."
        hook += ["--local-api", local_api]
        token_file = __salt__["minionutil.local_api_token_file"]()  # noqa: F821
        if token_file:  # the local API runs state.sls and reports only for its holder
            hook += ["--local-token-file", token_file]
    else:
        comment = (
            "# No local API engine: salt-call applies; the hook waits while the minion is busy and\n"
            "# has the device report failed with the reason when it cannot apply."
        )
    hook += ["--timeout", str(timeout), "--release-lock", release_lock, "--", *salt_call_line]
    return "\n".join(
        [
            "#!/bin/sh",
            "# Berth: apply the pending Docker release before this device sleeps.",
            "# Run by berth-before-sleep.service (Before=sleep.target) or by the power manager.",
            "# Exit status 0 = release applied or nothing to do; output (what changed) goes to",
            "# the journal. The device reports the outcome to the fleet API either way.",
            comment,
            "exec " + shlex.join(hook),
            "",
        ]
    )


def run():
    script = _path("berth:sleep:script", "/usr/local/sbin/berth-before-sleep")
    unit_dir = _path("berth:sleep:unit_dir", "/etc/systemd/system")
    timeout = _timeout()
    unit = unit_dir + "/berth-before-sleep.service"
    unit_text = "\n".join(
        [
            "[Unit]",
            "Description=Berth: apply the pending Docker release before the device sleeps",
            "Before=sleep.target",
            "",
            "[Service]",
            "Type=oneshot",
            f"ExecStart={script}",
            f"TimeoutStartSec={timeout + 120}",
            "",
            "[Install]",
            "WantedBy=sleep.target",
            "",
        ]
    )
    return {
        "berth-before-sleep-script": {
            "file.managed": [
                {"name": script},
                {"mode": "0755"},
                {"makedirs": True},
                {"contents": _script_text(timeout)},
            ]
        },
        "berth-before-sleep-unit": {
            "file.managed": [
                {"name": unit},
                {"mode": "0644"},
                {"makedirs": True},
                {"contents": unit_text},
                {"require": [{"file": "berth-before-sleep-script"}]},
            ]
        },
        "berth-before-sleep-daemon-reload": {
            "cmd.run": [
                {"name": "systemctl daemon-reload"},
                {"onlyif": "test -d /run/systemd/system"},
                {"onchanges": [{"file": "berth-before-sleep-unit"}]},
            ]
        },
        "berth-before-sleep-enabled": {
            "cmd.run": [
                {"name": "systemctl enable berth-before-sleep.service"},
                {
                    "onlyif": "test -d /run/systemd/system && test "
                    + shlex.quote(unit_dir)
                    + " = /etc/systemd/system"
                },
                {"unless": "systemctl is-enabled --quiet berth-before-sleep.service"},
                {"require": [{"cmd": "berth-before-sleep-daemon-reload"}]},
            ]
        },
    }
