#!py
"""Reactor for ``salt/job/*/ret/*`` on a *lower* master of a syndic topology: forward the return
of a job a master above published (an execute of the API) to the API through the runner
``berth.forward_return`` (docs/scale.md "The path up": Salt's syndic carries no return up).

Only a return whose data names a ``master_id`` is forwarded: the top master sets it
(``master_id`` in conf/master.d/berth-top.conf) on what it publishes, the syndic passes it on,
and the minion copies it into its return; jobs this master published itself have none.
Python, not a template: the minion id and jid come from the tag and are handed to the runner as
data, never text parsed as YAML or Jinja; the reaction's ID is a
constant (docs/security.md "1."). Whether the return may finish a job is decided by the API
(the device is served by this master's credential, the jid was published to that device).

The return's fields are *not* passed on: any minion can fire this event with another device's id
and jid (the nested ``events`` form of ``_minion_event``); the runner reads the return from this
master's job cache, which only the return request of that minion writes (docs/security.md "2.").
``master_id`` is only a cheap filter.
"""


def run():
    event = data if isinstance(data, dict) else {}  # noqa: F821 - set by the py renderer
    parts = tag.split("/") if isinstance(tag, str) else []  # noqa: F821 - set by the py renderer
    if len(parts) != 5 or parts[0] != "salt" or parts[1] != "job" or parts[3] != "ret":
        return {}
    jid, minion_id = parts[2], parts[4]
    if not jid.isdigit() or not minion_id or not event.get("master_id"):
        return {}
    return {
        "berth_job_return": {
            "runner.berth.forward_return": [
                {
                    "args": [
                        {"minion_id": minion_id},
                        {"jid": jid},
                    ]
                },
            ]
        }
    }
