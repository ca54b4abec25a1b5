"""The sleep hook (berth.sleephook) against the real local API app served over HTTP,
with plain Python functions as the minion's "state.sls"; the hook in a real
minion is exercised by tests/integration/test_fleet_loop.py. Also the engine's
address helpers in berth.localapi."""

import json
import subprocess
import sys
import threading

import pytest
from salt.config import DEFAULT_MINION_OPTS

from berth import localapi, sleephook

UNIT = "dev-sleephook"
FALLBACK = ["sh", "-c", "echo fell back; exit 7"]


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# What the engine holds and the hook reads (the engine's token_file, root-only).
LOCAL_TOKEN = "local-api-token-of-this-device"


_token_files = []


@pytest.fixture(scope="module", autouse=True)
def _local_token_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("local-token") / "berth-local.token"
    path.write_text(LOCAL_TOKEN + "\n")
    path.chmod(0o600)
    _token_files.append(path)
    yield
    _token_files.remove(path)


def local_token_file():
    return _token_files[-1]


@pytest.fixture
def serve():
    servers = []

    def start(state_sls, commands=None, retcode=0):
        calls, context = [], {}

        def fun(*args, **kwargs):
            calls.append(args)
            context["retcode"] = retcode  # as state.sls does (2 when a state failed)
            return state_sls()

        app = localapi.LocalAPI(
            UNIT, {"state.sls": fun}, context=context, commands=commands, token=LOCAL_TOKEN
        )
        httpd = localapi.server(app, "127.0.0.1", 0)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.port}", calls

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def run_hook(url, *fallback, token_file=None):
    return subprocess.run(
        [
            sys.executable,
            sleephook.__file__,
            "--local-api",
            url,
            "--local-token-file",
            str(token_file or local_token_file()),
            "--timeout",
            "30",
            "--",
            *fallback,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_applies_through_the_local_api(serve):
    url, calls = serve(
        lambda: {
            "docker_release_|-berth-docker-release_|-x_|-applied": {
                "__id__": "berth-docker-release",
                "result": True,
                "comment": "release 7 applied",
                "changes": {"started": ["app"]},
                "__run_num__": 0,
            }
        }
    )
    done = run_hook(url, *FALLBACK)
    assert done.returncode == 0, done.stderr
    assert calls == [("docker.release",)]
    assert "changed berth-docker-release: release 7 applied" in done.stdout
    assert '"started": ["app"]' in done.stdout
    assert "fell back" not in done.stdout
    assert f"state.sls docker.release via {url}: succeeded" in done.stderr


def test_without_the_local_token_the_local_api_refuses_and_the_fallback_runs(serve, tmp_path):
    url, calls = serve(lambda: {})
    wrong = tmp_path / "wrong.token"
    wrong.write_text("not the token\n")
    for token_file in (wrong, tmp_path / "missing.token"):
        done = run_hook(url, *FALLBACK, token_file=token_file)
        assert done.returncode == 7 and "fell back" in done.stdout, done.stderr
        assert "needs the local token" in done.stderr
    assert calls == []


@pytest.mark.parametrize(("retcode", "exit_status"), [(2, 2), (0, 1)])
def test_a_failed_apply_exits_non_zero_without_falling_back(serve, retcode, exit_status):
    url, _ = serve(
        lambda: {
            "x": {
                "__id__": "berth-docker-release",
                "result": False,
                "comment": "container app exited (3)",
                "changes": {},
            }
        },
        retcode=retcode,
    )
    done = run_hook(url, *FALLBACK)
    assert done.returncode == exit_status
    assert "FAILED berth-docker-release: container app exited (3)" in done.stdout
    assert "fell back" not in done.stdout


def test_salt_errors_as_a_list_are_a_failure(serve):
    url, _ = serve(lambda: ["No matching sls found for 'docker.release' in env 'base'"], retcode=1)
    done = run_hook(url, *FALLBACK)
    assert done.returncode == 1
    assert "No matching sls found" in done.stdout


def test_unreachable_local_api_runs_the_fallback():
    done = run_hook(f"http://127.0.0.1:{closed_port()}", *FALLBACK)
    assert done.returncode == 7
    assert "fell back" in done.stdout
    assert "local API unavailable" in done.stderr


def test_local_api_that_refuses_state_sls_runs_the_fallback(serve):
    url, calls = serve(lambda: {}, commands=["docker.*"])
    done = run_hook(url, *FALLBACK)
    assert done.returncode == 7
    assert calls == []
    assert "refused the job (403)" in done.stderr


def test_no_local_api_and_no_fallback_is_an_error():
    done = run_hook(f"http://127.0.0.1:{closed_port()}")
    assert done.returncode == 1
    assert "no fallback command" in done.stderr


@pytest.mark.parametrize(
    ("engines", "url"),
    [
        ([{"berth_localapi": {"host": "127.0.0.1", "port": 9100}}], "http://127.0.0.1:9100"),
        ([{"berth_localapi": None}], "http://127.0.0.1:9000"),
        (["berth_localapi"], "http://127.0.0.1:9000"),
        ({"berth_localapi": {"host": "0.0.0.0", "port": 9001}}, "http://127.0.0.1:9001"),
        (
            [{"api": {"engine_module": "berth_localapi", "host": "::", "port": 9002}}],
            "http://[::1]:9002",
        ),
        ([{"berth_localapi": {"port": 0}}], None),
        ([{"berth_localapi": {"port": "http"}}], None),
        ([{"other": {}}], None),
        (None, None),
    ],
)
def test_local_api_url_from_the_engine_config(engines, url):
    assert localapi.local_api_url({"engines": engines}) == url


def minion_opts(**overrides):
    opts = dict(DEFAULT_MINION_OPTS)
    opts.update(id=UNIT, **overrides)
    return opts


def test_master_address_is_resolved_as_the_minion_does():
    opts = localapi.with_master_address(minion_opts(master="127.0.0.1:4606"))
    assert opts["master_uri"] == "tcp://127.0.0.1:4606"
    assert opts["master_ip"] == "127.0.0.1"
    assert opts["master"] == "127.0.0.1"


def test_an_existing_master_uri_is_kept():
    opts = localapi.with_master_address(
        minion_opts(master="127.0.0.1", master_uri="tcp://10.0.0.1:4506")
    )
    assert opts["master_uri"] == "tcp://10.0.0.1:4506"


def test_an_unresolvable_master_is_logged_not_fatal(caplog):
    with caplog.at_level("WARNING"):
        opts = localapi.with_master_address(
            minion_opts(master="no-such-host.invalid", retry_dns=30)
        )
    assert "master_uri" not in opts
    assert (
        f"berth_localapi on {UNIT}: cannot resolve the master address 'no-such-host.invalid'"
        in caplog.text
    )


BUSY = [
    'The function "state.sls" is running as PID 4242 and was started at '
    "2026, Nov 29 17:00:00.000000 with jid 20261129170000000000"
]


@pytest.fixture
def busy_minion():
    """A local API whose "state.sls" is refused as busy ``busy_for`` times, then applies."""
    servers = []

    def start(busy_for, deferred=False):
        """``deferred``: the engine defers (a held update lock) instead of Salt refusing."""
        calls, reports, context = [], [], {}

        def state_sls(*args, **kwargs):
            calls.append(args)
            if len(calls) <= busy_for and deferred:
                context["retcode"] = 0
                return {
                    "x": {"__id__": "berth-docker-release", "result": True, "changes": {}}
                    | {"comment": DEFERRED}
                }
            if len(calls) <= busy_for:
                context["retcode"] = 1
                return list(BUSY)
            context["retcode"] = 0
            return {"x": {"__id__": "berth-docker-release", "result": True, "changes": {}}}

        def report_failed(error):
            reports.append(error)
            return {"reported": True, "error": error}

        functions = {"state.sls": state_sls, "docker.release_report_failed": report_failed}
        app = localapi.LocalAPI(UNIT, functions, context=context, token=LOCAL_TOKEN)
        httpd = localapi.server(app, "127.0.0.1", 0)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.port}", calls, reports

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def hook(url, timeout, retry="0.2"):
    return subprocess.run(
        [sys.executable, sleephook.__file__, "--local-api", url, "--timeout", str(timeout)]
        + ["--local-token-file", str(local_token_file())]
        + ["--busy-retry", retry, "--", *FALLBACK],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_busy_minion_is_waited_for_then_the_release_applies(busy_minion):
    url, calls, reports = busy_minion(busy_for=3)
    proc = hook(url, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert len(calls) == 4 and reports == []
    assert proc.stderr.count("minion busy") == 3
    assert "fell back" not in proc.stdout


def test_a_minion_busy_until_the_timeout_reports_failed_with_the_reason(busy_minion):
    url, calls, reports = busy_minion(busy_for=10**6)
    proc = hook(url, timeout=2, retry="0.5")
    assert proc.returncode == 1
    assert 2 <= len(calls) <= 5  # asked again while it waited, then gave up at its timeout
    assert len(reports) == 1
    assert "within its 2s timeout" in reports[0] and "is running as PID 4242" in reports[0]
    assert "fell back" not in proc.stdout  # a busy minion is not a reason for salt-call


DEFERRED = (
    "Release 8 deferred: the update lock (/tmp/berth/updates.lock) is held by deployment-app-7; "
    "nothing was stopped, the device tries again at its next apply"
)


def test_a_held_update_lock_is_waited_for_then_the_release_applies(busy_minion):
    url, calls, reports = busy_minion(busy_for=2, deferred=True)
    proc = hook(url, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert len(calls) == 3 and reports == []
    assert proc.stderr.count("update lock held") == 2


def test_a_lock_held_until_the_timeout_exits_0_and_reports_no_failure(busy_minion):
    url, calls, reports = busy_minion(busy_for=10**6, deferred=True)
    proc = hook(url, timeout=2, retry="0.5")
    assert proc.returncode == 0, proc.stderr  # the device sleeps; the next sleep tries again
    assert 2 <= len(calls) <= 5
    assert reports == []  # the engine reported "deferred" itself, with the holder
    assert "deployment-app-7" in proc.stderr.splitlines()[-1]


def test_busy_reason_reads_salts_refusal():
    assert sleephook.busy_reason({"return": BUSY}) == BUSY[0]
    assert sleephook.busy_reason({"return": ["Rendering SLS failed"]}) is None
    assert sleephook.busy_reason({"return": {"x": {"result": True}}}) is None


def test_master_unreachable_reports_failed_without_applying():
    calls, reports = [], []

    def report_failed(error):
        reports.append(error)
        return {"reported": True, "error": error}

    functions = {
        "state.sls": lambda *a, **k: calls.append(a) or {},
        "docker.release_report_failed": report_failed,
        "minionutil.master_reachable": lambda: False,
    }
    app = localapi.LocalAPI(UNIT, functions, context={}, token=LOCAL_TOKEN)
    httpd = localapi.server(app, "127.0.0.1", 0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        proc = hook(f"http://127.0.0.1:{httpd.port}", timeout=30)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert proc.returncode == 1, proc.stderr
    assert calls == []  # nothing applied
    assert len(reports) == 1 and "master was unreachable at sleep time" in reports[0]
    assert "fell back" not in proc.stdout


FAKE_SALT_CALL = """#!{python}
import json, pathlib, sys
here = pathlib.Path(__file__).parent
calls = here / "calls"
with calls.open("a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\\n")
applies = sum(1 for line in calls.read_text().splitlines() if "state.sls" in line)
if "docker.release_report_failed" in sys.argv:
    print(json.dumps({{"local": {{"reported": True}}}}))
elif applies <= {busy_for}:
    print(json.dumps({{"local": {busy!r}}}))
    sys.exit(1)
else:
    print(json.dumps({{"local": {done!r}}}))
    sys.exit({retcode})
"""


def fake_salt_call(tmp_path, busy_for=0, done=None, retcode=0):
    """A stand-in ``salt-call`` printing Salt's JSON: busy ``busy_for`` times, then ``done``."""
    done = (
        {"x": {"__id__": "berth-docker-release", "result": True, "changes": {}}}
        if done is None
        else done
    )
    path = tmp_path / "salt-call"
    path.write_text(
        FAKE_SALT_CALL.format(
            python=sys.executable, busy_for=busy_for, busy=BUSY, done=done, retcode=retcode
        )
    )
    path.chmod(0o755)
    line = [str(path), "-c", "/etc/salt", "--retcode-passthrough", "--out=highstate"]
    line += ["state.sls", "docker.release"]
    return line, lambda: [json.loads(row) for row in (tmp_path / "calls").read_text().splitlines()]


def fallback_hook(line, timeout, retry="0.2"):
    return subprocess.run(
        [sys.executable, sleephook.__file__, "--local-api", f"http://127.0.0.1:{closed_port()}"]
        + ["--timeout", str(timeout), "--busy-retry", retry, "--", *line],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_salt_call_fallback_waits_for_a_busy_minion_then_applies(tmp_path):
    line, calls = fake_salt_call(tmp_path, busy_for=2)
    proc = fallback_hook(line, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("minion busy") == 2
    assert "via salt-call: succeeded" in proc.stderr
    # the installed line's options, then --out=json before the function (the last --out wins)
    assert calls() == [line[1:5] + ["--out=json", "state.sls", "docker.release"]] * 3


def test_salt_call_fallback_busy_until_the_timeout_reports_failed(tmp_path):
    line, calls = fake_salt_call(tmp_path, busy_for=10**6)
    proc = fallback_hook(line, timeout=2, retry="0.5")
    assert proc.returncode == 1, proc.stderr
    *applies, report = calls()
    assert 2 <= len(applies) <= 5
    assert report[:5] == line[1:5] + ["--out=json"]
    assert report[5:7] == ["--no-parse=error", "docker.release_report_failed"]
    assert report[7].startswith("error=the sleep hook could not apply within its 2s timeout")
    assert "is running as PID 4242" in report[7]


def test_salt_call_fallback_that_never_reached_the_release_reports_failed(tmp_path):
    line, calls = fake_salt_call(
        tmp_path, done=["Rendering SLS 'base:docker.release' failed"], retcode=1
    )
    proc = fallback_hook(line, timeout=30)
    assert proc.returncode == 1, proc.stderr
    report = calls()[-1]
    assert "docker.release_report_failed" in report
    assert "did not run: Rendering SLS 'base:docker.release' failed" in report[-1]


def test_salt_call_fallback_whose_release_failed_adds_no_report(tmp_path):
    # the release engine reported its own outcome when the release state ran
    failed = {
        "x": {
            "__id__": "berth-docker-release",
            "result": False,
            "comment": "exited (3)",
            "changes": {},
        }
    }
    line, calls = fake_salt_call(tmp_path, done=failed, retcode=2)
    proc = fallback_hook(line, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert "FAILED berth-docker-release: exited (3)" in proc.stdout
    assert len(calls()) == 1


HANGING_SALT_CALL = """#!{python}
import json, pathlib, sys, time
here = pathlib.Path(__file__).parent
with (here / "calls").open("a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\\n")
if "docker.release_report_failed" in sys.argv:
    print(json.dumps({{"local": {{"reported": True}}}}))
    sys.exit(0)
time.sleep({seconds})  # e.g. waiting for a master that does not answer
print(json.dumps({{"local": {{}}}}))
"""


def hanging_salt_call(tmp_path, seconds):
    path = tmp_path / "salt-call"
    path.write_text(HANGING_SALT_CALL.format(python=sys.executable, seconds=seconds))
    path.chmod(0o755)
    return [str(path), "-c", "/etc/salt", "state.sls", "docker.release"]


def test_salt_call_that_has_not_started_by_the_timeout_is_stopped_and_reported(tmp_path):
    line = hanging_salt_call(tmp_path, 600)
    lock = tmp_path / "state" / "release.lock"
    lock.parent.mkdir()
    proc = subprocess.run(
        [sys.executable, sleephook.__file__, "--timeout", "2", "--release-lock", str(lock)]
        + ["--", *line],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    report = json.loads((tmp_path / "calls").read_text().splitlines()[-1])
    assert "docker.release_report_failed" in report
    assert "had not started state.sls within 2s and was stopped" in report[-1]


def test_salt_call_applying_at_the_timeout_runs_to_its_end(tmp_path):
    import fcntl

    line = hanging_salt_call(tmp_path, 4)
    lock = tmp_path / "release.lock"
    with lock.open("w") as held:  # as the release engine holds it during an apply
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = subprocess.run(
            [sys.executable, sleephook.__file__, "--timeout", "1", "--release-lock", str(lock)]
            + ["--", *line],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 0, proc.stderr
    assert "waiting for its end" in proc.stderr
    assert "via salt-call: succeeded" in proc.stderr


OFFLINE_SALT_CALL = """#!{python}
import json, pathlib, sys, time
here = pathlib.Path(__file__).parent
with (here / "calls").open("a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\\n")
if "--local" in sys.argv:
    print(json.dumps({{"local": {queued!r}}}))
    sys.exit(0)
if "docker.release_report_failed" in sys.argv and {report_fails}:
    print("[ERROR] Salt request timed out. The master is not responding.", file=sys.stderr)
    sys.exit(1)
time.sleep(600)  # waiting for a master that does not answer
"""


def offline_salt_call(tmp_path, queued, report_fails=False):
    """A stand-in ``salt-call`` with the master away: the apply (and the report unless
    ``report_fails``) waits without end; ``--local`` answers ``queued``."""
    path = tmp_path / "salt-call"
    path.write_text(
        OFFLINE_SALT_CALL.format(python=sys.executable, queued=queued, report_fails=report_fails)
    )
    path.chmod(0o755)
    lock = tmp_path / "release.lock"
    argv = [sys.executable, sleephook.__file__, "--timeout", "1", "--release-lock", str(lock)]
    argv += ["--report-timeout", "1", "--", str(path), "-c", "/etc/salt"]
    proc = subprocess.run(
        argv + ["state.sls", "docker.release"], capture_output=True, text=True, timeout=60
    )
    return proc, [json.loads(row) for row in (tmp_path / "calls").read_text().splitlines()]


@pytest.mark.parametrize("report_fails", [False, True], ids=["report-hangs", "report-fails"])
def test_salt_call_report_that_cannot_reach_the_master_is_queued_on_the_device(
    tmp_path, report_fails
):
    queued = {"reported": True, "sent": False, "release_id": 7, "error": "..."}
    proc, calls = offline_salt_call(tmp_path, queued, report_fails)
    assert proc.returncode == 1, proc.stderr
    apply, report, local = calls
    assert apply[-2:] == ["state.sls", "docker.release"]
    assert "--local" not in report and "docker.release_report_failed" in report
    # the same line, masterless, queuing without sending (no master to send to)
    assert local[:4] == ["-c", "/etc/salt", "--out=json", "--local"]
    assert local[4:6] == ["--no-parse=error", "docker.release_report_failed"]
    assert local[6].startswith("error=the sleep hook's state.sls docker.release did not run")
    assert "had not started state.sls within 1s" in local[6]
    assert local[7:] == ["send=False"]
    assert "the report through salt-call failed" in proc.stderr
    assert '"sent": false' in proc.stderr
    assert "nothing could be queued" not in proc.stderr


def test_salt_call_report_queued_on_the_device_for_an_unknown_release_says_so(tmp_path):
    proc, calls = offline_salt_call(
        tmp_path, {"reported": False, "comment": "no release for this device"}
    )
    assert proc.returncode == 1, proc.stderr
    assert len(calls) == 3 and "--local" in calls[-1]
    assert 'nothing could be queued: "no release for this device"' in proc.stderr


def test_salt_call_report_that_reached_the_master_is_not_queued_again(tmp_path):
    line, calls = fake_salt_call(tmp_path, done=["Rendering SLS failed"], retcode=1)
    proc = fallback_hook(line, timeout=30)
    assert proc.returncode == 1, proc.stderr
    assert [call for call in calls() if "--local" in call] == []
