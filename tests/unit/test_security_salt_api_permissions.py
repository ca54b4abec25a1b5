"""conf/master.d/salt-api.conf permits exactly what the API publishes (issue 17, finding 8):
judged by Salt's own eauth check (``salt.utils.minions.CkMinions.auth_check``, as the master
runs it for salt-api). Before, ``test.*`` let ``test.cross_test`` run any function and
``state.sls`` took any SLS. The real salt-api: tests/integration/test_security_salt_api.py."""

import ast
import copy
import pathlib

import pytest
import salt.config
import salt.utils.args
import salt.utils.minions
import yaml

from api import outbox
from berth import execpolicy

REPO = pathlib.Path(__file__).resolve().parents[2]
AUTH_LIST = yaml.safe_load((REPO / "conf" / "master.d" / "salt-api.conf").read_text())[
    "external_auth"
]["sharedsecret"]["berth"]


@pytest.fixture(scope="module")
def ckminions(tmp_path_factory):
    opts = copy.deepcopy(salt.config.DEFAULT_MASTER_OPTS)
    opts["pki_dir"] = str(tmp_path_factory.mktemp("pki"))
    opts["cachedir"] = str(tmp_path_factory.mktemp("cache"))
    opts["__role"] = "master"
    return salt.utils.minions.CkMinions(opts)


def publishable(ckminions, fun, arg=(), kwarg=None):
    """Whether salt-api's eauth user may publish ``fun(*arg, **kwarg)`` to a list of minions."""
    load = salt.utils.args.condition_input(list(arg), kwarg or {})
    return ckminions.auth_check(AUTH_LIST, fun, load, ["a-device"], "list") is True


def _minionutil_functions():
    tree = ast.parse((REPO / "_modules" / "minionutil.py").read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
    ]


def test_what_the_api_publishes_is_permitted(ckminions):
    for fun, arg, kwarg in (outbox.REFRESH_PILLAR, outbox.RELEASE_PULL, outbox.REGISTRIES_LOGIN):
        assert publishable(ckminions, fun, arg, kwarg), fun
    # the execute safe default, each entry as an account may call it
    calls = []
    for entry in map(execpolicy.parse_entry, execpolicy.SAFE_DEFAULT):
        names = (
            [f"minionutil.{name}" for name in _minionutil_functions()]
            if entry.fun == "minionutil.*"
            else [entry.fun]
        )
        assert all("*" not in name for name in names), entry
        calls += [(name, list(entry.args or ["curveball"])) for name in names]
    assert len(calls) > 10
    for fun, arg in calls:
        kwarg = dict.fromkeys(execpolicy.SAFE_KWARGS.get(fun, ()), 1)
        assert publishable(ckminions, fun, arg, kwarg), (fun, arg)
    assert ckminions.runner_check(AUTH_LIST, "jobs.list_job", {"jid": "1"}) is True


@pytest.mark.parametrize(
    ("fun", "arg"),
    [
        ("test.cross_test", ["cmd.run", ["id"]]),
        ("test.echo", ["x"]),
        ("test.pingx", []),
        ("cmd.run", ["id"]),
        ("state.sls", ["docker.sleep"]),
        ("state.sls", ["docker.release,docker.sleep"]),
        ("state.sls", []),  # mods as a keyword
        ("state.apply", ["docker.release"]),
        ("state.single", ["cmd.run", "id"]),
        ("docker.login", ["registry"]),
        ("docker.release_report_failed", ["halt the rollout"]),
        ("dockerXlogs", ["x"]),
        ("saltutil.refresh_pillar_and_more", []),
        *[(pattern.replace("*", "x"), []) for pattern in execpolicy.CALLS_OTHER_FUNCTIONS],
    ],
)
def test_anything_else_is_refused_by_salt_itself(ckminions, fun, arg):
    kwarg = {"mods": "docker.sleep"} if fun == "state.sls" and not arg else None
    assert not publishable(ckminions, fun, arg, kwarg)


def test_only_the_job_lookup_runner(ckminions):
    for fun in ("jobs.list_jobs", "jobs.lookup_jid", "salt.cmd", "state.orchestrate"):
        assert not ckminions.runner_check(AUTH_LIST, fun, {}), fun
    assert not ckminions.wheel_check(AUTH_LIST, "key.accept", {})
