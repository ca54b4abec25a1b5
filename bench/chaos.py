"""Seeded fault injection of the release engine on a real Docker engine (scripts/testbed).

Each round applies a random release (good, crashing, unhealthy, missing tag, slow to stop,
with purge_data; the device starts with an "initial" container) in a child process that is
SIGKILLed at a random fault point or a random time, sometimes restarts the engine in the
middle, then recovers (``recover`` or a re-apply) and checks the promise: exactly one
release's containers run (the new one after success, the last good one otherwise),
``release_status`` tells the truth, nothing of a failed release is left, and purged data sits
where the running release expects it.

Usage: .venv/bin/python bench/chaos.py [--rounds 200] [--seed 1] [--quiet]
(needs ``scripts/testbed up`` and its env: DOCKER_HOST, BERTH_REGISTRY*; uses its own engine)
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# imports below need the repository on sys.path (set just above): E402 is expected
from tests.fixtures.release_faults import Chaos, build_images, engine_host, testbed  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quiet", action="store_true", help="print violations and the summary only")
    args = ap.parse_args()
    for key in ("DOCKER_HOST", "BERTH_REGISTRY", "BERTH_REGISTRY_USER", "BERTH_REGISTRY_PASSWORD"):
        if not os.environ.get(key):
            sys.exit(f'{key} is not set: eval "$(scripts/testbed env)" first')
    engine = f"chaos-{os.getpid()}"
    host = engine_host(engine)
    registry = {
        "url": os.environ["BERTH_REGISTRY"],
        "username": os.environ["BERTH_REGISTRY_USER"],
        "password": os.environ["BERTH_REGISTRY_PASSWORD"],
    }
    started = time.monotonic()
    try:
        images = build_images(registry["url"], os.environ["DOCKER_HOST"])
        with tempfile.TemporaryDirectory(prefix="berth-chaos-") as tmp:

            def log(line):
                if not args.quiet or "VIOLATION" in line:
                    print(line, flush=True)

            chaos = Chaos(engine, host, registry, images, pathlib.Path(tmp), args.seed, log=log)
            chaos.setup()
            for _ in range(args.rounds):
                chaos.round()
            print(f"seed {args.seed}: {chaos.summary()}  ({time.monotonic() - started:.0f} s)")
            for v in chaos.violations:
                print("  " + v)
            return 1 if chaos.violations else 0
    finally:
        testbed("engine-down", engine, check=False)
        state = pathlib.Path(os.environ.get("BERTH_TESTBED_DIR", "/var/lib/berth-testbed"))
        import shutil

        shutil.rmtree(state / "engines" / engine, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
