"""A single-use enrollment token presented by 20 minions at once, through the real API served by
threads (werkzeug's threaded server: one database connection per request, as in production):
exactly one enrolls. The use count was read, incremented in Python and written back, so on SQLite
two of twelve concurrent enrollments used to succeed (issue 17, finding 8)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import select

from api.devices.models import Device
from api.extensions import db
from api.security.enrollment import EnrollmentToken
from api.security.tenancy import MinionEnrollment
from tests.fixtures.logbook import free_port
from tests.fixtures.salt import LiveApi

pytestmark = pytest.mark.db

MINIONS = 20


def test_twenty_simultaneous_enrollments_with_a_single_use_token_enroll_exactly_one(
    app, api_factory
):
    account = api_factory.account("fieldco")
    user = api_factory.token("user", account=account)
    platform = app.test_cli_runner().invoke(
        args=["platform-token", "create", "--name", "salt-eu-1"]
    )
    headers = {"Authorization": f"APIToken {platform.output.strip().splitlines()[-1]}"}
    live = LiveApi(app, free_port())
    live.start()
    try:
        token = requests.post(
            live.url + "/enrollment-tokens/",
            json={"name": "one device", "max_uses": 1},
            headers=user.headers,
            timeout=30,
        ).json()["token"]
        start = threading.Barrier(MINIONS)

        def enroll(n):
            start.wait()  # all 20 requests leave together
            return requests.post(
                live.url + "/master/devices/enroll/",
                json={"unit_id": f"field-unit-{n:02d}", "enrollment_token": token},
                headers=headers,
                timeout=60,
            )

        with ThreadPoolExecutor(MINIONS) as pool:
            answers = list(pool.map(enroll, range(MINIONS)))
    finally:
        live.stop()

    codes = sorted(r.status_code for r in answers)
    assert codes == [200] + [400] * (MINIONS - 1), [(r.status_code, r.text) for r in answers]
    refused = [r.json() for r in answers if r.status_code == 400]
    assert all(list(body) == ["enrollment_token"] for body in refused)
    with app.app_context():
        assert len(db.session.scalars(select(MinionEnrollment)).all()) == 1
        assert db.session.scalars(select(EnrollmentToken.uses)).one() == 1
        enrolled = [r.json()["unit_id"] for r in answers if r.status_code == 200]
        assert db.session.scalars(select(Device.unit_id)).all() == enrolled
