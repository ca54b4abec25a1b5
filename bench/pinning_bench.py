#!/usr/bin/env python3
"""Digest pinning: what it adds to creating a release, and what the device's check costs.

* ``POST .../releases/`` with 10 containers (10 distinct images pushed to the testbed registry
  through its HTTP API), pinned (each ``image:tag`` resolved on the registry: Basic auth, plain
  HTTP on loopback) and with ``"pin_digests": false``; the Flask app in-process on a temp SQLite
  database; median and max of ``--repeat`` creations each;
* the device's check of a pinned image before anything is stopped (``check_digest``: the
  engine's ``RepoDigests`` of ``<repo>@<digest>``), per container, on the testbed engine.

Needs the testbed (``scripts/testbed up``; ``eval "$(scripts/testbed env)"`` or it is started):

    .venv/bin/python bench/pinning_bench.py [--repeat 20] [--containers 10]
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# imports below need the repository on sys.path (set just above): E402 is expected
from harness import app_in_process, releases_url  # noqa: E402

from tests.fixtures.docker import Testbed, _testbed_env  # noqa: E402
from tests.fixtures.registry import RegistryPush  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--containers", type=int, default=10)
    args = parser.parse_args()
    logging.disable(logging.INFO)

    testbed = Testbed(_testbed_env())
    push = RegistryPush(testbed.registry, testbed.user, testbed.password)
    prefix = "bench" + secrets.token_hex(3)
    images = [f"{prefix}/app{i}" for i in range(args.containers)]
    for image in images:
        push.image(image, "1.0")

    app, _, _, headers = app_in_process("pinning")
    client = app.test_client()
    registry, url = releases_url(client, headers, testbed)
    counter = iter(range(10**9))

    def create(pin: bool) -> float:
        body = {
            "version": f"v{next(counter)}",
            "containers": [
                {"name": f"c{i}", "image": image, "tag": "1.0", "registry": registry}
                for i, image in enumerate(images)
            ],
            "pin_digests": pin,
        }
        started = time.perf_counter()
        r = client.post(url, json=body, headers=headers)
        elapsed = time.perf_counter() - started
        assert r.status_code == 201, r.json
        assert all((c["digest"] is not None) == pin for c in r.json["containers"])
        return elapsed * 1000

    create(True), create(False)  # warm-up: connection pools, first queries
    results = {}
    for pin in (False, True):
        times = [create(pin) for _ in range(args.repeat)]
        results[pin] = times
        label = "pinned" if pin else "pin_digests false"
        print(
            f"create, {args.containers} containers, {label:17}: median "
            f"{statistics.median(times):7.1f} ms, max {max(times):7.1f} ms ({args.repeat} runs)"
        )
    added = statistics.median(results[True]) - statistics.median(results[False])
    print(f"added by pinning (median): {added:7.1f} ms (target <= 200 ms)")

    # the device's check of one pinned image: pull it by digest once, then time the check
    from berth import dockerutil, registryclient

    ref = f"{testbed.registry}/{prefix}/device:1"
    subprocess.run(
        [str(REPO / "scripts" / "testbed"), "image", ref],
        check=True,
        capture_output=True,
        env={**os.environ, **testbed.env()},
    )
    digest = registryclient.resolve(
        testbed.registry, f"{prefix}/device", "1", (testbed.user, testbed.password)
    )
    pinned = f"{testbed.registry}/{prefix}/device@{digest}"
    cli = testbed.client()
    try:
        cli.login(username=testbed.user, password=testbed.password, registry=testbed.registry)
        dockerutil.pull(cli, pinned, {"username": testbed.user, "password": testbed.password})
        times = []
        for _ in range(max(args.repeat, 50)):
            started = time.perf_counter()
            assert pinned in dockerutil.repo_digests(cli, pinned)
            times.append((time.perf_counter() - started) * 1000)
        print(
            f"device check_digest per container: median {statistics.median(times):5.2f} ms, "
            f"max {max(times):5.2f} ms ({len(times)} runs)"
        )
        cli.api.remove_image(pinned, force=True)
    finally:
        cli.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
