#!/usr/bin/env python3
"""Request budget: how long the API takes to answer the largest bodies it can be sent.

Every list in a body is capped (``api/limits.py``) before its items are validated and every
validator is linear, so no single request, valid or not, ties up a worker. This prints, for
the Flask app in-process on a temp SQLite database (median of ``--repeat`` runs):

* ``list_of(container_name, unique=True)`` on 100,000 names, the old ``list.count``
  duplicate check on 10,000 / 20,000 names (it is quadratic: 100,000 took minutes);
* ``POST .../releases/`` with 100,000 ``remove_containers`` entries (distinct and all equal),
  at the caps, and with a body at the 16 MiB size limit;
* ``POST /master/devices/sync/`` with 10,000 new unit ids; JSON nested 10,000 deep.

    .venv/bin/python bench/validation_bench.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# imports below need the repository on sys.path (set just above): E402 is expected
from harness import app_in_process  # noqa: E402

from api.fields import container_name, list_of  # noqa: E402
from api.limits import MAX_RELEASE_DEVICES, MAX_REMOVE_CONTAINERS  # noqa: E402


def timed(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def old_unique(names: list[str]) -> list[str]:
    """The duplicate check before issue 13 (kept here only to show its cost)."""
    return sorted({x for x in names if names.count(x) > 1})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.INFO)

    names = [f"c{i:06d}" for i in range(100_000)]
    check = list_of(container_name, unique=True)
    t, _ = timed(lambda: check(names), args.repeat)
    print(f"list_of(container_name, unique=True), 100,000 names: {t * 1000:8.1f} ms")
    for n in (10_000, 20_000):
        t, _ = timed(lambda n=n: old_unique(names[:n]), 1)
        print(f"old list.count duplicate check, {n:,} names:          {t * 1000:8.1f} ms")

    app, factory, user, headers = app_in_process("validation")
    master = factory.token("master", user=user).headers
    client = app.test_client()
    project = client.post("/docker/projects/", json={"name": "p"}, headers=headers).json["id"]
    url = f"/docker/projects/{project}/releases/"
    counter = iter(range(10**9))

    def post_release(extra: dict | None = None, raw: bytes | None = None):
        body = {"version": f"v{next(counter)}", "containers": [], **(extra or {})}
        data = raw if raw is not None else json.dumps(body).encode()
        return client.post(url, data=data, headers={**headers, "Content-Type": "application/json"})

    limit = app.config["MAX_CONTENT_LENGTH"]
    filler = ["ab"] * ((limit - 100) // 6)  # '"ab", ' is 6 bytes: just under the limit
    big = json.dumps({"version": "big", "containers": [], "remove_containers": filler}).encode()
    cases = [
        ("100,000 distinct remove_containers", lambda: post_release({"remove_containers": names})),
        (
            "100,000 equal remove_containers",
            lambda: post_release({"remove_containers": ["ab"] * 100_000}),
        ),
        (
            f"{MAX_REMOVE_CONTAINERS:,} remove_containers (the cap)",
            lambda: post_release({"remove_containers": names[:MAX_REMOVE_CONTAINERS]}),
        ),
        (
            f"{MAX_RELEASE_DEVICES:,} unknown devices (the cap)",
            lambda: post_release(
                {
                    "devices": [
                        f"00000000-0000-0000-0000-{i:012d}" for i in range(MAX_RELEASE_DEVICES)
                    ]
                }
            ),
        ),
        (
            f"{len(big) / 2**20:.1f} MiB body, {len(filler):,} entries",
            lambda: post_release(raw=big),
        ),
        (
            "JSON nested 10,000 deep",
            lambda: post_release(raw=b"[" * 10_000 + b"]" * 10_000),
        ),
    ]
    for label, call in cases:
        t, response = timed(call, args.repeat)
        print(f"POST release, {label:42s} {response.status_code}  {t * 1000:8.1f} ms")
    sync_batches = iter(range(10**6))

    def sync():
        batch = next(sync_batches)
        unit_ids = [f"bench-{batch}-{i}" for i in range(10_000)]
        return client.post("/master/devices/sync/", json={"unit_ids": unit_ids}, headers=master)

    t, response = timed(sync, args.repeat)
    print(
        f"POST /master/devices/sync/, 10,000 new unit ids             {response.status_code}  {t * 1000:8.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
