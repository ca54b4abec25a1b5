#!/usr/bin/env python
"""Fan-out benchmark: a release for N devices through the API, then the time until every
live minion reports success after the sleep signal.

Everything is real: the API under gunicorn (SQLite, or ``DATABASE_URL``), a salt-master
with the Berth ext_pillar/reactor/runner, ``--minions`` salt-minions each with its own
dockerd (``scripts/testbed engine``), the testbed registry. 10,000 devices are registered;
the first ``--minions`` of them are the live minions.

    scripts/testbed up
    .venv/bin/python bench/fanout_bench.py [--minions 20] [--sizes 10,100,10000] [--repeat 5]

Reports, per N: POST /docker/projects/{p}/releases/ latency (median, max over --repeat);
then for the largest N: pre-pull time (``docker.release_pull`` on all live minions, what the
outbox worker triggers while devices are awake) and the time from the sleep signal (the
installed ``berth-before-sleep`` hook run on every live minion at once; it applies through each
minion's local API, ``berth_localapi`` engine on a free port) until the API lists
all live minions in ``successful_deployments``. Targets (issue 4): creation < 300 ms for
10,000 devices; 20 live minions succeed within 60 s of the sleep signal.

Ctrl-C, SIGTERM, SIGHUP or a failure stop everything it started (``Bench.close``): every process
group it spawned and its Docker engines, also those still starting
(tests/integration/test_fleet_bench_cleanup.py).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import requests
import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# imports below need the repository on sys.path (set just above): E402 is expected
from harness import free_port, ignore_stop_signals, stop_on_signals, wait_for  # noqa: E402

from berth.master.config import master_options, minion_options  # noqa: E402

VENV_BIN = pathlib.Path(sys.executable).parent
TESTBED = REPO / "scripts" / "testbed"


def testbed_env() -> dict:
    subprocess.run([str(TESTBED), "up"], check=True, capture_output=True, timeout=300)
    out = subprocess.run([str(TESTBED), "env"], check=True, capture_output=True, text=True).stdout
    env = {}
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    return env


class Bench:
    def __init__(self, args):
        self.args = args
        self.state = pathlib.Path(tempfile.mkdtemp(prefix="berth-fanout-", dir="/tmp"))
        self.procs: list[subprocess.Popen] = []
        self.engines: list[str] = []
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.minion_ids = [str(uuid.uuid4()) for _ in range(args.minions)]
        self.env = {**os.environ}

    # -- API --------------------------------------------------------------------------
    def start_api(self):
        db_url = os.environ.get("DATABASE_URL") or f"sqlite:///{self.state}/api.sqlite3"
        self.env.update(DATABASE_URL=db_url, BERTH_INSTANCE_PATH=str(self.state / "instance"))
        os.environ.update(DATABASE_URL=db_url, BERTH_INSTANCE_PATH=str(self.state / "instance"))
        from flask_migrate import upgrade
        from sqlalchemy import insert

        from api import create_app
        from api.extensions import db
        from api.models import Account, Device, User
        from api.tokens import create_token

        app = create_app()
        with app.app_context():
            upgrade()
            account = Account(name="fanout")
            db.session.add(account)
            db.session.flush()
            user = User(account_id=account.id, email="bench@fanout.local")
            user.set_password(uuid.uuid4().hex)
            db.session.add(user)
            db.session.flush()
            _, self.user_token = create_token(user, scope="user", name="bench")
            _, master_token = create_token(user, scope="master", name="bench master")
            unit_ids = self.minion_ids + [
                str(uuid.uuid4()) for _ in range(max(self.args.sizes) - len(self.minion_ids))
            ]
            db.session.execute(
                insert(Device),
                [
                    {
                        "id": str(uuid.uuid4()),
                        "account_id": account.id,
                        "unit_id": u,
                        "display": f"bench {i}",
                    }
                    for i, u in enumerate(unit_ids)
                ],
            )
            from api.security.tenancy import MinionEnrollment

            # the devices' minions enrolled (as berth.register_minions would record it)
            db.session.execute(
                insert(MinionEnrollment),
                [{"unit_id": u, "account_id": account.id, "method": "migration"} for u in unit_ids],
            )
            db.session.commit()
            db.engine.dispose()
        self.token_file = self.state / "master.token"
        self.token_file.write_text(master_token + "\n")
        os.chmod(self.token_file, 0o600)
        log = open(self.state / "api.log", "w")
        self.procs.append(
            subprocess.Popen(
                [
                    str(VENV_BIN / "gunicorn"),
                    "--workers",
                    "2",
                    "--threads",
                    "4",
                    "--bind",
                    f"127.0.0.1:{self.api_port}",
                    "api:create_app()",
                ],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        wait_for(lambda: self._api_up(), 60, "the API")
        self.headers = {"Authorization": f"APIToken {self.user_token}"}
        devices = []
        page = 1
        while True:
            data = requests.get(
                f"{self.api_url}/devices/?page_size=1000&page={page}",
                headers=self.headers,
                timeout=60,
            ).json()
            devices += data["results"]
            if not data.get("next"):
                break
            page += 1
        by_unit = {d["unit_id"]: d["id"] for d in devices}
        self.device_ids = [by_unit[u] for u in unit_ids]

    def _api_up(self):
        try:
            return requests.get(f"{self.api_url}/openapi.json", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def call(self, method, path, expect, **kwargs):
        resp = requests.request(
            method, self.api_url + path, headers=self.headers, timeout=120, **kwargs
        )
        if resp.status_code != expect:
            raise SystemExit(
                f"fanout_bench: {method} {path} -> {resp.status_code} {resp.text[:500]}"
            )
        return resp.json()

    # -- Salt -------------------------------------------------------------------------
    def salt(self, tool, *args, timeout=600):
        return subprocess.run(
            [str(VENV_BIN / tool), "-c", str(self.state / "master"), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start_salt(self):
        pub, ret = free_port(), free_port()
        master_dir = self.state / "master"
        master_dir.mkdir()
        conf = {
            "id": "fanout-master",
            "root_dir": str(master_dir),
            "user": "root",
            "interface": "127.0.0.1",
            "publish_port": pub,
            "ret_port": ret,
            "worker_threads": 4,
            "auto_accept": True,
            **master_options(
                api_url=self.api_url,
                token_file=self.token_file,
                spool_dir=self.state / "spool",
                salt_api_port=free_port(),
                sharedsecret=uuid.uuid4().hex,
                flush_seconds=10,
            ),
        }
        (master_dir / "master").write_text(yaml.safe_dump(conf))
        self.procs.append(
            subprocess.Popen(
                [str(VENV_BIN / "salt-master"), "-c", str(master_dir), "-l", "quiet"],
                start_new_session=True,
            )
        )

        def engine(i):
            name = f"fanout-{os.getpid() % 10000}-{i}"
            self.engines.append(name)  # before it starts: close() stops a half-started one too
            out = subprocess.run(
                [str(TESTBED), "engine", name],
                check=True,
                capture_output=True,
                text=True,
                timeout=300,
            ).stdout
            return name, out.split("DOCKER_HOST=", 1)[1].strip()

        pool = concurrent.futures.ThreadPoolExecutor(4)
        try:
            engines = list(pool.map(engine, range(self.args.minions)))
        finally:
            # on a signal or a failed start, start no further engine (the `with` form would
            # start every queued one before letting close() run)
            pool.shutdown(wait=True, cancel_futures=True)
        for minion_id, (_, docker_host) in zip(self.minion_ids, engines, strict=False):
            mdir = self.state / minion_id[:8]
            mdir.mkdir()
            conf = {
                "id": minion_id,
                "root_dir": str(mdir),
                "user": "root",
                "master": "127.0.0.1",
                "master_port": ret,
                "publish_port": pub,
                "acceptance_wait_time": 2,
                **minion_options(
                    docker_host=docker_host,
                    hook_dir=mdir / "hook",
                    localapi_port=free_port(),
                    settle_seconds=self.args.settle,
                ),
            }
            (mdir / "minion").write_text(yaml.safe_dump(conf))
            self.procs.append(
                subprocess.Popen(
                    [str(VENV_BIN / "salt-minion"), "-c", str(mdir), "-l", "quiet"],
                    start_new_session=True,
                )
            )

        def all_answer():
            out = self.salt(
                "salt", "*", "test.ping", "--out=json", "--static", "-t", "30", timeout=120
            )
            try:
                return (
                    sum(1 for v in json.loads(out.stdout or "{}").values() if v is True)
                    >= self.args.minions
                )
            except ValueError:
                return False

        wait_for(all_answer, 600, f"{self.args.minions} minions to answer", interval=3)

    def wait_for_success(
        self, project_id, release_id, devices, start, on_poll=lambda: None
    ) -> dict:
        """Poll the release until all ``devices`` are in its successful_deployments
        -> {device id: seconds from ``start`` (a monotonic time) to its success}."""
        seen = {}
        while len(seen) < len(devices):
            if time.monotonic() - start > self.args.timeout:
                raise SystemExit(
                    f"fanout_bench: only {len(seen)}/{len(devices)} minions succeeded on "
                    f"release {release_id} in {self.args.timeout}s"
                )
            on_poll()
            rel = self.call("GET", f"/docker/projects/{project_id}/releases/{release_id}/", 200)
            now = time.monotonic() - start
            for device in devices & set(rel["successful_deployments"]):
                seen.setdefault(device, now)
            time.sleep(0.5)
        return seen

    def fleet_idle(self) -> bool:
        """No job running on any minion (``saltutil.running`` empty everywhere)."""
        out = self.salt("salt", "*", "saltutil.running", "--out=json", "--static", "-t", "60")
        try:
            running = json.loads(out.stdout or "{}")
        except ValueError:
            return False
        return len(running) >= self.args.minions and not any(running.values())

    def minion_dir(self, minion_id):
        return self.state / minion_id[:8]

    # -- the run ----------------------------------------------------------------------
    def run(self):
        t0 = time.monotonic()
        env = {} if self.args.creation_only else testbed_env()
        print(f"starting API with {max(self.args.sizes)} devices", flush=True)
        self.start_api()
        repo = f"fanout-{uuid.uuid4().hex[:6]}"
        registry = {"id": None}
        if not self.args.creation_only:
            image = f"{env['BERTH_REGISTRY']}/{repo}/app"
            for tag in ("v1", "v2"):
                subprocess.run(
                    [str(TESTBED), "image", f"{image}:{tag}"],
                    check=True,
                    capture_output=True,
                    env={**os.environ, **env},
                    timeout=300,
                )
            registry = self.call(
                "POST",
                "/docker/registries/",
                201,
                json={
                    "name": repo,
                    "url": env["BERTH_REGISTRY"],
                    "username": env["BERTH_REGISTRY_USER"],
                    "password": env["BERTH_REGISTRY_PASSWORD"],
                },
            )
        project = self.call("POST", "/docker/projects/", 201, json={"name": repo})

        def release_body(version, devices, tag="v1"):
            return {
                "version": version,
                "devices": devices,
                "remove_containers": [],
                "containers": [
                    {
                        "name": "app",
                        "image": f"{repo}/app",
                        "tag": tag,
                        "required_tags": [],
                        "purge_data": False,
                        "startup_parameters": {"network_mode": "none", "restart_policy": "always"},
                        "registry": registry["id"],
                    }
                ],
            }

        results = {}
        release = None
        for n in self.args.sizes:
            timings = []
            for attempt in range(self.args.repeat):
                body = release_body(f"{n}.{attempt}", self.device_ids[:n])
                start = time.perf_counter()
                release = self.call(
                    "POST", f"/docker/projects/{project['id']}/releases/", 201, json=body
                )
                timings.append((time.perf_counter() - start) * 1000)
            results[n] = timings
            print(
                f"N={n:>6}: release creation median {statistics.median(timings):7.1f} ms, "
                f"max {max(timings):7.1f} ms over {len(timings)}",
                flush=True,
            )

        if self.args.creation_only:
            return {"creation_ms": results}
        # the live fleet: salt-master + minions, then a release for all N devices (minions included)
        print(
            f"starting salt-master and {self.args.minions} minions with their own engines",
            flush=True,
        )
        self.start_salt()
        print(f"set-up took {time.monotonic() - t0:.0f}s", flush=True)
        n = max(self.args.sizes)
        # The minions' start jobs (recover, registry login, pre-pull) load both cores for a while;
        # time the creations once the fleet is idle, as an operator's call normally finds it.
        busy = time.monotonic()
        wait_for(self.fleet_idle, 600, "the minions' start jobs to finish", interval=3)
        print(
            f"minions' start jobs done after {time.monotonic() - busy:.0f}s (load average "
            f"{os.getloadavg()[0]:.1f})",
            flush=True,
        )
        live_timings = []
        for attempt in range(3):
            start = time.perf_counter()
            release = self.call(
                "POST",
                f"/docker/projects/{project['id']}/releases/",
                201,
                json=release_body(f"{n}.live-timing{attempt}", self.device_ids[:n]),
            )
            live_timings.append((time.perf_counter() - start) * 1000)
        loaded_ms = statistics.median(live_timings)
        print(
            f"N={n:>6}: release creation with the live fleet connected: median {loaded_ms:.1f} ms, "
            f"max {max(live_timings):.1f} ms over 3",
            flush=True,
        )
        live = self.minion_ids[: min(self.args.minions, n)]
        live_devices = set(self.device_ids[: len(live)])
        # install the sleep hook everywhere (state.sls docker.sleep)
        # queue=True: the minion-start state (pre-pull) may still be running on some minions
        out = self.salt(
            "salt",
            "*",
            "state.sls",
            "docker.sleep",
            "queue=True",
            "--out=json",
            "--static",
            "-t",
            "300",
        )
        missing = [
            m for m in live if not (self.minion_dir(m) / "hook" / "berth-before-sleep").exists()
        ]
        if missing:
            try:
                returns = json.loads(out.stdout or "{}")
            except ValueError:
                returns = out.stdout[-2000:]
            if isinstance(returns, dict):
                returns = {m: returns.get(m, "no return") for m in missing}
            raise SystemExit(
                f"fanout_bench: sleep hook not installed on {missing}: {str(returns)[:4000]}"
            )

        start = time.monotonic()
        self.salt("salt", "*", "saltutil.refresh_pillar", "wait=True", "--out=quiet", "-t", "300")
        out = self.salt("salt", "*", "docker.release_pull", "--out=json", "--static", "-t", "600")
        prepull = time.monotonic() - start
        print(
            f"pre-pull (refresh_pillar + docker.release_pull on {len(live)} minions, as the worker triggers it): {prepull:.1f}s",
            flush=True,
        )

        start = time.monotonic()
        # stderr says whether the hook applied through the local API or fell back to salt-call
        hook_logs = {m: self.minion_dir(m) / "hook" / "sleep.log" for m in live}
        hooks = {
            m: subprocess.Popen(
                [str(self.minion_dir(m) / "hook" / "berth-before-sleep")],
                stdout=subprocess.DEVNULL,
                stderr=open(hook_logs[m], "w"),
                start_new_session=True,
            )
            for m in live
        }
        self.procs += hooks.values()  # a hook may fall back to salt-call: stopped with the rest
        hook_done = {}

        def note_finished_hooks():
            for m, proc in hooks.items():
                if m not in hook_done and proc.poll() is not None:
                    hook_done[m] = (time.monotonic() - start, proc.returncode)

        seen = self.wait_for_success(
            project["id"], release["id"], live_devices, start, note_finished_hooks
        )
        elapsed = max(seen.values())
        for m, proc in hooks.items():
            if m not in hook_done:
                proc.wait()
                hook_done[m] = (time.monotonic() - start, proc.returncode)
        firsts = sorted(seen.values())
        hook_times = sorted(t for t, _ in hook_done.values())
        via_api = sum(
            1
            for log in hook_logs.values()
            if "state.sls docker.release via http" in log.read_text()
        )
        print(
            f"hooks that applied through the local API: {via_api}/{len(live)} (the rest fell back to salt-call)",
            flush=True,
        )
        print(
            f"sleep signal -> all {len(live)} live minions in successful_deployments: {elapsed:.1f}s "
            f"(first {firsts[0]:.1f}s, median {statistics.median(firsts):.1f}s; hook runs "
            f"median {statistics.median(hook_times):.1f}s, max {hook_times[-1]:.1f}s, "
            f"exit codes {sorted({rc for _, rc in hook_done.values()})})",
            flush=True,
        )
        # The same fan-out applied through the master (what the execute endpoint's
        # `state.sls docker.release` does): the minion daemons are loaded, no salt-call start-up.
        release2 = self.call(
            "POST",
            f"/docker/projects/{project['id']}/releases/",
            201,
            json=release_body(f"{n}.live2", self.device_ids[:n], tag="v2"),
        )
        self.salt("salt", "*", "saltutil.refresh_pillar", "wait=True", "--out=quiet", "-t", "300")
        self.salt("salt", "*", "docker.release_pull", "--out=json", "--static", "-t", "600")
        start = time.monotonic()
        self.salt("salt", "*", "state.sls", "docker.release", "--async")
        seen2 = self.wait_for_success(project["id"], release2["id"], live_devices, start)
        via_master = max(seen2.values())
        print(
            f"state.sls docker.release through the master -> all {len(live)} in successful_deployments: "
            f"{via_master:.1f}s (first {min(seen2.values()):.1f}s, median {statistics.median(seen2.values()):.1f}s)",
            flush=True,
        )
        return {
            "creation_ms": results,
            "creation_ms_live_fleet": loaded_ms,
            "prepull_s": prepull,
            "sleep_to_success_s": elapsed,
            "first_success_s": firsts[0],
            "hooks_via_local_api": via_api,
            "median_success_s": statistics.median(firsts),
            "via_master_s": via_master,
        }

    def close(self):
        """Stop everything this run started: its processes (each in its own session, with
        whatever they spawned) and its Docker engines. Runs on success, failure and
        SIGINT/SIGTERM/SIGHUP (harness.stop_on_signals); further signals are ignored meanwhile."""
        ignore_stop_signals()
        print(f"fanout_bench: stopping {len(self.procs)} processes", flush=True)
        for proc in reversed(self.procs):
            _signal_group(proc, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
            # also whatever the leader left behind in its group (salt's process managers)
            _signal_group(proc, signal.SIGKILL)
        testbed_state = pathlib.Path(os.environ.get("BERTH_TESTBED_DIR", "/var/lib/berth-testbed"))
        print(f"fanout_bench: stopping {len(self.engines)} Docker engines", flush=True)
        for name in self.engines:
            subprocess.run([str(TESTBED), "engine-down", name], capture_output=True, timeout=120)
            engine_dir = testbed_state / "engines" / name
            # an engine stopped while starting may not have written its pidfile yet
            subprocess.run(
                ["pkill", "-KILL", "-f", "--", f"--pidfile {engine_dir}/docker.pid"],
                capture_output=True,
                timeout=30,
            )
            shutil.rmtree(engine_dir, ignore_errors=True)
        if not self.args.keep:
            shutil.rmtree(self.state, ignore_errors=True)
        print("fanout_bench: stopped everything it started", flush=True)


def _signal_group(proc: subprocess.Popen, sig) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minions", type=int, default=20)
    parser.add_argument("--sizes", default="10,100,10000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--settle", type=float, default=2.0, help="docker.release_settle_seconds on the minions"
    )
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--creation-only",
        action="store_true",
        help="only time release creation (API on its own: no testbed, salt or minions)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the state dir (logs) afterwards")
    args = parser.parse_args()
    args.sizes = sorted(int(n) for n in args.sizes.split(","))
    stop_on_signals()
    bench = Bench(args)
    print(f"fanout_bench: pid {os.getpid()}, state in {bench.state}", flush=True)
    try:
        summary = bench.run()
        print(json.dumps(summary))
    finally:
        bench.close()


if __name__ == "__main__":
    main()
