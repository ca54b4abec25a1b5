#!py
"""state.sls docker.prepull -- pull a pending release's images while the device is awake,
now and on a schedule, so the apply on the sleep path only swaps containers.

Settings (config.get): berth:prepull:minutes (default 15), berth:prepull:splay (60 s).

Python, not a template: a setting (minion config, grains or pillar) is data, checked to be a
whole number, never text parsed as YAML (docs/security.md "1.").
"""


def _whole(key, default):
    value = __salt__["config.get"](key, default)  # noqa: F821 - set by the py renderer
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{key} must be a whole number of minutes/seconds, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{key} must be a whole number, got {value!r}") from None
    if number < 0:
        raise ValueError(f"{key} must not be negative, got {value!r}")
    return number


def run():
    return {
        "berth-prepull-schedule": {
            "schedule.present": [
                {"name": "berth-prepull"},
                {"function": "docker.release_pull"},
                {"minutes": _whole("berth:prepull:minutes", 15)},
                {"splay": _whole("berth:prepull:splay", 60)},
                {"maxrunning": 1},
                {"persist": True},
            ]
        },
        "berth-prepull-now": {"module.run": [{"docker.release_pull": []}]},
    }
