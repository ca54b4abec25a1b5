"""A short, fixed-seed run of the release engine's randomized fault injection on a real engine
(the long run is ``bench/chaos.py``): random releases, the applying process SIGKILLed at
random points, the engine restarted mid-apply, then recover or re-apply -- and after every
round the device runs exactly one release, the right one, with its data."""

import pytest

from tests.fixtures.release_faults import Chaos, build_images

pytestmark = [pytest.mark.docker]

SEED = 3
ROUNDS = 24


def test_seeded_fault_injection_keeps_the_promise(
    fresh_restartable_engine, testbed, tmp_path, capsys
):
    name, host = fresh_restartable_engine
    registry = testbed.registries_pillar()[1]
    images = build_images(registry["url"], testbed.docker_host)
    lines = []
    chaos = Chaos(name, host, registry, images, tmp_path, SEED, log=lines.append)
    chaos.setup()
    for _ in range(ROUNDS):
        chaos.round()
    report = "\n".join(lines + [chaos.summary()])
    assert chaos.violations == [], report
    # the run really injected faults of both kinds
    assert chaos.kills >= 4 and chaos.restarts >= 1, report
