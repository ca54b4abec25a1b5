"""berth.localapi request handling, with plain Python functions as the "modules".

The same routes are exercised against real Salt execution modules in
tests/functional/test_device_localapi.py and inside a real minion in
tests/integration/test_device_minion.py.
"""

import pytest
from salt.exceptions import CommandExecutionError, SaltClientError, SaltInvocationError
from werkzeug.test import Client

from berth import localapi

UNIT = "4e633880-ef6e-4c20-77ed-5761b3de5d4c"


def make_functions(context):
    def echo(text):
        return text

    def logs(name, tail=10):
        return f"{name}:{tail}"

    def fails_with_retcode():
        context["retcode"] = 2
        return "partial"

    def state_like():
        return {"result": False, "comment": "nope"}

    def execution_error():
        raise CommandExecutionError("container curveball not found")

    def invocation_error():
        raise SaltInvocationError("name is required")

    def crash():
        raise RuntimeError("boom")

    return {
        "test.echo": echo,
        "docker.logs": logs,
        "x.retcode": fails_with_retcode,
        "x.state": state_like,
        "x.cee": execution_error,
        "x.sie": invocation_error,
        "x.crash": crash,
    }


@pytest.fixture
def client():
    context = {}
    # the execution machinery with test functions: every command allowed (policy: test_security_localapi.py)
    app = localapi.LocalAPI(UNIT, make_functions(context), context=context, commands=["*"], port=80)
    return Client(app)


def execute(client, body, unit=UNIT):
    return client.post(f"/dongle/{unit}/execute/", json=body)


def test_root_returns_unit_id(client):
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.json == {"unit_id": UNIT}


def test_execute_returns_cloud_poll_shape(client):
    resp = execute(client, {"command": "docker.logs", "arg": ["curveball"], "kwarg": {"tail": 3}})
    assert resp.status_code == 200
    body = resp.json
    assert body["state"] == "COMMAND_EXECUTED"
    assert len(body["jid"]) == 20 and body["jid"].isdigit()
    assert body["response"] == {
        "fun": "docker.logs",
        "fun_args": ["curveball", {"tail": 3, "__kwarg__": True}],
        "return": "curveball:3",
        "retcode": 0,
        "success": True,
    }


def test_arg_and_kwarg_are_optional_and_key_value_args_become_kwargs(client):
    resp = execute(client, {"command": "docker.logs", "arg": ["curveball", "tail=7"]})
    assert resp.json["response"]["return"] == "curveball:7"
    resp = execute(client, {"command": "test.echo", "arg": ["hi"], "kwarg": None})
    assert resp.json["response"]["return"] == "hi"


@pytest.mark.parametrize(
    "fun, retcode, text",
    [
        ("x.retcode", 2, "partial"),
        ("x.state", 1, None),
        ("x.cee", 1, "ERROR: container curveball not found"),
        ("x.sie", 1, "ERROR executing 'x.sie': name is required"),
        ("x.crash", 1, "ERROR: x.crash raised RuntimeError: boom"),
    ],
)
def test_failures_are_reported_like_the_minion_does(client, fun, retcode, text):
    resp = execute(client, {"command": fun})
    assert resp.status_code == 200
    response = resp.json["response"]
    assert response["retcode"] == retcode
    assert response["success"] is False
    if text is not None:
        assert response["return"] == text
    assert "Traceback" not in resp.get_data(as_text=True)


def test_retcode_is_reset_between_calls(client):
    execute(client, {"command": "x.retcode"})
    assert execute(client, {"command": "test.echo", "arg": ["a"]}).json["response"]["retcode"] == 0


def test_wrong_arguments_are_a_failed_command_not_a_500(client):
    resp = execute(client, {"command": "test.echo", "arg": ["a", "b"]})
    assert resp.status_code == 200
    assert resp.json["response"]["success"] is False
    assert "Passed invalid arguments to test.echo" in resp.json["response"]["return"]
    # a keyword argument outside the function's safe set never reaches it (docs/security.md)
    resp = execute(client, {"command": "test.echo", "arg": ["a"], "kwarg": {"colour": "red"}})
    assert resp.status_code == 400 and "colour" in resp.json["kwarg"][0]


def test_wrong_unit_id_is_refused(client):
    resp = execute(client, {"command": "test.echo", "arg": ["a"]}, unit="someone-else")
    assert resp.status_code == 403
    assert "someone-else" in resp.json["detail"] and UNIT in resp.json["detail"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "command"),
        ({"command": 5}, "command"),
        ({"command": "rm -rf /"}, "command"),
        ({"command": "nomodule"}, "command"),
        ({"command": "no.such"}, "command"),
        ({"command": "test.echo", "arg": "a"}, "arg"),
        ({"command": "test.echo", "kwarg": ["a"]}, "kwarg"),
        ({"command": "test.echo", "kwarg": {"__pub_fun": "x"}}, "kwarg"),
        ({"command": "test.echo", "kwarg": {"not a name": 1}}, "kwarg"),
        ({"command": "test.echo", "arg": ""}, "arg"),
        ({"command": "test.echo", "callback_url": "http://x/"}, "callback_url"),
        ([1, 2], "non_field_errors"),
    ],
)
def test_malformed_bodies_are_400_naming_the_field(client, body, field):
    resp = execute(client, body)
    assert resp.status_code == 400
    assert list(resp.json) == [field]
    assert isinstance(resp.json[field], list) and resp.json[field][0]


def test_invalid_json_is_400(client):
    resp = client.post(
        f"/dongle/{UNIT}/execute/", data="{not json", content_type="application/json"
    )
    assert resp.status_code == 400
    assert "not valid JSON" in resp.json["non_field_errors"][0]


def test_unknown_route_and_method(client):
    assert client.get("/nothing/").status_code == 404
    assert client.get("/nothing/").json == {"detail": "Not found."}
    resp = client.get(f"/dongle/{UNIT}/execute/")
    assert resp.status_code == 405
    assert "POST" in resp.headers["Allow"]


@pytest.mark.parametrize(
    "host, port",
    [
        ("", 9000),
        ("127.0.0.1", "http"),
        ("127.0.0.1", -1),
        ("127.0.0.1", 70000),
        ("127.0.0.1", True),
    ],
)
def test_bad_bind_options(host, port):
    with pytest.raises(ValueError, match="^(host|port): "):
        localapi.check_address(host, port)


def test_minion_id_file_follows_root_dir(tmp_path):
    assert localapi.minion_id_path({"root_dir": str(tmp_path)}) == str(
        tmp_path / "etc" / "salt" / "minion_id"
    )


def test_ensure_minion_id_file_writes_once_and_never_overwrites(tmp_path):
    path = str(tmp_path / "etc" / "salt" / "minion_id")
    assert localapi.read_minion_id(path) is None
    localapi.ensure_minion_id_file(path, UNIT)
    assert localapi.read_minion_id(path) == UNIT
    localapi.ensure_minion_id_file(path, "other")
    assert localapi.read_minion_id(path) == UNIT


def test_commands_allow_list_refuses_other_commands():
    context = {}
    app = localapi.LocalAPI(
        UNIT, make_functions(context), context=context, commands=["docker.*"], port=80
    )
    client = Client(app)
    assert (
        execute(client, {"command": "docker.logs", "arg": ["c"]}).json["response"]["success"]
        is True
    )
    resp = execute(client, {"command": "test.echo", "arg": ["a"]})
    assert resp.status_code == 403
    assert "does not allow 'test.echo'" in resp.json["detail"]


@pytest.mark.parametrize("commands", [[], "", [""], [5], {"a": 1}])
def test_bad_commands_option(commands):
    with pytest.raises(ValueError, match="^commands: "):
        localapi.check_commands(commands if commands != [] else 5)


def test_is_loopback():
    assert (
        localapi.is_loopback("127.0.0.1")
        and localapi.is_loopback("::1")
        and localapi.is_loopback("localhost")
    )
    assert not localapi.is_loopback("0.0.0.0") and not localapi.is_loopback("192.168.1.5")


def execute_raw(client, body, unit=UNIT):
    return client.post(f"/dongle/{unit}/execute_raw/", json=body)


def test_execute_raw_parses_like_the_salt_cli(client):
    resp = execute_raw(client, {"command": "docker.logs 'cur veball' tail=5"})
    assert resp.status_code == 200
    assert resp.json["response"]["return"] == "cur veball:5"
    # key=value values are YAML-typed as on the salt command line
    assert resp.json["response"]["fun_args"] == ["cur veball", {"tail": 5, "__kwarg__": True}]


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "command"),
        ({"command": ""}, "command"),
        ({"command": "docker.logs 'unclosed"}, "command"),
        ({"command": "rm -rf /"}, "command"),
        ({"command": ["docker.logs"]}, "command"),
        ({"command": "test.echo x", "arg": []}, "arg"),
    ],
)
def test_execute_raw_bad_bodies(client, body, field):
    resp = execute_raw(client, body)
    assert resp.status_code == 400
    assert list(resp.json) == [field]


def test_execute_raw_checks_the_unit_id(client):
    assert execute_raw(client, {"command": "test.echo a"}, unit="other").status_code == 403


class _FileClient:
    def __init__(self, outcomes, calls):
        self.outcomes, self.calls = outcomes, calls

    def master_opts(self):
        self.calls.append("master_opts")
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def destroy(self):
        self.calls.append("destroy")


@pytest.mark.parametrize(
    ("outcomes", "signed_in", "calls"),
    [
        ([{"file_roots": {}}], True, ["master_opts", "destroy"]),
        (
            [SaltClientError("timed out"), {"file_roots": {}}],
            True,
            ["master_opts", "destroy", "master_opts", "destroy"],
        ),
        ([SaltClientError("a"), SaltClientError("b")], False, ["master_opts", "destroy"] * 2),
    ],
    ids=["first-attempt", "after-a-timeout", "gives-up"],
)
def test_sign_in_asks_the_master_once_signed_in_and_retries_a_failure(
    monkeypatch, outcomes, signed_in, calls
):
    """The engine signs in with the master at start (what a state run asks first: the
    master's options), so the sleep hook's apply needs no sign-in (docs/scale.md)."""
    import salt.fileclient

    seen = []
    made = []

    def get_file_client(opts):
        made.append(opts["id"])
        return _FileClient(outcomes, seen)

    monkeypatch.setattr(salt.fileclient, "get_file_client", get_file_client)
    assert localapi.sign_in({"id": UNIT}, attempts=2, pause=0) is signed_in
    assert seen == calls
    assert made == [UNIT] * (len(calls) // 2)
