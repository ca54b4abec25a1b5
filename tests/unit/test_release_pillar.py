"""berth.release.pillar: the one reading of docker:release / docker:registries / docker:error
for the docker module and the docker_release state (both exercised with real salt loaders in
tests/functional/test_release_module.py and test_release_failures.py)."""

import pytest

from berth.release import pillar


def _salt(data):
    calls = []

    def get(key, default=None, unmask=False):
        calls.append(unmask)
        node = data
        for part in key.split(":"):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    return {"pillar.get": get}, calls


def test_the_pillar_release_and_registries_unmasked():
    salt, calls = _salt({"docker": {"release": {"id": 1}, "registries": {"r": {}}}})
    assert pillar.release_and_registries(salt) == ({"id": 1}, {"r": {}})
    assert calls and all(calls)


def test_given_arguments_win_and_missing_registries_are_empty():
    salt, _ = _salt({"docker": {"release": {"id": 1}, "registries": None}})
    assert pillar.release_and_registries(salt, release={"id": 2}) == ({"id": 2}, {})


def test_docker_error_refuses_only_the_pillar_release():
    salt, _ = _salt({"docker": {"error": "timed out", "release": {"id": 1}}})
    with pytest.raises(pillar.PillarError, match="timed out"):
        pillar.release_and_registries(salt)
    assert pillar.release_and_registries(salt, release={"id": 3}) == ({"id": 3}, {})
