#!/usr/bin/env python3
"""Signature verification: what the device's check costs per container, and what verification
adds to creating a 10-container release on the API (when the API verifies: issue 18 item 2).

* the device (``berth.release.executor.Executor.check_signatures``: per container a registry
  client with the testbed credentials, the ``sha256-<hex>.sig`` manifest, the payload blob, an
  ECDSA P-256 verification) against the testbed registry, for ``--containers`` images each
  signed with ``tests/fixtures/cosign.py``: median and max per container over ``--repeat`` runs,
  cold (nothing remembered) and remembered (what an apply after a pre-pull costs);
* the API: ``POST .../releases/`` of those containers by digest, the account requiring
  signatures with the signing key registered, against the same release without the requirement
  (the Flask app in-process on a temp SQLite database); skipped when the API in this checkout
  has no ``/docker/signing-keys/``.

Needs the testbed registry (``scripts/testbed up``; ``eval "$(scripts/testbed env)"``):

    .venv/bin/python bench/signing_bench.py [--repeat 20] [--containers 10]
"""

from __future__ import annotations

import argparse
import logging
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# imports below need the repository on sys.path (set just above): E402 is expected
from harness import app_in_process, releases_url  # noqa: E402

from berth.release.executor import Executor  # noqa: E402
from berth.release.model import target_from_pillar  # noqa: E402
from tests.fixtures import cosign  # noqa: E402
from tests.fixtures.docker import Testbed, _testbed_env  # noqa: E402
from tests.fixtures.registry import RegistryPush  # noqa: E402


def ms(times: list[float]) -> str:
    return f"median {statistics.median(times):6.2f} ms, max {max(times):6.2f} ms"


def device(testbed, images, key_pem, repeat) -> None:
    pillar = {
        "id": 1,
        "version_hash": "bench",
        "containers": [
            {"name": f"c{i}", "image": repo, "tag": "1.0", "registry": 1, "digest": digest}
            for i, (repo, digest) in enumerate(images)
        ],
    }
    target = target_from_pillar(pillar, testbed.registries_pillar())
    n = len(images)
    with tempfile.TemporaryDirectory(prefix="berth-signing-bench-") as state:
        ex = Executor(None, state, trusted_keys=[key_pem])
        cold, warm = [], []
        for _ in range(repeat):
            ex.verified_path.unlink(missing_ok=True)
            started = time.perf_counter()
            signed = ex.check_signatures(target)
            cold.append((time.perf_counter() - started) * 1000 / n)
            assert len(signed) == n
            started = time.perf_counter()
            ex.check_signatures(target)
            warm.append((time.perf_counter() - started) * 1000 / n)
    print(f"device check per container, from the registry: {ms(cold)} ({repeat} runs of {n})")
    print(f"device check per container, remembered:        {ms(warm)} ({repeat} runs of {n})")


def api(testbed, images, key_pem, repeat) -> None:
    app, _, _, headers = app_in_process("signing")
    client = app.test_client()
    probe = client.get("/docker/signing-keys/", headers=headers)
    if probe.status_code == 404:
        print("API creation: skipped (this API has no /docker/signing-keys/ yet)")
        return
    registry, url = releases_url(client, headers, testbed)
    counter = iter(range(10**9))

    def create() -> float:
        body = {
            "version": f"v{next(counter)}",
            "containers": [
                {"name": f"c{i}", "image": repo, "tag": "1.0", "registry": registry, "digest": d}
                for i, (repo, d) in enumerate(images)
            ],
        }
        started = time.perf_counter()
        r = client.post(url, json=body, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        assert r.status_code == 201, r.json
        return elapsed

    create()
    plain = [create() for _ in range(repeat)]
    r = client.post(
        "/docker/signing-keys/", json={"name": "ci", "public_key": key_pem}, headers=headers
    )
    assert r.status_code == 201, r.json
    out = app.test_cli_runner().invoke(
        args=["accounts", "release-policy", "bench", "--require-signatures"]
    )
    assert out.exit_code == 0, out.output
    create()
    verified = [create() for _ in range(repeat)]
    n = len(images)
    print(f"API create, {n} containers, no verification:  {ms(plain)} ({repeat} runs)")
    print(f"API create, {n} containers, verified:         {ms(verified)} ({repeat} runs)")
    added = statistics.median(verified) - statistics.median(plain)
    print(f"added by verification at creation (median): {added:6.1f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--containers", type=int, default=10)
    args = parser.parse_args()
    logging.disable(logging.INFO)

    testbed = Testbed(_testbed_env())
    push = RegistryPush(testbed.registry, testbed.user, testbed.password)
    key = cosign.new_key()
    pem = cosign.public_pem(key)
    prefix = "signbench" + secrets.token_hex(3)
    images = []
    for i in range(args.containers):
        repo = f"{prefix}/app{i}"
        digest, _ = push.image(repo, "1.0")
        cosign.sign_and_push(push, repo, digest, key)
        images.append((repo, digest))
    device(testbed, images, pem, args.repeat)
    api(testbed, images, pem, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
