"""Execute policy (docs/security.md): each request below was accepted (202) before; the
policy refuses it before anything is recorded or sent to Salt."""

import time

import pytest
from sqlalchemy import select

from api import limits
from api.execute.models import ExecuteJob
from api.extensions import db

pytestmark = pytest.mark.db

UNREACHABLE = {
    "BERTH_SALT_API_URL": "http://127.0.0.1:9",
    "BERTH_SALT_API_USER": "berth",
    "BERTH_SALT_API_PASSWORD": "x",
    "BERTH_SALT_API_TIMEOUT": "1",
}
HOOK = {"berth": {"sleep": {"salt_call": '/bin/sh -c "id>/tmp/owned" #'}}}


def cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def post(app, client, user_token, device):
    app.config.update(UNREACHABLE)

    def post(body, raw=False):
        path = "execute_raw" if raw else "execute"
        return client.post(
            f"/dongle/devices/{device.id}/{path}/", json=body, headers=user_token.headers
        )

    return post


def _no_jobs(app):
    with app.app_context():
        return db.session.scalars(select(ExecuteJob)).all() == []


@pytest.mark.parametrize(
    "body",
    [
        {"command": "cmd.run", "arg": ["id"]},
        {"command": "file.write", "arg": ["/etc/cron.d/x", "* * * * * root id"]},
        {"command": "pillar.get", "arg": ["docker:registries"]},
        {"command": "state.sls", "arg": ["docker.sleep"]},
        {"command": "state.sls", "arg": ["docker.release", "docker.sleep"]},
        {"command": "state.apply", "arg": ["docker.sleep"]},
    ],
)
def test_new_account_safe_default_refuses_with_403(app, post, body):
    resp = post(body)
    assert resp.status_code == 403, resp.json
    assert "may not execute" in resp.json["detail"]
    assert _no_jobs(app)


def test_pillar_injection_is_400_naming_the_argument_even_when_state_sls_is_allowed(
    app, post, account
):
    attack = {"command": "state.sls", "arg": ["docker.sleep"], "kwarg": {"pillar": HOOK}}
    resp = post(attack)
    assert resp.status_code == 400 and "pillar" in resp.json["kwarg"][0]
    cli(app, "accounts", "commands", account.name, "--allow", "state.sls")  # an admin widened it
    for body, field in (
        (attack, "kwarg"),
        (
            {"command": "state.sls", "arg": ["docker.release"], "kwarg": {"saltenv": "evil"}},
            "kwarg",
        ),
        ({"command": "state.sls", "arg": ["docker.release"], "kwarg": {"pillarenv": "x"}}, "kwarg"),
        ({"command": "state.sls", "arg": ["docker.sleep", 'pillar={"berth": {}}']}, "arg"),
        (
            {"command": "state.sls", "arg": ["docker.release"], "kwarg": {"mods": "docker.sleep"}},
            "kwarg",
        ),
    ):
        resp = post(body)
        assert resp.status_code == 400 and list(resp.json) == [field], (body, resp.json)
    resp = post({"command": "state.sls docker.sleep pillar='{\"a\": 1}'"}, raw=True)
    assert resp.status_code == 400 and "pillar" in resp.json["command"][0]
    assert _no_jobs(app)


def test_the_safe_default_passes_the_policy(post):
    # allowed: the answer is Salt being unreachable (503), not 400/403
    for body in (
        {"command": "test.ping"},
        {"command": "docker.logs", "arg": ["curveball"], "kwarg": {"tail": 20}},
        {"command": "docker.ps", "kwarg": {"all": True}},
        {"command": "minionutil.last_logs", "kwarg": {"match": "docker", "count": 5}},
        {"command": "state.sls", "arg": ["docker.release"], "kwarg": {"test": True}},
        {"command": "docker.release_status"},
    ):
        assert post(body).status_code == 503, body
    assert post({"command": "docker.logs curveball tail=5"}, raw=True).status_code == 503
    resp = post({"command": "docker.logs", "arg": ["curveball"], "kwarg": {"follow": True}})
    assert resp.status_code == 400 and "follow" in resp.json["kwarg"][0]


def test_widening_is_an_explicit_admin_act(app, post, account):
    assert "safe default" in cli(app, "accounts", "commands", account.name)
    out = cli(
        app,
        "accounts",
        "commands",
        account.name,
        "--allow",
        "docker.*",
        "--allow",
        "state.sls docker.re*",
    )
    assert "docker.* | state.sls docker.re*" in out
    # the operator is told that salt-api must permit them too (it refuses them otherwise)
    assert "add docker.*, state.sls docker.re* there too" in out
    assert post({"command": "docker.pull", "arg": ["x"]}).status_code == 503
    assert post({"command": "state.sls", "arg": ["docker.registries"]}).status_code == 503
    assert post({"command": "test.ping"}).status_code == 403
    assert "every command" in cli(app, "accounts", "commands", account.name, "--allow-all")
    assert post({"command": "cmd.run", "arg": ["id"]}).status_code == 503
    # keyword arguments stay limited even then, and pillar never passes
    assert (
        post({"command": "cmd.run", "arg": ["id"], "kwarg": {"runas": "root"}}).status_code == 400
    )
    assert "safe default" in cli(app, "accounts", "commands", account.name, "--default")
    assert post({"command": "cmd.run", "arg": ["id"]}).status_code == 403
    result = app.test_cli_runner().invoke(
        args=["accounts", "commands", account.name, "--allow", "cmd"]
    )
    assert result.exit_code != 0 and "module.function" in result.output


def test_refused_attempts_are_audited(post, client, user_token, device):
    post({"command": "state.sls", "arg": ["docker.sleep"], "kwarg": {"pillar": HOOK}})
    post({"command": "cmd.run", "arg": ["id"]})
    rows = client.get(
        "/audit/", headers=user_token.headers, query_string={"action": "execute.refused"}
    ).json["results"]
    assert [(r["details"]["function"], r["details"]["status"]) for r in rows] == [
        ("cmd.run", 403),
        ("state.sls", 400),
    ]
    # the attempt is visible, the value of a keyword outside the safe set is not (it may be a secret)
    assert rows[1]["details"]["arg"] == ["docker.sleep"] and rows[1]["details"]["kwarg"] == {
        "pillar": "***"
    }
    assert rows[0]["details"]["arg_count"] == 1 and "arg" not in rows[0]["details"]
    assert rows[0]["device"] == device.id


def test_policy_changes_are_audited(app, client, account, user_token):
    cli(app, "accounts", "commands", account.name, "--allow-all")
    rows = client.get(
        "/audit/", headers=user_token.headers, query_string={"action": "policy.change"}
    ).json
    assert rows["count"] == 1 and rows["results"][0]["details"]["after"] == ["*"]


def test_an_admin_allows_named_keyword_arguments_for_an_allowed_function(
    app, post, client, account, user_token
):
    follow = {"command": "docker.logs", "arg": ["curveball"], "kwarg": {"follow": False}}
    assert post(follow).status_code == 400
    runas = {"command": "cmd.run", "arg": ["id"], "kwarg": {"runas": "nobody"}}
    out = cli(
        app,
        "accounts",
        "commands",
        account.name,
        "--allow",
        "docker.logs",
        "--allow",
        "cmd.run",
        "--allow-kwarg",
        "docker.logs:follow",
        "--allow-kwarg",
        "cmd.run:runas,cwd",
    )
    assert "cmd.run: cwd, runas" in out and "docker.logs: follow" in out
    assert post(follow).status_code == 503  # allowed: Salt is unreachable
    assert post(runas).status_code == 503
    assert post({"command": "cmd.run id runas=nobody"}, raw=True).status_code == 503
    resp = post({"command": "cmd.run", "arg": ["id"], "kwarg": {"env": {"A": "1"}}})
    assert resp.status_code == 400 and "env" in resp.json["kwarg"][0]

    # never pillar/saltenv/pillarenv, never a function the allow-list does not allow, no globs
    for bad in ("cmd.run:pillar", "state.sls:saltenv", "file.write:mode", "cmd.*:runas", "cmd.run"):
        result = app.test_cli_runner().invoke(
            args=["accounts", "commands", account.name, "--allow-kwarg", bad]
        )
        assert result.exit_code != 0, bad
    assert post(runas).status_code == 503  # a refused change changes nothing

    rows = client.get(
        "/audit/", headers=user_token.headers, query_string={"action": "policy.change"}
    ).json["results"]
    assert rows[0]["details"]["allowed_kwargs"]["after"] == {
        "cmd.run": ["cwd", "runas"],
        "docker.logs": ["follow"],
    }
    # the values of keyword arguments an admin allowed are not kept in the audit log
    rows = client.get(
        "/audit/", headers=user_token.headers, query_string={"action": "execute"}
    ).json["results"]
    assert {r["details"]["function"]: r["details"]["kwarg"] for r in rows} == {
        "cmd.run": {"runas": "***"},
        "docker.logs": {"follow": "***"},
    }

    assert "safe default" in cli(app, "accounts", "commands", account.name, "--default")
    assert post(follow).status_code == 400  # --default forgets them


# Seven levels of nine: 9**7 (4.8 million) leaves from 260 bytes (issue 17, finding 6).
LAUGHS = (
    "{a: &a [x,x,x,x,x,x,x,x,x], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], "
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b], d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c], "
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d], f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e], "
    "g: [*f,*f,*f,*f,*f,*f,*f,*f,*f]}"
)


def test_yaml_aliases_are_a_fast_400_naming_the_field(app, post):
    for body, raw, field in (
        ({"command": f"docker.logs curveball 'tail={LAUGHS}'"}, True, "command"),
        ({"command": f"docker.logs '{LAUGHS}'"}, True, "command"),
        # a "name=value" string among the positional ones: the minion reads its value as YAML
        ({"command": "docker.logs", "arg": ["curveball", f"tail={LAUGHS}"]}, False, "arg"),
    ):
        started = time.perf_counter()
        resp = post(body, raw=raw)
        elapsed = time.perf_counter() - started
        assert resp.status_code == 400 and list(resp.json) == [field], resp.json
        assert "anchors and aliases" in resp.json[field][0]
        assert elapsed < 0.1, elapsed
    # a variant small enough to pass before wrote megabytes into the audit log, the job row and
    # the message to salt-api
    small = "{a: &a [x,x,x,x,x,x,x,x,x,x], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], c: [*b,*b,*b]}"
    resp = post({"command": f"docker.logs curveball 'tail={small}'"}, raw=True)
    assert resp.status_code == 400 and "anchors" in resp.json["command"][0]
    assert _no_jobs(app)


def test_arguments_are_capped_by_node_count_and_size(app, post):
    many = [0] * limits.MAX_ARG_NODES
    long = "x" * (limits.MAX_ARG_CHARS + 1)
    for body, field, words in (
        ({"command": "docker.logs", "arg": ["curveball", many]}, "arg", "values"),
        ({"command": "docker.logs", "arg": [long]}, "arg", "characters"),
        ({"command": "docker.logs", "arg": ["c"], "kwarg": {"tail": many}}, "kwarg", "values"),
        ({"command": "docker.logs", "arg": ["c"], "kwarg": {"tail": long}}, "kwarg", "characters"),
    ):
        resp = post(body)
        assert resp.status_code == 400 and list(resp.json) == [field], resp.json
        assert words in resp.json[field][0]
    assert _no_jobs(app)
    # at the caps it passes the policy (503: Salt unreachable in this test)
    ok = {"command": "docker.logs", "arg": ["c"], "kwarg": {"tail": [0] * 100}}
    assert post(ok).status_code == 503


CALLERS = [
    {"command": "test.cross_test", "arg": ["cmd.run", ["id > /tmp/owned"]]},
    {"command": "saltutil.cmd", "arg": ["*", "cmd.run", ["id"]]},
    {"command": "saltutil.runner", "arg": ["salt.cmd", "cmd.run", "id"]},
    {"command": "saltutil.wheel", "arg": ["key.accept", "evil"]},
    {"command": "publish.publish", "arg": ["*", "cmd.run", "id"]},
    {"command": "event.fire_master", "arg": [{"id": "other"}, "berth/release/result"]},
    {"command": "mine.send", "arg": ["cmd.run", "id"]},
    {"command": "schedule.add", "arg": ["x"], "kwarg": {}},
    {"command": "state.single", "arg": ["cmd.run", "id"]},
    {"command": "state.template_str", "arg": ["x: {cmd.run: [{name: id}]}"]},
    {"command": "slsutil.renderer", "arg": [], "kwarg": {}},
    {"command": "cp.get_template", "arg": ["salt://x", "/etc/cron.d/x"]},
]


def test_functions_that_call_other_functions_are_refused_whatever_glob_allows_them(
    app, post, account
):
    """Issue 17, finding 8: an allow-list entry ``test.*`` (or ``*``) let ``test.cross_test``
    run any function, ``saltutil.*`` publish to every minion, ``state.*`` run any state."""
    for allow in (
        ["--allow", "test.*", "--allow", "saltutil.*", "--allow", "state.*", "--allow", "cp.*"],
        ["--allow", "*.*"],
        ["--allow-all"],
    ):
        out = cli(app, "accounts", "commands", account.name, *allow)
        assert "test.cross_test" in out and "call other functions" in out
        for body in CALLERS:
            resp = post(body)
            assert resp.status_code == 403, (allow, body, resp.json)
            assert "never executed on a device" in resp.json["detail"], resp.json
        resp = post({"command": "test.cross_test cmd.run '[id]'"}, raw=True)
        assert resp.status_code == 403 and "any function" in resp.json["detail"]
        assert post({"command": "test.ping"}).status_code == 503  # the glob still works
    # a template renders a value with Jinja, which calls any function
    resp = post({"command": "cmd.run", "arg": ["{{ 1 }}"], "kwarg": {"template": "jinja"}})
    assert resp.status_code == 400 and "template" in resp.json["kwarg"][0]
    assert _no_jobs(app)


@pytest.mark.parametrize(
    "entry", ["test.cross_test", "publish.*", "saltutil.cmd", "event.fire_master", "schedule.add"]
)
def test_the_cli_refuses_to_allow_a_function_that_calls_other_functions(app, account, entry):
    from api.audit.log import AuditEntry

    result = app.test_cli_runner().invoke(
        args=["accounts", "commands", account.name, "--allow", "docker.logs", "--allow", entry]
    )
    assert result.exit_code != 0
    assert "call other functions" in result.output and "nothing changed" in result.output
    assert "safe default" in cli(app, "accounts", "commands", account.name)
    result = app.test_cli_runner().invoke(
        args=[
            "accounts",
            "commands",
            account.name,
            "--allow-all",
            "--allow-kwarg",
            "cmd.run:template",
        ]
    )
    assert result.exit_code != 0 and "never allowed" in result.output
    with app.app_context():
        assert db.session.scalars(select(AuditEntry)).all() == []
