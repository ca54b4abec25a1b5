"""Free-space estimate helpers (no engine, no registry)."""

import pytest

from berth.release import space


@pytest.mark.parametrize(
    "ref,expected",
    [
        ("127.0.0.1:5609/chaos-good:1", ("127.0.0.1:5609", "chaos-good", "1")),
        ("reg.example:5000/team/app:2.1", ("reg.example:5000", "team/app", "2.1")),
        ("ravendb:base", (space.DOCKER_HUB, "library/ravendb", "base")),
        ("user/app", (space.DOCKER_HUB, "user/app", "latest")),
        ("localhost/app@sha256:ab", ("localhost", "app", "sha256:ab")),
    ],
)
def test_split_reference(ref, expected):
    assert space.split(ref) == expected


def test_loopback_registries_are_plain_http_others_https():
    assert space._scheme("127.0.0.1:5609", None) == "http"
    assert space._scheme("localhost:5000", None) == "http"
    assert space._scheme("reg.example:5000", None) == "https"
    assert space._scheme("reg.example:5000", "http://reg.example:5000/") == "http"


def test_nothing_to_pull_or_check_disabled_needs_no_engine():
    assert space.shortfall(None, [], 3, 0) is None
    assert space.shortfall(None, [("a:1", None, None)], 0, 0) is None
