"""Master-side plain code: token file, ext_pillar, report spool (against a fake HTTP server)."""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from berth.master import forward as reports
from berth.master.apiclient import ApiClient, ApiError, read_token
from berth.master.minion_pillar import release_pillar
from berth.master.report_spool import Spool
from berth.results import status_to_result


class FakeApi:
    """A tiny HTTP server: ``routes[(method, path)] = (status, body)``; records requests."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                api.requests.append((self.command, self.path, dict(self.headers), body))
                status, payload = api.routes.get(
                    (self.command, self.path), (404, {"detail": "Not found."})
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_api():
    api = FakeApi()
    yield api
    api.close()


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text("s3cret-master-token\n")
    os.chmod(path, 0o600)
    return path


def conf(url, token_file):
    return {"url": url, "token_file": str(token_file), "timeout": 2}


def test_token_file_readable_by_others_is_refused(token_file):
    os.chmod(token_file, 0o644)
    with pytest.raises(ApiError, match="accessible by group or others"):
        read_token(str(token_file))


def test_missing_and_empty_token_file(tmp_path):
    with pytest.raises(ApiError, match="cannot read token_file"):
        read_token(str(tmp_path / "nope"))
    empty = tmp_path / "empty"
    empty.touch(mode=0o600)
    with pytest.raises(ApiError, match="is empty"):
        read_token(str(empty))


def test_pillar_carries_release_and_registries(fake_api, token_file):
    release = {"id": 7, "version_hash": "96a7191f", "containers": []}
    fake_api.routes[("GET", "/master/minions/m-1/pillar/")] = (
        200,
        {
            "release": release,
            "registries": {"1": {"url": "r:5000", "username": "u", "password": "p"}},
        },
    )
    pillar = release_pillar(conf(fake_api.url, token_file), "m-1")
    assert pillar == {
        "docker": {
            "release": release,
            "registries": {"1": {"url": "r:5000", "username": "u", "password": "p"}},
        }
    }
    method, path, headers, _ = fake_api.requests[0]
    assert headers["Authorization"] == "APIToken s3cret-master-token"


def test_unknown_device_has_no_release(fake_api, token_file):
    assert release_pillar(conf(fake_api.url, token_file), "unknown") == {
        "docker": {"release": None, "registries": {}}
    }


def test_api_error_puts_error_in_pillar(fake_api, token_file):
    fake_api.routes[("GET", "/master/minions/m-1/pillar/")] = (500, {"detail": "boom"})
    pillar = release_pillar(conf(fake_api.url, token_file), "m-1")
    assert set(pillar["docker"]) == {"error"}
    assert "500" in pillar["docker"]["error"]


def test_api_down_puts_error_in_pillar(token_file):
    pillar = release_pillar(conf("http://127.0.0.1:9", token_file), "m-1")
    assert "release" not in pillar["docker"]
    assert "failed" in pillar["docker"]["error"]


def test_world_readable_token_puts_error_in_pillar_and_is_not_sent(fake_api, token_file):
    os.chmod(token_file, 0o604)
    pillar = release_pillar(conf(fake_api.url, token_file), "m-1")
    assert "chmod 600" in pillar["docker"]["error"]
    assert fake_api.requests == []


RESULT = {
    "release_id": 7,
    "version_hash": "96a7191f",
    "outcome": "succeeded",
    "error": None,
    "containers": [],
    "finished_at": "2026-01-01T00:00:00Z",
}


def test_build_report_refuses_missing_fields():
    with pytest.raises(ValueError, match="release_id"):
        reports.build_report("m-1", {"outcome": "failed"})
    with pytest.raises(ValueError, match="minion_id"):
        reports.build_report("", RESULT)


def test_report_sent(fake_api, token_file, tmp_path):
    fake_api.routes[("POST", "/master/deployments/report/")] = (200, {})
    spool = Spool(str(tmp_path / "spool"))
    status = reports.deliver(
        ApiClient.from_config(conf(fake_api.url, token_file)),
        spool,
        reports.build_report("m-1", RESULT),
    )
    assert status == "sent"
    assert fake_api.requests[0][3] == {"unit_id": "m-1", **RESULT}
    assert spool.entries() == []


def test_report_spooled_while_api_down_then_flushed_in_order(fake_api, token_file, tmp_path):
    spool = Spool(str(tmp_path / "spool"))
    down = ApiClient.from_config(conf("http://127.0.0.1:9", token_file))
    first = reports.build_report("m-1", RESULT)
    second = reports.build_report("m-1", {**RESULT, "release_id": 8})
    assert reports.deliver(down, spool, first) == "spooled"
    assert reports.deliver(down, spool, second) == "spooled"
    assert len(spool.entries()) == 2
    assert oct(os.stat(spool.entries()[0]).st_mode & 0o777) == "0o600"

    fake_api.routes[("POST", "/master/deployments/report/")] = (503, {})
    up = ApiClient.from_config(conf(fake_api.url, token_file))
    assert reports.flush(up, spool) == {"sent": 0, "rejected": 0, "remaining": 2}

    fake_api.routes[("POST", "/master/deployments/report/")] = (200, {})
    assert reports.flush(up, spool) == {"sent": 2, "rejected": 0, "remaining": 0}
    sent = [
        r[3]["release_id"]
        for r in fake_api.requests
        if r[3] and r[1] == "/master/deployments/report/" and r[0] == "POST"
    ]
    assert sent[-2:] == [7, 8]
    assert spool.entries() == []


def test_new_report_waits_behind_spooled_ones(fake_api, token_file, tmp_path):
    spool = Spool(str(tmp_path / "spool"))
    reports.deliver(
        ApiClient.from_config(conf("http://127.0.0.1:9", token_file)),
        spool,
        reports.build_report("m-1", RESULT),
    )
    fake_api.routes[("POST", "/master/deployments/report/")] = (200, {})
    up = ApiClient.from_config(conf(fake_api.url, token_file))
    assert (
        reports.deliver(up, spool, reports.build_report("m-1", {**RESULT, "release_id": 8}))
        == "sent"
    )
    assert [r[3]["release_id"] for r in fake_api.requests] == [7, 8]


def test_report_refused_by_api_is_set_aside_not_retried(fake_api, token_file, tmp_path):
    fake_api.routes[("POST", "/master/deployments/report/")] = (
        400,
        {"release_id": ["Unknown release."]},
    )
    spool = Spool(str(tmp_path / "spool"))
    client = ApiClient.from_config(conf(fake_api.url, token_file))
    assert reports.deliver(client, spool, reports.build_report("m-1", RESULT)) == "rejected"
    assert spool.entries() == []
    assert len(list((tmp_path / "spool" / "rejected").iterdir())) == 1


def test_status_to_result():
    containers = [
        {"fully_qualified_name": "deployment-a-7", "version_hash": "96a7191f", "status": "running"},
        {"fully_qualified_name": "deployment-b-7", "version_hash": "96a7191f", "status": "exited"},
    ]
    base = {
        "release_id": 7,
        "version_hash": "96a7191f",
        "applied_at": "t",
        "containers": containers,
    }
    assert status_to_result({**base, "state": "running"})["outcome"] == "succeeded"
    degraded = status_to_result({**base, "state": "degraded"})
    assert degraded["outcome"] == "failed" and "deployment-b-7" in degraded["error"]
    assert status_to_result({**base, "state": "interrupted"}) is None
    assert status_to_result({"release_id": None, "state": "none", "containers": []}) is None


def test_config_cli_prints_master_and_minion_options(capsys):
    import yaml

    from berth.master import config

    assert (
        config.main(
            [
                "master",
                "api_url=http://api",
                "token_file=/t",
                "spool_dir=/s",
                "salt_api_port=8001",
                "sharedsecret=x",
                "--extra",
                "interface=127.0.0.1",
            ]
        )
        == 0
    )
    master = yaml.safe_load(capsys.readouterr().out)
    assert master["ext_pillar"] == [{"berth_api": {}}]
    assert master["berth_api"]["token_file"] == "/t"
    assert master["rest_cherrypy"] == {"host": "127.0.0.1", "port": 8001, "disable_ssl": True}
    assert master["interface"] == "127.0.0.1"
    assert {"berth/release/result": ["salt://reactor/release_result.sls"]} in master["reactor"]
    assert (
        config.main(["minion", "docker_host=unix:///d.sock", "hook_dir=/h", "localapi_port=9123"])
        == 0
    )
    minion = yaml.safe_load(capsys.readouterr().out)
    assert minion["docker.url"] == "unix:///d.sock"
    assert minion["engines"] == [{"berth_localapi": {"host": "127.0.0.1", "port": 9123}}]
    assert minion["berth"]["sleep"]["script"] == "/h/berth-before-sleep"
    assert config.main(["minion", "nonsense"]) == 2
    assert config.main(["minion", "bogus=1"]) == 2
