"""berth.execpolicy: the allow-list and keyword rules shared by the API and the local API."""

import pytest

from berth import execpolicy as p


def test_entries_constrain_positional_arguments():
    allowed = p.SAFE_DEFAULT
    p.check("state.sls", ["docker.release"], {}, allowed)
    for arg in ([], ["docker.sleep"], ["docker.release", "docker.sleep"], [["docker.release"]]):
        with pytest.raises(p.Forbidden):
            p.check("state.sls", arg, {}, allowed)
    p.check("minionutil.last_logs", [], {"match": "x"}, allowed)
    with pytest.raises(p.Forbidden):
        p.check("cmd.run", ["id"], {}, allowed)


def test_never_kwargs_and_kwarg_strings():
    with pytest.raises(p.BadArgument) as exc:
        p.check("state.sls", ["docker.release"], {"pillar": {}}, ["*"])
    assert exc.value.field == "kwarg"
    with pytest.raises(p.BadArgument) as exc:
        p.check("docker.logs", ["c", "saltenv=evil"], {}, p.SAFE_DEFAULT)
    assert exc.value.field == "arg"
    # "a==b" is no keyword argument to Salt
    assert p.split_kwarg_strings(["a==b", "x=1", 3]) == (["a==b", 3], {"x": "1"})


def test_parse_entry():
    assert str(p.parse_entry("state.sls  docker.release")) == "state.sls docker.release"
    assert p.parse_entry("docker.*").args is None
    for bad in ("", "cmd", "cmd.run;x", "../x.y"):
        with pytest.raises(ValueError):
            p.parse_entry(bad)


def test_extra_kwargs_never_reach_pillar_and_only_for_their_function():
    extra = {"cmd.run": ["runas", "pillar"], "docker.logs": ["follow"]}
    p.check("cmd.run", ["id"], {"runas": "nobody"}, ["*"], extra)
    p.check("cmd.run", ["id", "runas=nobody"], {}, ["*"], extra)
    for fun, kwarg in (
        ("cmd.run", {"pillar": {}}),
        ("cmd.run", {"follow": 1}),
        ("test.ping", {"runas": "x"}),
    ):
        with pytest.raises(p.BadArgument):
            p.check(fun, [], kwarg, ["*"], extra)
    with pytest.raises(ValueError, match="never allowed"):
        p.parse_kwarg_spec("state.sls:pillarenv")
    for bad in ("cmd.*:runas", "cmd.run", "cmd.run:__pub_user", "cmd.run:"):
        with pytest.raises(ValueError):
            p.parse_kwarg_spec(bad)
    assert p.parse_kwarg_spec("cmd.run: runas, cwd ,runas") == (
        "cmd.run",
        ["cwd", "runas"],
    )


def test_audit_summary_keeps_no_argument_that_may_be_secret():
    assert p.audit_summary("docker.login", ["r", "u", "pw"], {"password": "pw"}) == {
        "function": "docker.login",
        "arg_count": 3,
        "kwarg": {"password": "***"},
    }
    assert p.audit_summary("cmd.run", ["id", "env=SECRET"], {}) == {
        "function": "cmd.run",
        "arg_count": 1,
        "kwarg": {"env": "***"},
    }
    assert p.audit_summary(
        "docker.logs", ["curveball", "tail=5", "token=x"], {"tail": 5, "follow": True}
    ) == {
        "function": "docker.logs",
        "arg": ["curveball", "tail=5", "token=***"],
        "kwarg": {"tail": 5, "follow": "***"},
    }


def test_functions_that_call_other_functions_pass_no_glob():
    for allowed in (["test.*"], ["*"], ["test.cross_test"], ["state.* *"], ["saltutil.*"]):
        for fun in ("test.cross_test", "saltutil.cmd_iter", "state.single", "publish.runner"):
            with pytest.raises(p.RunsOtherFunctions):
                p.check(fun, ["cmd.run", "id"], {}, allowed)
    p.check("test.ping", [], {}, ["test.*"])
    p.check("state.sls", ["docker.release"], {}, ["state.*"])
    assert p.calls_other_functions("publish.*") and not p.calls_other_functions("test.*")
    assert p.other_function_callers(["test.*", "docker.logs"]) == ["test.cross_test"]
    assert "publish.*" in p.other_function_callers(["*"])
    with pytest.raises(p.BadArgument, match="template"):
        p.check("cmd.run", ["id"], {"template": "jinja"}, ["*"], {"cmd.run": ["template"]})
