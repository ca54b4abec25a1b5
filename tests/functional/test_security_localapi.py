"""The on-device local API's defaults (docs/security.md): before, its ``commands`` default was
["*"] and the unit id (which ``GET /`` hands out) its only check, so any process on the device
-- a host-network container of a seed-style release included -- could ``cmd.run`` as root."""

import json
import os
import threading
import time

import pytest
import requests

from berth import execargs, localapi

UNIT = "device-under-test"


class Recorder(dict):
    """Execution functions that record being called."""

    def __init__(self):
        super().__init__()
        self.calls = []
        for name in (
            "cmd.run",
            "test.ping",
            "state.sls",
            "file.write",
            "test.cross_test",
            "state.single",
        ):
            self[name] = self._fun(name)

    def _fun(self, name):
        def fun(*args, **kwargs):
            self.calls.append((name, args))
            return True

        return fun


def _client(**kwargs):
    functions = Recorder()
    # port 80: werkzeug's test Client addresses it as Host: localhost
    app = localapi.LocalAPI(UNIT, functions, context={}, port=80, **kwargs)
    from werkzeug.test import Client

    return Client(app), functions


def _post(client, body, headers=None):
    return client.post(f"/dongle/{UNIT}/execute/", json=body, headers=headers or {})


def test_default_allow_list_is_the_safe_set():
    client, functions = _client()
    assert _post(client, {"command": "cmd.run", "arg": ["id"]}).status_code == 403
    assert _post(client, {"command": "file.write", "arg": ["/etc/x", "y"]}).status_code == 403
    assert _post(client, {"command": "state.sls", "arg": ["docker.sleep"]}).status_code == 403
    resp = _post(
        client, {"command": "state.sls", "arg": ["docker.release"], "kwarg": {"pillar": {"x": 1}}}
    )
    assert resp.status_code == 400 and "pillar" in resp.json["kwarg"][0]
    assert functions.calls == []
    assert _post(client, {"command": "test.ping"}).status_code == 200
    assert _post(client, {"command": "state.sls", "arg": ["docker.release"]}).status_code == 200
    assert [c[0] for c in functions.calls] == ["test.ping", "state.sls"]


def test_wider_commands_can_require_the_local_token(tmp_path):
    client, functions = _client(commands=["*"], token="local-secret")
    assert _post(client, {"command": "cmd.run", "arg": ["id"]}).status_code == 403
    bad = {localapi.LOCAL_TOKEN_HEADER: "guess"}
    assert _post(client, {"command": "cmd.run", "arg": ["id"]}, bad).status_code == 403
    assert functions.calls == []
    good = {localapi.LOCAL_TOKEN_HEADER: "local-secret"}
    assert _post(client, {"command": "cmd.run", "arg": ["id"]}, good).status_code == 200
    assert _post(client, {"command": "test.ping"}).status_code == 200  # the safe set needs none
    # a function that calls other functions is refused even with every command and the token
    for body in (
        {"command": "test.cross_test", "arg": ["cmd.run", ["id"]]},
        {"command": "state.single", "arg": ["cmd.run", "id"]},
    ):
        resp = _post(client, body, good)
        assert resp.status_code == 403 and "never executed" in resp.json["detail"]
    assert [c[0] for c in functions.calls] == ["cmd.run", "test.ping"]
    path = tmp_path / "token"
    path.write_text("local-secret\n")
    os.chmod(path, 0o644)
    with pytest.raises(ValueError, match="group or others"):
        localapi.read_local_token(str(path))
    os.chmod(path, 0o600)
    assert localapi.read_local_token(str(path)) == "local-secret"


@pytest.mark.docker
def test_a_host_network_container_cannot_cmd_run_through_it(testbed, build_image):
    functions = Recorder()
    app = localapi.LocalAPI(UNIT, functions, context={})  # the engine's defaults
    httpd = localapi.server(app, "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.port
    image = build_image("berth-localapi-probe:1")
    cli = testbed.client()
    url = f"http://127.0.0.1:{port}/dongle/{UNIT}/execute/"

    def probe(body):
        script = (
            f"wget -q -O - --header 'Content-Type: application/json' "
            f"--post-data '{json.dumps(body)}' {url} 2>&1; echo rc=$?"
        )
        out = cli.containers.run(image, ["sh", "-c", script], network_mode="host", remove=True)
        return out.decode()

    try:
        ping = probe({"command": "test.ping"})  # the container does reach the local API
        attack = probe({"command": "cmd.run", "arg": ["id > /tmp/owned"]})
    finally:
        httpd.shutdown()
        httpd.server_close()
        cli.close()
    assert "COMMAND_EXECUTED" in ping and "rc=0" in ping
    assert "403" in attack and "rc=0" not in attack
    assert [c[0] for c in functions.calls] == ["test.ping"]


LAUGHS = (
    "{a: &a [x,x,x,x,x,x,x,x,x], b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], "
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b], d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c], "
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d], f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e], "
    "g: [*f,*f,*f,*f,*f,*f,*f,*f,*f]}"
)


def test_the_same_bounded_parser_as_the_cloud():
    """Issue 17, finding 6: the local API parsed execute_raw values with Salt's YAML reader."""
    client, functions = _client()
    raw = f"/dongle/{UNIT}/execute_raw/"
    for path, body, field in (
        (raw, {"command": f"docker.logs curveball 'tail={LAUGHS}'"}, "command"),
        (raw, {"command": f"test.ping '{LAUGHS}'"}, "command"),
        (
            f"/dongle/{UNIT}/execute/",
            {"command": "test.ping", "arg": [f"x={LAUGHS}"]},
            "arg",
        ),
        (
            f"/dongle/{UNIT}/execute/",
            {"command": "test.ping", "arg": [[0] * execargs.MAX_ARG_NODES]},
            "arg",
        ),
        (
            f"/dongle/{UNIT}/execute/",
            {"command": "test.ping", "kwarg": {"x": "y" * (execargs.MAX_ARG_CHARS + 1)}},
            "kwarg",
        ),
        (raw, {"command": "test.ping " + "x" * execargs.MAX_COMMAND_LINE}, "command"),
    ):
        started = time.perf_counter()
        resp = client.post(path, json=body)
        assert time.perf_counter() - started < 0.1
        assert resp.status_code == 400 and list(resp.json) == [field], resp.json
    assert functions.calls == []


@pytest.fixture
def served():
    """The engine's defaults over real HTTP: the safe commands, a local token, a free port."""
    functions = Recorder()
    functions["docker.logs"] = functions._fun("docker.logs")
    functions["docker.release_report_failed"] = functions._fun("docker.release_report_failed")
    app = localapi.LocalAPI(UNIT, functions, context={}, token="root-only-secret")
    httpd = localapi.server(app, "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.port, functions
    httpd.shutdown()
    httpd.server_close()


def _raw(port, method, path, body=b"", headers=()):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


def test_a_browser_page_cannot_reach_it(served):
    """Issue 17, finding 8: a page in a browser on the device (its DNS name rebound to
    127.0.0.1, or a text/plain POST that needs no CORS preflight) was answered."""
    port, functions = served
    ping = json.dumps({"command": "test.ping"}).encode()
    path = f"/dongle/{UNIT}/execute/"
    as_json = ("Content-Type", "application/json")
    for host in (f"rebound.attacker.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1"):
        for method, url in (("GET", "/"), ("POST", path)):
            status, body = _raw(port, method, url, ping, [("Host", host), as_json])
            assert status == 421 and "Host header" in body["detail"], (host, body)
    status, body = _raw(port, "GET", "/", headers=[])  # no Host at all
    assert status == 421
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = [("Host", f"127.0.0.1:{port}")]
        if content_type:
            headers.append(("Content-Type", content_type))
        status, body = _raw(port, "POST", path, ping, headers)
        assert status == 415 and "application/json" in body["detail"], (content_type, body)
    assert functions.calls == []
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        status, body = _raw(port, "POST", path, ping, [("Host", host), as_json])
        assert status == 200 and body["state"] == "COMMAND_EXECUTED", (host, body)
    assert [c[0] for c in functions.calls] == ["test.ping"] * 4


def test_reports_state_runs_and_the_minion_logs_need_the_root_only_token(served):
    """Issue 17, finding 8: any process on the device could report a failure (which halts a
    rollout), run the release state, or read the salt-minion container's logs."""
    port, functions = served
    url = f"http://127.0.0.1:{port}/dongle/{UNIT}/execute/"
    token = {localapi.LOCAL_TOKEN_HEADER: "root-only-secret"}
    guarded = [
        {"command": "docker.release_report_failed", "arg": ["halt the rollout"]},
        {"command": "state.sls", "arg": ["docker.release"]},
        {"command": "docker.logs", "arg": ["salt-minion"]},
        {"command": "docker.logs", "arg": ["/salt-minion"], "kwarg": {"tail": 5}},
        {"command": "docker.logs", "arg": ["3f2a9c"]},  # could be the minion container's id
    ]
    for body in guarded:
        for headers in ({}, {localapi.LOCAL_TOKEN_HEADER: "guess"}):
            resp = requests.post(url, json=body, headers=headers, timeout=10)
            assert resp.status_code == 403, (body, resp.text)
            assert localapi.LOCAL_TOKEN_HEADER in resp.json()["detail"]
    assert functions.calls == []
    for body in ({"command": "test.ping"}, {"command": "docker.logs", "arg": ["curveball"]}):
        assert requests.post(url, json=body, timeout=10).status_code == 200
    for body in guarded:
        assert requests.post(url, json=body, headers=token, timeout=10).status_code == 200
    assert [c[0] for c in functions.calls] == ["test.ping", "docker.logs"] + [
        b["command"] for b in guarded
    ]


def test_the_engine_makes_its_root_only_token_and_tells_the_sleep_hook_where(tmp_path):
    opts = {
        "conf_file": str(tmp_path / "minion"),
        "engines": [{"berth_localapi": {"port": 9000}}],
    }
    path = localapi.local_token_file(opts)
    assert path == str(tmp_path / "berth-local.token")
    token = localapi.read_local_token(path)
    assert len(token) >= 40 and os.stat(path).st_mode & 0o777 == 0o600
    assert localapi.read_local_token(path) == token  # made once, then read
    opts["engines"][0]["berth_localapi"]["token_file"] = str(tmp_path / "other.token")
    assert localapi.local_token_file(opts) == str(tmp_path / "other.token")
    assert localapi.local_token_file({"conf_file": str(tmp_path / "minion")}) is None
