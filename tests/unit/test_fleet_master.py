"""Master-side plain code: token file, ext_pillar, report spool (against a fake HTTP server)."""

import concurrent.futures
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from berth.contract import MAX_REPORT_BATCH
from berth.master import forward as reports
from berth.master.apiclient import ApiClient, ApiError, read_token
from berth.master.minion_pillar import release_pillar
from berth.master.report_spool import Spool
from berth.results import status_to_result


class FakeApi:
    """A tiny HTTP server: ``routes[(method, path)] = (status, body)`` (or a function of the
    request body returning both); records requests; answers after ``delay`` seconds."""

    def __init__(self):
        self.routes = {}
        self.requests = []
        self.delay = 0.0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                api.requests.append((self.command, self.path, dict(self.headers), body))
                route = api.routes.get((self.command, self.path), (404, {"detail": "Not found."}))
                status, payload = route(body) if callable(route) else route
                time.sleep(api.delay)
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


REPORT = ("POST", "/master/deployments/report/")


def answer_reports(refuse=None):
    """The API's answer to a report or a list of them: 200 each, or ``refuse[unit_id]``."""
    refuse = refuse or {}

    def status(report):
        return refuse.get(report["unit_id"], 200)

    def answer(body):
        if isinstance(body, dict):
            return status(body), {} if status(body) == 200 else {"unit_id": ["No."]}
        return 200, [
            {"index": i, "status": status(r), "deployment": None, "errors": None}
            for i, r in enumerate(body)
        ]

    return answer


def sent_reports(api):
    """The reports the API was sent, in order (lists flattened), and each request's size."""
    bodies = [r[3] for r in api.requests if (r[0], r[1]) == REPORT]
    flat = [b for body in bodies for b in (body if isinstance(body, list) else [body])]
    return flat, [len(b) if isinstance(b, list) else 1 for b in bodies]


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
    assert not any(spool.dir.glob("*.json"))  # quiet: sent at once, alone, never written


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

    fake_api.routes[REPORT] = answer_reports()
    fake_api.requests.clear()
    assert reports.flush(up, spool) == {"sent": 2, "rejected": 0, "remaining": 0}
    sent, sizes = sent_reports(fake_api)
    assert [r["release_id"] for r in sent] == [7, 8] and sizes == [2]  # one list
    assert spool.entries() == []


def test_new_report_waits_behind_spooled_ones(fake_api, token_file, tmp_path):
    spool = Spool(str(tmp_path / "spool"))
    reports.deliver(
        ApiClient.from_config(conf("http://127.0.0.1:9", token_file)),
        spool,
        reports.build_report("m-1", RESULT),
    )
    fake_api.routes[REPORT] = answer_reports()
    up = ApiClient.from_config(conf(fake_api.url, token_file))
    assert (
        reports.deliver(up, spool, reports.build_report("m-1", {**RESULT, "release_id": 8}))
        == "sent"
    )
    assert [r["release_id"] for r in sent_reports(fake_api)[0]] == [7, 8]


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


# -- batched reports (issue 20, item 2) --


def spool_down(tmp_path, token_file, count, unit="m"):
    """A spool holding ``count`` reports (put while the API was down), oldest first."""
    spool = Spool(str(tmp_path / "spool"))
    down = ApiClient.from_config(conf("http://127.0.0.1:9", token_file))
    for i in range(count):
        body = reports.build_report(f"{unit}-{i}", {**RESULT, "release_id": i + 1})
        assert reports.deliver(down, spool, body) == "spooled"
    return spool


def test_flush_sends_the_spool_in_lists_of_batch_size_in_order(fake_api, token_file, tmp_path):
    spool = spool_down(tmp_path, token_file, 5)
    fake_api.routes[REPORT] = answer_reports()
    up = ApiClient.from_config(conf(fake_api.url, token_file))
    assert reports.flush(up, spool, 2) == {"sent": 5, "rejected": 0, "remaining": 0}
    sent, sizes = sent_reports(fake_api)
    assert [r["release_id"] for r in sent] == [1, 2, 3, 4, 5]
    assert sizes == [2, 2, 1]  # the last one alone: the single-report body
    assert isinstance(fake_api.requests[-1][3], dict)
    assert spool.entries() == []


def test_items_refused_in_a_list_are_moved_aside_the_rest_removed(fake_api, token_file, tmp_path):
    spool = spool_down(tmp_path, token_file, 4)
    fake_api.routes[REPORT] = answer_reports({"m-1": 400, "m-2": 404})
    up = ApiClient.from_config(conf(fake_api.url, token_file))
    assert reports.flush(up, spool) == {"sent": 2, "rejected": 2, "remaining": 0}
    assert spool.entries() == []
    aside = sorted(
        Spool.load(p)["unit_id"] for p in (tmp_path / "spool" / "rejected").glob("*.json")
    )
    assert aside == ["m-1", "m-2"]
    assert sent_reports(fake_api)[1] == [4]


@pytest.mark.parametrize("answer", [(503, {}), (401, {}), (200, {"not": "a list"}), "down"])
def test_a_list_the_api_did_not_take_keeps_every_report(fake_api, token_file, tmp_path, answer):
    spool = spool_down(tmp_path, token_file, 3)
    fake_api.routes[REPORT] = answer if answer != "down" else (200, [])
    url = fake_api.url if answer != "down" else "http://127.0.0.1:9"
    client = ApiClient.from_config(conf(url, token_file))
    assert reports.flush(client, spool) == {"sent": 0, "rejected": 0, "remaining": 3}
    assert len(spool.entries()) == 3
    if answer != "down":
        assert sent_reports(fake_api)[1] == [3]  # one list, not one report after another
    assert not (tmp_path / "spool" / "rejected").exists()


def test_a_400_naming_items_of_the_list_sets_them_aside_and_sends_the_rest(
    fake_api, token_file, tmp_path
):
    spool = spool_down(tmp_path, token_file, 3)

    def answer(body):
        if any(r["unit_id"] == "m-1" for r in body):  # the schema refuses item m-1: whole list
            return 400, {
                str(i): {"outcome": ["No."]} for i, r in enumerate(body) if r["unit_id"] == "m-1"
            }
        return answer_reports()(body)

    fake_api.routes[REPORT] = answer
    up = ApiClient.from_config(conf(fake_api.url, token_file))
    assert reports.flush(up, spool) == {"sent": 2, "rejected": 1, "remaining": 0}
    assert [p.name for p in (tmp_path / "spool" / "rejected").iterdir()][0].endswith(".json")
    assert sent_reports(fake_api)[1] == [3, 2]


def test_a_list_refused_as_a_whole_is_sent_report_by_report(fake_api, token_file, tmp_path):
    """An API that takes no lists (400 not about items): each report alone, as before lists."""
    spool = spool_down(tmp_path, token_file, 3)

    def answer(body):
        if isinstance(body, list):
            return 400, {"non_field_errors": ["Invalid data. Expected a dictionary."]}
        return answer_reports({"m-2": 404})(body)

    fake_api.routes[REPORT] = answer
    up = ApiClient.from_config(conf(fake_api.url, token_file))
    assert reports.flush(up, spool) == {"sent": 2, "rejected": 1, "remaining": 0}
    assert sent_reports(fake_api)[1] == [3, 1, 1, 1]


def test_a_burst_of_reports_is_a_few_requests_and_none_is_left_behind(
    fake_api, token_file, tmp_path
):
    """60 ``berth.report`` calls at once (the reactor's threads), the API taking 50 ms a request:
    whoever holds the spool sends what piled up meanwhile; once every call returned, nothing is
    left in the spool for the next scheduled flush."""
    fake_api.routes[REPORT] = answer_reports()
    fake_api.delay = 0.05
    up = ApiClient.from_config(conf(fake_api.url, token_file))
    for round_ in range(3):
        spool = Spool(str(tmp_path / f"spool-{round_}"))
        fake_api.requests.clear()
        start = threading.Barrier(60)

        def one(i, spool=spool, start=start):
            start.wait()
            body = reports.build_report(f"m-{i}", {**RESULT, "release_id": i + 1})
            return reports.deliver(up, spool, body)

        with ThreadPoolExecutor(60) as pool:
            statuses = list(pool.map(one, range(60)))
        assert set(statuses) <= {"sent", "batched"}
        assert spool.entries() == []
        sent, sizes = sent_reports(fake_api)
        assert sorted(r["release_id"] for r in sent) == list(range(1, 61))
        assert len(sizes) <= 10, sizes


def test_a_report_while_another_holds_the_spool_is_queued_there(fake_api, token_file, tmp_path):
    fake_api.routes[REPORT] = answer_reports()
    up = ApiClient.from_config(conf(fake_api.url, token_file))
    spool = Spool(str(tmp_path / "spool"))
    with ThreadPoolExecutor(1) as pool, spool.locked():
        # never waits for the holder (the reactor's thread is free for the next result)
        answer = pool.submit(reports.deliver, up, spool, reports.build_report("m-1", RESULT))
        waited = concurrent.futures.wait([answer], timeout=10).not_done
        assert not waited, "berth.report waited for the spool's holder"
        assert answer.result() == "batched"
        assert len(spool.entries()) == 1 and fake_api.requests == []


def test_answers_to_a_list_are_read_strictly():
    good = [{"index": 0, "status": 200}, {"index": 1, "status": 400, "errors": {"signature": []}}]
    assert reports.item_statuses(good, 2) == [(200, None), (400, {"signature": []})]
    for bad in (
        good[:1],
        {"0": good[0]},
        [good[1], good[0]],
        [good[0], {"index": 1, "status": "200"}],
        [good[0], {"index": 1, "status": True}],
        [good[0], None],
    ):
        assert reports.item_statuses(bad, 2) is None, bad
    assert reports.refused_items({"1": {}, "0": {}}, 2) == {0, 1}
    for body in ({"2": {}}, {"non_field_errors": []}, {}, [], None, {"-1": {}}):
        assert reports.refused_items(body, 2) is None


def test_batch_size_is_capped_by_the_api_limit():
    assert reports.batch_size({}) == reports.DEFAULT_BATCH == 100
    assert reports.batch_size({"batch_size": 250}) == 250
    assert reports.batch_size({"batch_size": 10**6}) == MAX_REPORT_BATCH
    assert reports.batch_size({"batch_size": -5}) == 1
    assert reports.batch_size({"batch_size": "many"}) == 100


# -- the return path of a syndic topology (issue 22) --

RETURNS = ("POST", "/master/execute/returns/")


def test_a_return_is_forwarded_with_the_master_token(fake_api, token_file):
    from berth.master.forward import build_return, forward_return

    fake_api.routes[RETURNS] = (200, {"jid": "1", "state": "COMMAND_EXECUTED", "recorded": True})
    up = ApiClient.from_config(conf(fake_api.url, token_file))
    ret = {
        "fun": "docker.ps",
        "fun_args": ["all=True"],
        "return": {"a": 1},
        "retcode": 0,
        "success": True,
        "id": "spoofed",
        "jid": "0",
        "master_id": "top",
    }
    body = build_return("m1", "1", ret)
    assert body == {
        "unit_id": "m1",
        "jid": "1",
        "response": {
            "fun": "docker.ps",
            "fun_args": ["all=True"],
            "return": {"a": 1},
            "retcode": 0,
            "success": True,
        },
    }
    assert forward_return(up, body) == "recorded"
    method, path, headers, sent = fake_api.requests[-1]
    assert (method, path, sent) == (*RETURNS, body)
    assert headers["Authorization"] == "APIToken s3cret-master-token"
    fake_api.routes[RETURNS] = (200, {"jid": "1", "state": "TIMEOUT", "recorded": False})
    assert forward_return(up, body) == "finished"
    fake_api.routes[RETURNS] = (404, {"detail": "No execute job."})  # e.g. an outbox step
    assert forward_return(up, body) == "unknown"
    fake_api.routes[RETURNS] = (503, {"detail": "down"})
    assert forward_return(up, body) == "not_delivered"
    down = ApiClient.from_config(conf("http://127.0.0.1:9", token_file))
    assert forward_return(down, body) == "not_delivered"


def test_a_return_larger_than_the_api_takes_is_replaced_by_a_note():
    from berth.contract import MAX_FORWARDED_RETURN_CHARS
    from berth.master.forward import build_return

    big = build_return("m1", "1", {"return": "x" * MAX_FORWARDED_RETURN_CHARS, "retcode": 0})
    assert "not forwarded" in big["response"]["return"]
    assert big["response"]["retcode"] == 0
    assert len(json.dumps(big["response"])) < 1000
    odd = build_return("m1", "1", {"return": 1, "retcode": "0", "success": "yes", "fun_args": 7})
    assert odd["response"] == {
        "fun": None,
        "fun_args": [],
        "return": 1,
        "retcode": None,
        "success": None,
    }
    for minion_id, jid, ret in (("", "1", {}), ("m1", "1; x", {}), ("m1", "1", [])):
        with pytest.raises(ValueError):
            build_return(minion_id, jid, ret)


def _runner_module(opts):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "_runners" / "berth.py"
    spec = importlib.util.spec_from_file_location("berth_runner_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.__opts__ = opts
    return module


def test_forward_return_posts_the_job_caches_return_never_the_events(
    fake_api, token_file, monkeypatch
):
    """A minion fires ``salt/job/<victim's jid>/ret/<victim>`` with data of its choosing: the
    runner gets only the jid and the id and forwards what the job cache holds (Salt writes it
    from the victim's own return request), or nothing (docs/security.md "2.")."""
    jid = "20261207120000123456"
    cache = {}  # jid -> {minion id: return}, as local_cache.get_jid answers
    loads = {jid: {"fun": "cmd.run", "arg": ["uptime"], "tgt": "m1"}}
    runner = _runner_module(
        {"master_job_cache": "local_cache", "berth_api": conf(fake_api.url, token_file)}
    )
    monkeypatch.setattr(
        runner,
        "_job_cache",
        lambda: {
            "local_cache.get_jid": lambda j: dict(cache.get(j, {})),
            "local_cache.get_load": lambda j: loads.get(j, {}),
        },
    )
    monkeypatch.setattr(reports, "CACHE_WAIT", 0.3)
    fake_api.routes[RETURNS] = (200, {"jid": jid, "state": "COMMAND_EXECUTED", "recorded": True})

    # forged: the event exists, the cache has no return of m1 (or only the forger's own)
    cache[jid] = {"m2": {"return": "forged", "retcode": 0, "success": True}}
    started = time.monotonic()
    assert runner.forward_return("m1", jid) == {"status": "not_in_cache"}
    assert 0.3 <= time.monotonic() - started < 2
    assert fake_api.requests == []
    with pytest.raises(TypeError):  # the event's fields are no argument any more
        runner.forward_return("m1", jid, ret={"return": "forged"})
    assert runner.forward_return("m1", "1; rm")["status"] == "invalid"
    assert fake_api.requests == []

    # the real return, written to the cache a moment after the event (Salt fires first)
    real = {"return": " 12:00 up 3 days", "retcode": 0, "success": True, "out": "txt"}
    threading.Timer(0.1, lambda: cache[jid].update(m1=real)).start()
    assert runner.forward_return("m1", jid) == {"status": "recorded"}
    method, path, _, sent = fake_api.requests[-1]
    assert (method, path) == RETURNS
    assert sent == {
        "unit_id": "m1",
        "jid": jid,
        "response": {
            "fun": "cmd.run",
            "fun_args": ["uptime"],
            "return": " 12:00 up 3 days",
            "retcode": 0,
            "success": True,
        },
    }
    assert len(fake_api.requests) == 1
