#!/usr/bin/env python3
"""Load test of the API served the production way: gunicorn with several workers.

Measures ``GET /devices/{id}/`` and ``POST /docker/projects/{p}/releases/`` with
``wrk`` (bounded: fixed duration and connection count, 127.0.0.1 only) and prints
requests/s and p50/p99 latency. Uses a fresh SQLite database in a temp dir, or
``DATABASE_URL`` if set (e.g. PostgreSQL).

    .venv/bin/python bench/api_bench.py [--workers 4] [--duration 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TARGET_RPS = 1000
TARGET_P99_MS = 25.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(env: dict) -> dict:
    """Migrate the database and create an account, a user token, a device, a project and a registry."""
    code = textwrap.dedent(
        """
        import json, uuid
        from flask_migrate import upgrade
        from api import create_app
        from api.extensions import db
        from api.accounts.models import Account, User
        from api.devices.models import Device
        from api.releases.models import Project
        from api.registries.models import Registry
        from api.tokens import create_token
        app = create_app()
        with app.app_context():
            upgrade()
            account = Account(name="bench-" + uuid.uuid4().hex[:8]); db.session.add(account); db.session.flush()
            user = User(account_id=account.id, email=account.name + "@bench.example"); user.set_password("x")
            db.session.add(user); db.session.flush()
            _, token = create_token(user, name="bench")
            device = Device(account_id=account.id, unit_id=str(uuid.uuid4()), display="bench")
            project = Project(account_id=account.id, name="bench")
            registry = Registry(account_id=account.id, name="r", url="127.0.0.1:5000", username="u")
            registry.set_password("p")
            db.session.add_all([device, project, registry]); db.session.commit()
            print(json.dumps({"token": token, "device": device.id, "project": project.id, "registry": registry.id}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:  # noqa: BLE001 - any failure means not up yet; the deadline ends it
            time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer {url} within {timeout}s")


WRK_POST_LUA = """
local counter = 0
local id = 0
local threads = {}
function setup(thread)
  thread:set("id", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  id = wrk.thread:get("id")
end
request = function()
  counter = counter + 1
  local body = string.format(BODY_TEMPLATE, id, counter)
  return wrk.format("POST", PATH, {["Authorization"] = AUTH, ["Content-Type"] = "application/json"}, body)
end
"""


def parse_wrk(output: str) -> dict:
    def ms(value: str) -> float:
        number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
    p99 = ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
    total = int(re.search(r"(\d+) requests in", output).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return {
        "requests": total,
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def server_cpu_seconds(pid: int) -> float:
    """CPU time used so far by the gunicorn master and its workers."""
    import psutil

    master = psutil.Process(pid)
    total = 0.0
    for proc in [master, *master.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def run_wrk(
    url: str,
    *,
    duration: int,
    connections: int,
    threads: int,
    script: Path | None,
    headers: dict,
    nice: int = 0,
) -> dict:
    cmd = [
        "nice",
        "-n",
        str(nice),
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
    ]
    for key, value in headers.items():
        cmd += ["-H", f"{key}: {value}"]
    if script:
        cmd += ["-s", str(script)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        cmd + [url], capture_output=True, text=True, check=True, timeout=duration + 60
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = parse_wrk(out)
    result["client_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def measure(server_pid: int, url: str, **kwargs) -> dict:
    """One wrk run, plus the CPU time the server and the load generator spent per request.

    On a shared machine req/s depends on what else runs; CPU ms per request does not,
    so ``cpu_bound_rps`` (all cores busy with this server and wrk only) is printed too.
    """
    cpu_before = server_cpu_seconds(server_pid)
    result = run_wrk(url, **kwargs)
    server_cpu = server_cpu_seconds(server_pid) - cpu_before
    n = max(result["requests"], 1)
    result["server_cpu_ms"] = server_cpu / n * 1000
    result["client_cpu_ms"] = result["client_cpu_s"] / n * 1000
    result["cpu_bound_rps"] = (
        (os.cpu_count() or 1) * 1000 / (result["server_cpu_ms"] + result["client_cpu_ms"])
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--worker-class", default="gthread", help="gthread keeps connections alive; sync does not"
    )
    parser.add_argument("--worker-threads", type=int, default=2, help="threads per gthread worker")
    parser.add_argument("--duration", type=int, default=10, help="seconds per scenario")
    parser.add_argument(
        "--connections",
        type=int,
        default=8,
        help="concurrent connections (8 keeps 4x2 workers busy)",
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness for gunicorn and wrk (negative needs root; for a shared box)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian package wrk)", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="berth-bench-"))
    env = {
        **os.environ,
        "BERTH_INSTANCE_PATH": str(tmp / "instance"),
        "BERTH_SECRET_KEY": uuid.uuid4().hex,
    }
    env.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'bench.sqlite3'}")
    data = seed(env)
    port = free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server_log = open(tmp / "gunicorn.log", "w")
    server = subprocess.Popen(
        [
            "nice",
            "-n",
            str(args.nice),
            str(gunicorn),
            "--workers",
            str(args.workers),
            "--worker-class",
            args.worker_class,
            "--threads",
            str(args.worker_threads),
            "--keep-alive",
            "30",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "api:create_app()",
        ],
        env=env,
        cwd=REPO,
        stdout=server_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"APIToken {data['token']}"}
    results = {}
    try:
        wait_ready(f"{base}/openapi.json")
        device_url = f"{base}/devices/{data['device']}/"
        req = urllib.request.Request(device_url, headers=auth)
        assert json.loads(urllib.request.urlopen(req).read())["id"] == data["device"]
        run_wrk(
            device_url,
            duration=2,
            connections=args.connections,
            threads=args.threads,
            script=None,
            headers=auth,
            nice=args.nice,
        )
        results["GET /devices/{id}/"] = measure(
            server.pid,
            device_url,
            duration=args.duration,
            connections=args.connections,
            threads=args.threads,
            script=None,
            headers=auth,
            nice=args.nice,
        )
        release_body = {
            "version": "v%d-%d",
            "devices": [data["device"]],
            "containers": [
                {
                    "name": "app",
                    "image": "bench/app",
                    "tag": "1.0",
                    "required_tags": ["base"],
                    "startup_parameters": {
                        "environment": "A='b c'",
                        "network_mode": "host",
                        "restart_policy": "always",
                    },
                    "purge_data": False,
                    "registry": data["registry"],
                }
            ],
            "pin_digests": False,  # an image never pushed: run by tag (bench/pinning_bench.py measures pinning)
        }
        lua = (
            WRK_POST_LUA.replace(
                "BODY_TEMPLATE",
                json.dumps(json.dumps(release_body).replace("%", "%%").replace("%%d", "%d")),
            )
            .replace("PATH", json.dumps(f"/docker/projects/{data['project']}/releases/"))
            .replace("AUTH", json.dumps(auth["Authorization"]))
        )
        script = tmp / "post.lua"
        script.write_text(lua)
        results["POST /docker/projects/{p}/releases/"] = measure(
            server.pid,
            f"{base}/",
            duration=args.duration,
            connections=max(2, args.connections // 2),
            threads=args.threads,
            script=script,
            headers={},
            nice=args.nice,
        )
    except Exception:
        server_log.flush()
        print((tmp / "gunicorn.log").read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        server_log.close()
        shutil.rmtree(tmp, ignore_errors=True)

    db_kind = env["DATABASE_URL"].split(":", 1)[0]
    print(
        f"\nBerth API benchmark: gunicorn {args.workers} {args.worker_class} workers"
        f"{f' x {args.worker_threads} threads' if args.worker_class == 'gthread' else ''}, {db_kind}, "
        f"wrk {args.threads} thread(s), {os.cpu_count()} CPUs, {args.duration}s per scenario, nice {args.nice}"
    )
    load = os.getloadavg()[0]
    print(f"load average (1 min) at the end: {load:.1f} on {os.cpu_count()} CPUs")
    print(
        f"{'scenario':38} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>7}"
        f" {'srv cpu ms/req':>14} {'wrk cpu ms/req':>14} {'cpu-bound req/s':>15}"
    )
    for name, r in results.items():
        print(
            f"{name:38} {r['requests']:>8} {r['rps']:>7.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['non_2xx']:>7}"
            f" {r['server_cpu_ms']:>14.3f} {r['client_cpu_ms']:>14.3f} {r['cpu_bound_rps']:>15.0f}"
        )
        if r["socket_errors"]:
            print(f"  socket errors: {r['socket_errors']}")
    get = results["GET /devices/{id}/"]
    ok = get["rps"] >= TARGET_RPS and get["p99_ms"] < TARGET_P99_MS and get["non_2xx"] == 0
    print(
        f"target GET >= {TARGET_RPS} req/s with p99 < {TARGET_P99_MS} ms: {'met' if ok else 'NOT met'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
