#!py
"""Reactor for ``berth/release/result`` (a device's apply result): forward it to the API
through the runner ``berth.report``.

Python, not a template: the event's values (minion id, result) are handed to the runner as
data and never become text that is parsed as YAML or Jinja; the reaction's ID is a constant
(docs/security.md "1."). Who may report for which device is decided by the result's
signature in the API, not here (docs/security.md "2.").
"""


def run():
    event = data if isinstance(data, dict) else {}  # noqa: F821 - set by the py renderer
    minion_id = event.get("id")
    if not isinstance(minion_id, str) or not minion_id:
        return {}
    return {
        "berth_release_result": {
            "runner.berth.report": [
                {"args": [{"minion_id": minion_id}, {"result": event.get("data")}]},
            ]
        }
    }
