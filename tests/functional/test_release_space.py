"""Free space is checked before anything is pulled or stopped (issue 13 item 5), on an engine
whose data root is a small tmpfs: a release whose images cannot fit fails at once with the
reason and the running release untouched; one that fits applies."""

import io
import os
import pathlib
import subprocess
import uuid

import pytest

from berth.release import commands
from tests.fixtures.docker import TESTBED

pytestmark = [pytest.mark.docker]

DATA_SIZE = "160M"


@pytest.fixture(scope="module")
def small_engine(testbed):
    name = f"small-{os.getpid()}-{uuid.uuid4().hex[:4]}"
    proc = subprocess.run(
        [str(TESTBED), "engine", name, "--data-size", DATA_SIZE],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/testbed engine {name} failed: {proc.stderr.strip()}")
    yield proc.stdout.strip().split("DOCKER_HOST=", 1)[1]
    subprocess.run([str(TESTBED), "engine-down", name], capture_output=True, timeout=120)
    state = pathlib.Path(os.environ.get("BERTH_TESTBED_DIR", "/var/lib/berth-testbed"))
    subprocess.run(["rm", "-rf", str(state / "engines" / name)], timeout=120)


@pytest.fixture(scope="module")
def big_image(testbed, release_images):
    """60 MB of random bytes (incompressible) on top of the test base image, in the registry."""
    ref = f"{testbed.registry}/big{uuid.uuid4().hex[:6]}:1"
    cli = testbed.client()
    dockerfile = (
        b"FROM berth-busybox:base\n"
        b"RUN head -c 60000000 /dev/urandom > /big\n"
        b'CMD ["sh", "-c", "trap \\"exit 0\\" TERM; sleep 3600 & wait"]\n'
    )
    cli.images.build(fileobj=io.BytesIO(dockerfile), tag=ref, network_mode="none", rm=True)
    cli.login(testbed.user, testbed.password, registry=testbed.registry)
    for line in cli.api.push(ref, stream=True, decode=True):
        assert "error" not in line, line
    cli.api.remove_image(ref)
    cli.close()
    image, tag = ref.split("/", 1)[1].rsplit(":", 1)
    return image, tag


def container(name, image, tag):
    return {
        "name": name,
        "image": image,
        "tag": tag,
        "required_tags": [],
        "registry": 1,
        "purge_data": False,
        "startup_parameters": {"network_mode": "none"},
    }


def test_release_that_cannot_fit_fails_before_anything_is_stopped(
    small_engine, testbed, release_images, big_image, release_pillar, tmp_path
):
    cli = testbed.client(small_engine)
    opts = {
        "docker.url": small_engine,
        "docker.release_state_dir": str(tmp_path / "state"),
        "docker.release_settle_seconds": 0.5,
        "id": "small-disk",
    }
    regs = {"1": testbed.registries_pillar()[1]}
    small = release_pillar(50, [container("app", *release_images["curveball_base"])])
    result = commands.executor(opts).apply(commands.target(small, regs))
    assert result["outcome"] == "succeeded", result["error"]  # small images fit
    before = {c["Id"]: c["State"] for c in cli.api.containers(all=True)}
    images_before = {i["Id"] for i in cli.api.images()}

    big = release_pillar(51, [container("app", *big_image)])
    result = commands.executor(opts).apply(commands.target(big, regs))

    assert result["outcome"] == "failed"
    assert "not enough disk space for the release's images" in result["error"]
    assert "nothing was stopped" in result["error"] and "free on" in result["error"]
    assert {c["Id"]: c["State"] for c in cli.api.containers(all=True)} == before
    assert {i["Id"] for i in cli.api.images()} == images_before  # not even pulled
    assert not (tmp_path / "state" / "journal.json").exists()
    assert commands.status(opts)["release_id"] == 50

    # pre-pulling says the same instead of filling the disk
    with pytest.raises(Exception, match="not enough disk space"):
        commands.executor(opts).pull(commands.target(big, regs))
    # with the check off, the operator may still try
    assert (
        commands.executor({**opts, "docker.release_space_factor": 0})._space_shortfall(
            [], commands.target(big, regs)
        )
        is None
    )
    cli.close()
