"""A real salt-minion running the berth_shipper engine against the real API process:
samples fired on the minion's event bus arrive exactly once, across an API outage; and with
its berth:logbook pillar from the real master's berth_api ext_pillar (the device's shipper token)."""

import json
import os
import pathlib
import time
import uuid

import pytest
from sqlalchemy import select

from api.accounts.models import ApiToken
from api.extensions import db
from api.master.logbook_settings import TOKEN_NAME
from berth.telemetry.spool import Spool
from tests.fixtures.logbook import Logbook

pytestmark = [pytest.mark.salt_daemons]

REPO = pathlib.Path(__file__).resolve().parents[2]
T0 = 1625097600000  # 2021-07-01T00:00:00Z
WINDOW = {"from_utc": "2021-07-01T00:00:00Z", "to_utc": "2021-07-02T00:00:00Z"}


def records(first, count):
    return [
        {
            "ts": T0 + i * 1000,
            "field": "obd.bat.voltage",
            "field_type": "float",
            "value": 12 + i / 100,
        }
        for i in range(first, first + count)
    ]


def eventually(check, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            assert result, f"timed out waiting for {what}"
            return result
        time.sleep(0.5)


@pytest.fixture(scope="module")
def logbook_master(salt_factories):
    factory = salt_factories.salt_master_daemon(
        f"berth-logbook-master-{uuid.uuid4().hex[:8]}", overrides={"log_level_logfile": "info"}
    )
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture
def shipping_minion(logbook_master, logbook_server, device, device_token):
    pillar = {
        "berth": {
            "logbook": {
                "url": logbook_server.url,
                "token": device_token.token,
                "device_id": device.id,
            }
        }
    }
    minion_id = f"logbook-{uuid.uuid4().hex[:8]}"
    top = logbook_master.pillar_tree.base.temp_file(
        "top.sls", f"base:\n  '{minion_id}':\n    - logbook\n"
    )
    data = logbook_master.pillar_tree.base.temp_file("logbook.sls", json.dumps(pillar))
    overrides = {
        "module_dirs": [str(REPO)],
        "log_level_logfile": "info",
        "engines": [{"berth_shipper": {"interval": 1, "batch_size": 50}}],
    }
    factory = logbook_master.salt_minion_daemon(minion_id, overrides=overrides)
    with top, data, factory.started(start_timeout=120):
        factory.spool_path = (
            pathlib.Path(factory.config["cachedir"]) / "berth_logbook_spool.sqlite3"
        )
        yield factory


def fire(minion, batch):
    result = minion.salt_call_cli(timeout=60).run(
        "event.fire", json.dumps({"records": batch}), "berth/logbook/record"
    )
    assert result.returncode == 0 and result.data is True, result


def stored(logbook):
    return logbook.read(field="obd.bat.voltage", field_type="float", size=100_000, **WINDOW).json


def test_samples_reach_the_api_exactly_once_across_an_outage(
    logbook, logbook_server, shipping_minion
):
    fire(shipping_minion, records(0, 20))
    eventually(lambda: len(stored(logbook)) == 20, what="the first 20 samples in the API")

    logbook_server.stop()  # offline: the engine keeps spooling
    for first in (20, 60, 100):
        fire(shipping_minion, records(first, 40))
    spool = Spool(str(shipping_minion.spool_path))
    eventually(lambda: len(spool) == 120, what="120 samples in the on-disk spool")
    time.sleep(3)  # several failed drain attempts while the API is down
    assert len(spool) == 120

    logbook_server.start()
    eventually(lambda: len(spool) == 0, what="the spool to drain")
    rows = stored(logbook)
    assert [r["value"] for r in rows] == [r["value"] for r in records(0, 140)]
    assert len({r["ts"] for r in rows}) == 140


@pytest.fixture
def api_master(salt_factories, logbook_server, master_token, tmp_path):
    """A real master whose ext_pillar berth_api asks the API process with a master-scope token."""
    token_file = tmp_path / "master.token"
    token_file.write_text(master_token.token + "\n")
    os.chmod(token_file, 0o600)
    overrides = {
        "module_dirs": [str(REPO)],
        "ext_pillar": [{"berth_api": {}}],
        "berth_api": {"url": logbook_server.url, "token_file": str(token_file), "timeout": 5},
        "pillar_cache": False,
        "log_level_logfile": "info",
    }
    factory = salt_factories.salt_master_daemon(
        f"berth-logbook-api-master-{uuid.uuid4().hex[:8]}", overrides=overrides
    )
    with factory.started(start_timeout=120):
        yield factory


def test_minion_ships_with_the_logbook_pillar_from_the_masters_ext_pillar(
    api_master, api_factory, account, logbook_server, app, client, user_token
):
    minion_id = f"logbook-{uuid.uuid4().hex[:8]}"
    device = api_factory.device(account, unit_id=minion_id)
    overrides = {
        "module_dirs": [str(REPO)],
        "log_level_logfile": "info",
        "engines": [{"berth_shipper": {"interval": 1, "batch_size": 50}}],
    }
    minion = api_master.salt_minion_daemon(minion_id, overrides=overrides)
    with minion.started(start_timeout=120):
        # salt masks pillar values in its output, so the API side tells which token the engine used
        fire(minion, records(0, 15))
        logbook = Logbook(client, device, user_token)
        eventually(
            lambda: len(stored(logbook)) == 15, what="15 samples shipped with the pillar's token"
        )
        assert [r["value"] for r in stored(logbook)] == [r["value"] for r in records(0, 15)]
        [token] = shipper_tokens(app, device)
        assert token.scope == "device" and token.last_used is not None and not token.revoked

        assert (
            minion.salt_call_cli(timeout=60).run("saltutil.refresh_pillar", wait=True).returncode
            == 0
        )
        assert minion.salt_call_cli(timeout=60).run("pillar.items").returncode == 0
        assert [t.id for t in shipper_tokens(app, device)] == [
            token.id
        ]  # served again, not minted per refresh


def shipper_tokens(app, device):
    with app.app_context():
        return db.session.scalars(
            select(ApiToken).where(ApiToken.device_id == device.id, ApiToken.name == TOKEN_NAME)
        ).all()
