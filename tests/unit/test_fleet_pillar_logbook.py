"""ext_pillar ``berth_api``: the API's logbook settings become pillar ``berth:logbook`` next to ``docker:*``."""

import importlib.util
from pathlib import Path

import pytest

from berth.master import minion_pillar as pillar_mod
from berth.master.apiclient import ApiError

REPO = Path(__file__).resolve().parents[2]
LOGBOOK = {
    "url": "https://berth.example.com",
    "token": "berth_device-token",
    "device_id": "6f0c-dev",
}
RELEASE = {"id": 7, "version_hash": "96a7191f", "containers": []}
REGISTRIES = {"1": {"url": "r:5000", "username": "u", "password": "p"}}


class FakeClient:
    def __init__(self, answer):
        self.answer = answer
        self.asked = []

    def minion_pillar(self, minion_id):
        self.asked.append(minion_id)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture
def api(monkeypatch):
    client = FakeClient(None)
    monkeypatch.setattr(pillar_mod.ApiClient, "from_config", classmethod(lambda cls, conf: client))
    return client


def load_ext_pillar(opts):
    spec = importlib.util.spec_from_file_location(
        "berth_api_ext_pillar", REPO / "pillar" / "berth_api.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.__opts__ = opts
    return module


def test_ext_pillar_maps_logbook_alongside_release_and_registries(api):
    api.answer = {
        "release": RELEASE,
        "registries": REGISTRIES,
        "logbook": dict(LOGBOOK, extra="ignored"),
    }
    ext = load_ext_pillar({"berth_api": {"url": "http://api", "token_file": "/nope"}})
    assert ext.ext_pillar("m-1", {}) == {
        "docker": {"release": RELEASE, "registries": REGISTRIES},
        "berth": {"logbook": LOGBOOK},
    }
    assert api.asked == ["m-1"]


def test_device_without_release_still_gets_logbook(api):
    api.answer = {"release": None, "registries": {}, "logbook": LOGBOOK}
    assert pillar_mod.release_pillar({}, "m-1")["berth"] == {"logbook": LOGBOOK}


@pytest.mark.parametrize(
    "logbook",
    [
        None,
        {},
        {"url": "u", "token": "t"},
        {"url": "u", "token": "", "device_id": "d"},
        {"url": 1, "token": "t", "device_id": "d"},
        "x",
    ],
)
def test_missing_or_incomplete_logbook_leaves_no_berth_key(api, logbook, caplog):
    api.answer = {"release": RELEASE, "registries": REGISTRIES, "logbook": logbook}
    assert pillar_mod.release_pillar({}, "m-1") == {
        "docker": {"release": RELEASE, "registries": REGISTRIES}
    }
    assert "m-1" in caplog.text and "no logbook settings" in caplog.text


def test_unknown_device_and_api_failure_have_no_logbook(api):
    api.answer = ApiError("GET /master/minions/m-1/pillar/ failed: 404", status=404)
    assert "berth" not in pillar_mod.release_pillar({}, "m-1")
    api.answer = ApiError("GET /master/minions/m-1/pillar/ failed: 500", status=500)
    assert set(pillar_mod.release_pillar({}, "m-1")) == {"docker"}


def test_token_is_not_logged(api, caplog):
    caplog.set_level("DEBUG")
    api.answer = {"release": RELEASE, "registries": REGISTRIES, "logbook": LOGBOOK}
    pillar_mod.release_pillar({}, "m-1")
    assert LOGBOOK["token"] not in caplog.text
