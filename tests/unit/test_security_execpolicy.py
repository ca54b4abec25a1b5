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
