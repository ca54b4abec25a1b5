"""Release engine benchmark on a real Docker engine (scripts/testbed).

Measures, on a dedicated testbed engine with cached images:
  (a) a no-op apply (release applied, containers running), in-process;
  (b) switching a 2-container release (stop old, create+start new, verify, remove old)
      with the settle time at 0, next to the same switch done by Debian's docker-compose
      (``up -d`` of a changed compose file: recreate both services) on the same engine;
  (c) the same switch with the default settle time, to show what settling costs.

Usage: .venv/bin/python bench/release_bench.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# imports below need the repository on sys.path (set just above): E402 is expected
from berth import dockerutil  # noqa: E402
from berth.release.commands import DEFAULT_SETTLE_SECONDS  # noqa: E402
from berth.release.executor import Executor  # noqa: E402
from berth.release.model import target_from_pillar  # noqa: E402

TESTBED = REPO / "scripts" / "testbed"
QUICK_STOP = ["sh", "-c", 'trap "exit 0" TERM; sleep 3600 & wait']


def sh(*args, env=None, check=True):
    return subprocess.run(args, capture_output=True, text=True, env=env, check=check)


def release(rid: int, tag: str) -> dict:
    return {
        "id": rid,
        "version": f"bench-{rid}",
        "version_hash": f"{rid:08x}",
        "project": 1,
        # both tags required: the switch back and forth must find its images cached
        "containers": [
            {
                "name": n,
                "image": f"bench-{n}",
                "tag": tag,
                "required_tags": ["1", "2"],
                "startup_parameters": {"network_mode": "host"},
                "purge_data": False,
                "registry": None,
            }
            for n in ("alpha", "beta")
        ],
        "remove_containers": [],
    }


def compose_file(path: pathlib.Path, tag: str) -> None:
    services = "".join(
        f"  {n}:\n    image: bench-{n}:{tag}\n    network_mode: host\n    restart: always\n"
        for n in ("alpha", "beta")
    )
    path.write_text(f"version: '2.4'\nservices:\n{services}")


def median_ms(samples):
    return statistics.median(samples) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rounds", type=int, default=10, help="switches per contender (default 10)"
    )
    parser.add_argument("--noop-rounds", type=int, default=50)
    args = parser.parse_args()

    engine = f"bench-{os.getpid()}"
    out = sh(str(TESTBED), "engine", engine).stdout
    docker_host = out.strip().split("DOCKER_HOST=", 1)[1]
    env = {**os.environ, "DOCKER_HOST": docker_host}
    work = pathlib.Path(tempfile.mkdtemp(prefix="berth-bench-"))
    try:
        for n in ("alpha", "beta"):
            for tag in ("1", "2"):
                sh(
                    str(TESTBED),
                    "image",
                    f"bench-{n}:{tag}",
                    "--cmd",
                    json.dumps(QUICK_STOP),
                    env=env,
                )
        cli = dockerutil.client(docker_host)

        def executor(settle):
            return Executor(
                cli,
                work / "state",
                settle_seconds=settle,
                health_timeout=30,
                stop_timeout=10,
                device="bench",
            )

        releases = [
            target_from_pillar(release(100 + i, str(1 + i % 2)), {})
            for i in range(2 * args.rounds + 1)
        ]

        # (b) Berth switch, settle 0
        ex = executor(0)
        assert ex.apply(releases[0])["outcome"] == "succeeded"
        berth_switch = []
        for t in releases[1 : args.rounds + 1]:
            t0 = time.perf_counter()
            result = ex.apply(t)
            berth_switch.append(time.perf_counter() - t0)
            assert result["outcome"] == "succeeded", result["error"]

        # (a) no-op apply of the applied release, in-process (fresh Executor each time, as a Salt job would)
        noop = []
        for _ in range(args.noop_rounds):
            t0 = time.perf_counter()
            result = executor(0).apply(releases[args.rounds])
            noop.append(time.perf_counter() - t0)
            assert result["outcome"] == "unchanged"

        # (c) the switch with the default settle time
        settled = []
        ex_settle = executor(DEFAULT_SETTLE_SECONDS)
        for t in releases[args.rounds + 1 : args.rounds + 4]:
            t0 = time.perf_counter()
            assert ex_settle.apply(t)["outcome"] == "succeeded"
            settled.append(time.perf_counter() - t0)
        for c in cli.api.containers(all=True):
            cli.api.remove_container(c["Id"], force=True)

        # (b') docker-compose: the same two services switched between image tags
        compose = shutil.which("docker-compose")
        files = []
        for tag in ("1", "2"):
            f = work / f"compose-{tag}.yml"
            compose_file(f, tag)
            files.append(f)
        base = [compose, "-p", "berthbench"]
        sh(*base, "-f", str(files[0]), "up", "-d", env=env)
        compose_switch = []
        for i in range(args.rounds):
            f = files[(i + 1) % 2]
            t0 = time.perf_counter()
            sh(*base, "-f", str(f), "up", "-d", env=env)
            compose_switch.append(time.perf_counter() - t0)
        sh(*base, "-f", str(files[0]), "down", env=env, check=False)
        # what part of a compose switch is just its CLI starting (Python imports)
        compose_start = []
        for _ in range(3):
            t0 = time.perf_counter()
            sh(compose, "version", env=env)
            compose_start.append(time.perf_counter() - t0)
        cli.close()
    finally:
        sh(str(TESTBED), "engine-down", engine, check=False)
        state = pathlib.Path(os.environ.get("BERTH_TESTBED_DIR", "/var/lib/berth-testbed"))
        shutil.rmtree(state / "engines" / engine, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)

    b, c = median_ms(berth_switch), median_ms(compose_switch)
    print(
        f"no-op apply (in-process)        median {median_ms(noop):8.1f} ms  (n={len(noop)}, target < 500 ms)"
    )
    print(f"2-container switch, Berth, settle 0   median {b:8.1f} ms  (n={len(berth_switch)})")
    print(f"2-container switch, docker-compose    median {c:8.1f} ms  (n={len(compose_switch)})")
    print(f"ratio Berth / docker-compose           {b / c:8.2f}     (target <= 1.30)")
    print(
        f"  (part of every compose switch is its CLI starting: 'docker-compose version' median "
        f"{median_ms(compose_start):.0f} ms; Berth runs in-process, as in a Salt job)"
    )
    print(
        f"2-container switch, Berth, settle {DEFAULT_SETTLE_SECONDS:g} s median {median_ms(settled):8.1f} ms  "
        f"(n={len(settled)}; settling adds ~{median_ms(settled) - b:.0f} ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
