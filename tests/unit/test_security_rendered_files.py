"""Every reactor and state file Berth ships, rendered by Salt's own renderers with hostile values
in every field that comes from outside (an event of a minion, a setting from pillar, grains or the
minion config): the rendered structure -- IDs, functions, targets, arguments -- stays what it
is, the value stays a value (docs/security.md "Trust beyond the REST API", 1.)."""

from __future__ import annotations

import copy
import pathlib
import shlex

import pytest
import salt.config
import salt.exceptions
import salt.loader
import salt.template

from berth import localapi

REPO = pathlib.Path(__file__).resolve().parents[2]
REACTOR = REPO / "salt" / "reactor"
STATES = REPO / "salt" / "docker"

MARKER = "/tmp/berth-pwned"
HOSTILE = [
    # YAML: a second reaction that runs a command on the master
    "x\nberth_pwned:\n  runner.salt.cmd:\n    - args:\n      - fun: cmd.run\n"
    f"      - cmd: touch {MARKER}",
    f"x: {{runner.salt.cmd: [{{args: [{{fun: cmd.run}}, {{cmd: 'touch {MARKER}'}}]}}]}}",
    # Jinja
    f"{{{{ salt['cmd.run']('touch {MARKER}') }}}}",
    f"{{% do salt['cmd.run']('touch {MARKER}') %}}",
    "{# comment #}",
    # YAML tags, quotes, newlines, shell and systemd syntax
    f"!!python/object/apply:os.system ['touch {MARKER}']",
    "'\"; touch /tmp/berth-pwned; echo \"'",
    "a\nb\r\nc",
    "$(touch /tmp/berth-pwned) `id` %n ${HOME}",
    "*",
    "- item",
    "",
]


def _renderers(opts, functions):
    return salt.loader.render(opts, functions)


def _render(path, renderers, opts, **context):
    return salt.template.compile_template(
        str(path),
        renderers,
        opts["renderer"],
        opts["renderer_blacklist"],
        opts["renderer_whitelist"],
        saltenv="base",
        **context,
    )


@pytest.fixture(scope="module")
def master_renderers(tmp_path_factory):
    opts = copy.deepcopy(salt.config.DEFAULT_MASTER_OPTS)
    opts["cachedir"] = str(tmp_path_factory.mktemp("master-cache"))
    opts["file_roots"] = {"base": [str(REPO / "salt")]}
    return opts, _renderers(opts, {})


def _result_event(value):
    return {
        "id": value,
        "tag": value,
        "data": {
            "release_id": value,
            "version_hash": value,
            "outcome": value,
            "error": value,
            "containers": [{"name": value, "status": value}],
            "finished_at": value,
            "signature": value,
        },
        "cmd": "_minion_event",
        "_stamp": value,
    }


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_release_result_reactor_passes_the_event_as_data_only(master_renderers, value):
    opts, renderers = master_renderers
    event = _result_event(value)
    high = _render(
        REACTOR / "release_result.sls",
        renderers,
        opts,
        tag="berth/release/result",
        data=copy.deepcopy(event),
    )
    if value == "":
        assert high == {}  # no minion id: no reaction at all
        return
    assert high == {
        "berth_release_result": {
            "runner.berth.report": [{"args": [{"minion_id": value}, {"result": event["data"]}]}]
        }
    }


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_minion_start_reactor_targets_exactly_that_minion_by_list(master_renderers, value):
    opts, renderers = master_renderers
    high = _render(
        REACTOR / "minion_start.sls",
        renderers,
        opts,
        tag=f"salt/minion/{value}/start",
        data={"id": value, "data": value, "cmd": "_minion_event"},
    )
    if value == "":
        assert high == {}
        return
    assert high == {
        "berth_minion_start": {
            "local.state.sls": [
                {"tgt": [value]},
                {"tgt_type": "list"},
                {"args": [{"mods": "docker.minion_start"}]},
            ]
        }
    }


@pytest.mark.parametrize("data", [None, [], "x", {"id": 7}, {"id": ["a"]}, {}])
def test_reactors_ignore_events_without_a_minion_id(master_renderers, data):
    opts, renderers = master_renderers
    for name in ("release_result.sls", "minion_start.sls"):
        assert _render(REACTOR / name, renderers, opts, tag="t", data=data) == {}


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_job_return_reactor_passes_only_the_tags_jid_and_minion_id(master_renderers, value):
    """On a lower master: the return of a job the top master published (``master_id``). None of
    the event's fields reach the runner: it reads the return from the job cache."""
    opts, renderers = master_renderers
    ret = {
        "fun": value,
        "fun_args": [value],
        "return": {value: value},
        "retcode": value,
        "success": value,
    }
    event = {**ret, "id": value, "jid": value, "master_id": value or "top", "_stamp": value}
    jid = "20261207120000123456"
    high = _render(
        REACTOR / "job_return.sls",
        renderers,
        opts,
        tag=f"salt/job/{jid}/ret/{value}",
        data=copy.deepcopy(event),
    )
    if value == "" or "/" in value:
        assert high == {}  # no minion id (or not one tag part): no reaction at all
        return
    assert high == {
        "berth_job_return": {
            "runner.berth.forward_return": [{"args": [{"minion_id": value}, {"jid": jid}]}]
        }
    }


@pytest.mark.parametrize(
    "tag,data",
    [
        # a job this master published itself: no master above named in it
        ("salt/job/20261207120000123456/ret/m1", {"return": True}),
        ("salt/job/20261207120000123456/ret/m1", {"return": True, "master_id": ""}),
        # not a return, or a jid that is not Salt's
        ("salt/job/20261207120000123456/new", {"master_id": "top"}),
        ("salt/job/x; rm/ret/m1", {"master_id": "top"}),
        ("salt/job/1/ret/m1/extra", {"master_id": "top"}),
        ("salt/job/20261207120000123456/ret/", {"master_id": "top"}),
        ("salt/job/20261207120000123456/ret/m1", None),
        (None, {"master_id": "top"}),
    ],
)
def test_job_return_reactor_ignores_what_is_no_return_of_a_job_from_above(
    master_renderers, tag, data
):
    opts, renderers = master_renderers
    assert _render(REACTOR / "job_return.sls", renderers, opts, tag=tag, data=data) == {}


def test_every_shipped_reactor_file_is_covered():
    assert sorted(p.name for p in REACTOR.glob("*.sls")) == [
        "job_return.sls",
        "minion_start.sls",
        "release_result.sls",
    ]


# -- state files (rendered on the device) -------------------------------------------------------


def _minion(tmp_path, config=None, grains=None, opts=None, local_api=None):
    """Minion opts and the functions a state file may call, every outside value as given."""
    minion_opts = copy.deepcopy(salt.config.DEFAULT_MINION_OPTS)
    minion_opts.update(
        {
            "cachedir": str(tmp_path / "cache"),
            "file_roots": {"base": [str(REPO / "salt")]},
            "conf_file": "/etc/salt/minion",
            "grains": {"pythonexecutable": "/usr/bin/python3", **(grains or {})},
            **(opts or {}),
        }
    )
    config = config or {}

    def config_get(key, default=""):
        return config.get(key, default)

    functions = {
        "config.get": config_get,
        "file.file_exists": lambda path: False,
        "minionutil.local_api_url": lambda: local_api,
        "minionutil.local_api_token_file": lambda: (
            None if local_api is None else localapi.default_token_file(minion_opts)
        ),
        "minionutil.sleep_hook_program": lambda: "/opt/berth/berth/sleephook.py",
    }
    return minion_opts, _renderers(minion_opts, functions)


def _render_state(name, minion_opts, renderers):
    return _render(STATES / f"{name}.sls", renderers, minion_opts, sls=f"docker.{name}")


def _exec_line(high):
    script = next(
        item["contents"]
        for item in high["berth-before-sleep-script"]["file.managed"]
        if "contents" in item
    )
    assert script.startswith("#!/bin/sh\n"), script
    # the whole script as the shell reads it: comments, then one command, each value one word
    words = shlex.split(script, comments=True)
    assert words.count("exec") == 1 and words[0] == "exec", words
    return words


SLEEP_IDS = [
    "berth-before-sleep-script",
    "berth-before-sleep-unit",
    "berth-before-sleep-daemon-reload",
    "berth-before-sleep-enabled",
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_sleep_state_keeps_every_outside_value_one_shell_word(tmp_path, value):
    # values a state cannot refuse (the minion's own paths, grains, engine URL) are quoted
    minion_opts, renderers = _minion(
        tmp_path,
        grains={"pythonexecutable": "/usr/bin/python3" + value},
        opts={
            "conf_file": f"/etc/salt{value}/minion",
            "docker.release_state_dir": "/var/cache/berth" + value,
        },
        local_api="http://127.0.0.1:9000/" + value,
    )
    high = _render_state("sleep", minion_opts, renderers)
    assert list(high) == SLEEP_IDS
    assert [list(state) for state in high.values()] == [
        ["file.managed"],
        ["file.managed"],
        ["cmd.run"],
        ["cmd.run"],
    ]
    argv = _exec_line(high)
    assert argv[:2] == ["exec", "/usr/bin/python3" + value]
    assert argv[argv.index("--local-api") + 1] == "http://127.0.0.1:9000/" + value
    assert argv[argv.index("--local-token-file") + 1] == f"/etc/salt{value}/berth-local.token"
    assert argv[argv.index("--release-lock") + 1] == f"/var/cache/berth{value}/release.lock"
    assert argv[argv.index("-c") + 1] == f"/etc/salt{value}"
    assert argv[-2:] == ["state.sls", "docker.release"]
    commands = [high[i]["cmd.run"][0]["name"] for i in SLEEP_IDS[2:]]
    assert commands == ["systemctl daemon-reload", "systemctl enable berth-before-sleep.service"]


@pytest.mark.parametrize("value", [v for v in HOSTILE if v])
@pytest.mark.parametrize(
    "key", ["berth:sleep:script", "berth:sleep:unit_dir", "berth:sleep:salt_call"]
)
def test_sleep_state_refuses_a_path_setting_that_is_not_a_plain_path(tmp_path, key, value):
    # settings (pillar, grains, minion config) become paths in a systemd unit and a shell
    # script: anything but a plain path is refused, nothing is rendered
    minion_opts, renderers = _minion(tmp_path, config={key: "/usr/local/x" + value})
    with pytest.raises(salt.exceptions.SaltRenderError, match=key):
        _render_state("sleep", minion_opts, renderers)


@pytest.mark.parametrize("value", HOSTILE + [True, 1.5, -1, [15]], ids=range(len(HOSTILE) + 4))
def test_sleep_and_prepull_refuse_a_number_setting_that_is_not_a_number(tmp_path, value):
    for name, key in (("sleep", "berth:sleep:timeout"), ("prepull", "berth:prepull:minutes")):
        minion_opts, renderers = _minion(tmp_path, config={key: value})
        with pytest.raises(salt.exceptions.SaltRenderError, match=key):
            _render_state(name, minion_opts, renderers)


def test_sleep_and_prepull_render_their_settings(tmp_path):
    minion_opts, renderers = _minion(
        tmp_path,
        config={
            "berth:sleep:script": "/opt/hook/berth-before-sleep",
            "berth:sleep:unit_dir": "/opt/units",
            "berth:sleep:timeout": "60",
            "berth:prepull:minutes": 5,
            "berth:prepull:splay": "7",
        },
    )
    high = _render_state("sleep", minion_opts, renderers)
    unit = dict(i for item in high["berth-before-sleep-unit"]["file.managed"] for i in item.items())
    assert unit["name"] == "/opt/units/berth-before-sleep.service"
    assert "ExecStart=/opt/hook/berth-before-sleep\n" in unit["contents"]
    assert "TimeoutStartSec=180\n" in unit["contents"]
    argv = _exec_line(high)
    assert "--local-api" not in argv and argv[argv.index("--timeout") + 1] == "60"
    prepull = _render_state("prepull", minion_opts, renderers)
    assert prepull == {
        "berth-prepull-schedule": {
            "schedule.present": [
                {"name": "berth-prepull"},
                {"function": "docker.release_pull"},
                {"minutes": 5},
                {"splay": 7},
                {"maxrunning": 1},
                {"persist": True},
            ]
        },
        "berth-prepull-now": {"module.run": [{"docker.release_pull": []}]},
    }


@pytest.mark.parametrize("name", ["release", "registries", "minion_start"])
def test_state_files_without_outside_values_render_to_constants(tmp_path, name):
    # rendered with every setting hostile: these files read none, so nothing changes
    minion_opts, renderers = _minion(
        tmp_path, config=dict.fromkeys(["berth:prepull:minutes"], 15), local_api=HOSTILE[0]
    )
    high = _render_state(name, minion_opts, renderers)
    expected = {
        "release": {"berth-docker-release": {"docker_release.applied": []}},
        "registries": {"berth-docker-registries": {"docker_release.registries_logged_in": []}},
    }
    if name in expected:
        assert high == expected[name]
    else:
        assert high["berth-release-recover"] == {"module.run": [{"docker.release_recover": []}]}
        assert high["include"] == ["docker.registries", "docker.prepull"]


def test_every_shipped_state_file_is_covered():
    assert sorted(p.stem for p in STATES.glob("*.sls")) == [
        "minion_start",
        "prepull",
        "registries",
        "release",
        "sleep",
    ]
