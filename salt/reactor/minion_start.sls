#!py
"""Reactor for ``salt/minion/<id>/start`` (a device (re)connected): fresh pillar, registry
logins and the pre-pull of a pending release (``state.sls docker.minion_start`` on that
minion). The release itself is applied on the device's sleep path (salt/docker/sleep.sls).

Python, not a template: the minion id is a list target given as data (never a glob, never
text parsed as YAML or Jinja), the reaction's ID is a constant (docs/security.md "1.").
"""


def run():
    event = data if isinstance(data, dict) else {}  # noqa: F821 - set by the py renderer
    minion_id = event.get("id")
    if not isinstance(minion_id, str) or not minion_id:
        return {}
    return {
        "berth_minion_start": {
            "local.state.sls": [
                {"tgt": [minion_id]},
                {"tgt_type": "list"},
                {"args": [{"mods": "docker.minion_start"}]},
            ]
        }
    }
