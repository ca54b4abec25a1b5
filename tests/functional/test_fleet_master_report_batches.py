"""The master's runner (``_runners/berth.py``: ``berth.report``, ``berth.flush``) against the real
API served on a port (issue 20, item 2): results spooled while the API was away are flushed in
lists, so 250 of them are 3 requests (``batch_size: 100``); the one the API refuses (a forged
signature) is moved aside and the others are recorded; a burst of ``berth.report`` calls from the
reactor's threads is a fraction of the requests, every result recorded and none left spooled.
Requests are counted at the server (a WSGI wrapper around the app)."""

from __future__ import annotations

import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from api.audit import AuditEntry
from api.deployments.models import Deployment
from api.extensions import db
from berth.master.report_spool import Spool
from tests.fixtures.api import report_body, signed_report
from tests.fixtures.logbook import free_port
from tests.fixtures.salt import LiveApi
from tests.functional.test_fleet_api_rollouts import Fleet

pytestmark = pytest.mark.db

REPO = Path(__file__).resolve().parents[2]
REPORTS = 250


class CountingApi(LiveApi):
    """The API on a port; ``reports`` counts the report requests it was sent."""

    def __init__(self, app):
        super().__init__(self._count, free_port())
        self.flask = app
        self.reports = 0

    def _count(self, environ, start_response):
        if environ["PATH_INFO"] == "/master/deployments/report/":
            self.reports += 1
        return self.flask(environ, start_response)


def load_runner(opts):
    spec = importlib.util.spec_from_file_location("berth_runner", REPO / "_runners" / "berth.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.__opts__ = opts
    return module


@pytest.fixture
def setup(app, client, api_factory, account, user_token, master_token, tmp_path):
    fleet = Fleet(app, client, api_factory, account, user_token, master_token)
    devices = fleet.devices(REPORTS)
    release = fleet.release(devices)
    token_file = tmp_path / "master.token"
    token_file.write_text(master_token.token)
    os.chmod(token_file, 0o600)
    api = CountingApi(app)
    opts = {
        "cachedir": str(tmp_path / "cache"),
        "berth_api": {
            "url": api.url,
            "token_file": str(token_file),
            "timeout": 60,
            "spool_dir": str(tmp_path / "spool"),
            "batch_size": 100,
        },
    }
    yield fleet, devices, release, api, load_runner(opts), Spool(str(tmp_path / "spool"))
    api.stop()


def result(fleet, device, release):
    """The ``berth/release/result`` event data of ``device``, signed by it."""
    body = signed_report(fleet.app, report_body(fleet.units[device], release, "succeeded"), device)
    del body["unit_id"]
    return body


def recorded(fleet, release):
    with fleet.app.app_context():
        return dict(
            db.session.execute(
                select(Deployment.device_id, Deployment.status).where(
                    Deployment.release_id == release["id"]
                )
            ).all()
        )


def test_spooled_results_are_flushed_in_lists_and_a_refused_one_set_aside(setup):
    fleet, devices, release, api, runner, spool = setup
    forged = devices[117]
    for device in devices:  # the API is not up yet: every result is spooled
        data = result(fleet, device, release)
        if device == forged:
            data["signature"] = "0" * 64
        assert runner.report(fleet.units[device], data) == {"status": "spooled"}
    assert len(spool.entries()) == REPORTS and api.reports == 0

    api.start()
    assert runner.flush() == {"sent": REPORTS - 1, "rejected": 1, "remaining": 0}
    assert api.reports == 3  # 100 + 100 + 50, not 250
    assert spool.entries() == []
    aside = list((spool.dir / "rejected").glob("*.json"))
    assert [Spool.load(p)["unit_id"] for p in aside] == [fleet.units[forged]]
    statuses = recorded(fleet, release)
    assert {d: s for d, s in statuses.items() if d != forged} == {
        d: "succeeded" for d in devices if d != forged
    }
    assert statuses.get(forged) != "succeeded"
    with fleet.app.app_context():
        refused = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "report.refused")
        ).all()
    assert len(refused) == 1

    assert runner.flush() == {"sent": 0, "rejected": 0, "remaining": 0}
    assert api.reports == 3


def test_a_burst_of_results_from_the_reactor_is_a_few_requests(setup):
    """Results of every device at once through ``berth.report`` from 10 threads (the reactor's
    ``reactor_worker_threads``): all recorded, none left in the spool, a tenth of the requests
    or fewer (4 or 5 seen)."""
    fleet, devices, release, api, runner, spool = setup
    events = [(fleet.units[d], result(fleet, d, release)) for d in devices]
    api.start()
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda event: runner.report(*event), events))
    assert {a["status"] for a in answers} <= {"sent", "batched"}, answers
    assert spool.entries() == []
    assert recorded(fleet, release) == {d: "succeeded" for d in devices}
    assert api.reports <= REPORTS // 10, api.reports
