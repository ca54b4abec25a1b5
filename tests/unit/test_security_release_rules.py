"""berth.release.policy: which host paths are sensitive (shared by the API and the device)."""

import pytest

from berth.release import policy


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/etc",
        "/etc/",
        "/etc/salt/minion.d",
        "/data/../etc",
        "//etc",
        "/proc/1/root",
        "/sys",
        "/boot",
        "/dev",
        "/dev/mem",
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/var/lib/docker/volumes",
        "/var/lib/containerd",
        "/var",
        "/var/lib",
        "/run",
        "/var/cache/salt/minion",
        "/srv/salt",
        "/usr/bin",
    ],
)
def test_sensitive(path):
    assert policy.sensitive(path)


@pytest.mark.parametrize(
    "path",
    ["/home/balenaEngine/data", "/data/curveball", "/srv/berth/data", "/dev/ttyUSB0", "/dev/snd"],
)
def test_not_sensitive(path):
    assert policy.sensitive(path) is None


def test_allowed_paths_and_device_nodes():
    assert policy.sensitive("/var/run/docker.sock", allowed=["/var/run/docker.sock"]) is None
    assert policy.sensitive("/dev/ttyUSB0", device_nodes=()) == "/dev"
    assert policy.sensitive("/dev/mem", device_nodes=["/dev/mem"]) is None
