"""The local API over real HTTP, running real Salt execution modules (Loaders)."""

import pathlib
import threading

import pytest
import requests
import salt.config
import salt.loader
from saltfactories.utils.functional import Loaders

from berth import localapi

REPO = pathlib.Path(__file__).resolve().parents[2]
UNIT = "dev-localapi-fn"


@pytest.fixture(scope="module")
def minion_opts(tmp_path_factory):
    root = tmp_path_factory.mktemp("minion-root")
    (root / "log").mkdir()
    (root / "log" / "minion").write_text(
        "2026-11-27 11:00:00,500 [salt.minion :1][INFO    ][1] hello from the log\n"
    )
    opts = salt.config.minion_config(None)
    opts.update(
        id=UNIT,
        root_dir=str(root),
        cachedir=str(root / "cache"),
        pki_dir=str(root / "pki"),
        sock_dir=str(root / "sock"),
        conf_file=str(root / "minion"),
        log_file=str(root / "log" / "minion"),
        file_client="local",
        module_dirs=[str(REPO)],
    )
    return opts


@pytest.fixture(scope="module")
def loaders(minion_opts):
    return Loaders(minion_opts)


@pytest.fixture(scope="module")
def base_url(loaders, minion_opts):
    app = localapi.LocalAPI(UNIT, loaders.modules, opts=minion_opts, commands=["*"])
    httpd = localapi.server(app, "127.0.0.1", 0)  # 0: the OS picks a free port
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.port}"
    httpd.shutdown()
    httpd.server_close()


def post(base_url, body, unit=UNIT):
    return requests.post(f"{base_url}/dongle/{unit}/execute/", json=body, timeout=30)


def test_root(base_url):
    resp = requests.get(f"{base_url}/", timeout=10)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json() == {"unit_id": UNIT}


def test_execute_test_echo(base_url):
    resp = post(base_url, {"command": "test.echo", "arg": ["hello"], "kwarg": {}})
    assert resp.status_code == 200
    assert resp.json()["response"] == {
        "fun": "test.echo",
        "fun_args": ["hello"],
        "return": "hello",
        "retcode": 0,
        "success": True,
    }


def test_execute_minionutil_through_loader(base_url):
    assert post(base_url, {"command": "minionutil.unit_id"}).json()["response"]["return"] == UNIT
    resp = post(base_url, {"command": "minionutil.last_logs", "kwarg": {"match": "hello"}})
    assert resp.json()["response"]["return"] == [
        "2026-11-27 11:00:00,500 [salt.minion :1][INFO    ][1] hello from the log"
    ]


def test_salt_retcode_from_context_is_reported(base_url):
    # test.retcode sets __context__["retcode"], as failing states do.
    resp = post(base_url, {"command": "test.retcode", "arg": [3]})
    assert resp.json()["response"]["retcode"] == 3
    assert resp.json()["response"]["success"] is False
    # ... and does not leak into the next job.
    assert post(base_url, {"command": "test.true"}).json()["response"]["retcode"] == 0


def test_bad_arguments_to_a_real_module(base_url):
    resp = post(base_url, {"command": "minionutil.last_logs", "kwarg": {"match": "("}})
    assert resp.status_code == 200
    response = resp.json()["response"]
    assert response["success"] is False
    assert response["return"].startswith("ERROR executing 'minionutil.last_logs': match: ")


def test_wrong_unit_and_unknown_command(base_url):
    resp = post(base_url, {"command": "test.echo", "arg": ["x"]}, unit="another-device")
    assert resp.status_code == 403
    resp = post(base_url, {"command": "nosuchmod.fun"})
    assert resp.status_code == 400
    assert resp.json() == {"command": ["'nosuchmod.fun' is not available on this device."]}


def test_engine_module_loads_from_module_dirs(minion_opts, loaders):
    engines = salt.loader.engines(minion_opts, loaders.modules, [], loaders.utils)
    assert "berth_localapi.start" in engines


def test_engine_with_bad_options_logs_why_and_returns(minion_opts, loaders, caplog):
    engines = salt.loader.engines(minion_opts, loaders.modules, [], loaders.utils)
    with caplog.at_level("ERROR"):
        assert engines["berth_localapi.start"](port="http", retry_seconds=0) is None
    assert (
        f"berth_localapi on {UNIT}: cannot serve on 127.0.0.1:http: port: must be a TCP port number"
        in caplog.text
    )


def test_engine_with_port_in_use_logs_why_and_returns(minion_opts, loaders, caplog):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        engines = salt.loader.engines(minion_opts, loaders.modules, [], loaders.utils)
        with caplog.at_level("ERROR"):
            assert engines["berth_localapi.start"](port=port, retry_seconds=0) is None
    assert f"cannot serve on 127.0.0.1:{port}" in caplog.text


def test_bind_address_is_honoured(loaders, minion_opts):
    app = localapi.LocalAPI(UNIT, loaders.modules, opts=minion_opts, commands=["*"])
    httpd = localapi.server(app, "127.0.0.2", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        port = httpd.port
        assert requests.get(f"http://127.0.0.2:{port}/", timeout=10).json() == {"unit_id": UNIT}
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", timeout=10)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_ipv6_loopback_bind(loaders, minion_opts):
    app = localapi.LocalAPI(UNIT, loaders.modules, opts=minion_opts, commands=["*"])
    httpd = localapi.server(app, "::1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        assert requests.get(f"http://[::1]:{httpd.port}/", timeout=10).json() == {"unit_id": UNIT}
    finally:
        httpd.shutdown()
        httpd.server_close()
