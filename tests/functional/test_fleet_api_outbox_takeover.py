"""A worker that dies between publishing an outbox step and recording it: whoever takes the
message over after its lease does not publish it again (docs/scale.md, "Several API hosts").
Counted at a recording salt-api stand-in; several workers on PostgreSQL:
tests/integration/test_api_multihost.py."""

import time

import pytest
from sqlalchemy import select

from api.deployments.service import enqueue_release_notification
from api.extensions import db
from api.outbox import REFRESH_PILLAR, RELEASE_PULL, OutboxMessage
from api.salt_client import SaltApiClient
from api.worker import run_once
from tests.fixtures.salt_api_standin import start_standin

pytestmark = pytest.mark.db


class Died(BaseException):
    """The worker process ends here (SIGKILL): nothing after this line runs."""


@pytest.fixture
def standin():
    standin = start_standin()
    yield standin
    standin.server.shutdown()


def _configure(app, standin, caller):
    app.config.update(
        BERTH_SALT_API_URL=f"{standin.url}/{caller}",
        BERTH_SALT_API_USER="berth",
        BERTH_SALT_API_PASSWORD="x",
        BERTH_OUTBOX_LEASE="0.5",
    )


def test_a_step_published_by_a_dead_worker_is_not_published_again(
    app, device, standin, monkeypatch
):
    publish = SaltApiClient.local_async

    def publish_then_die(self, *args, **kwargs):
        publish(self, *args, **kwargs)
        raise Died

    _configure(app, standin, "worker-a")
    with app.app_context():
        enqueue_release_notification(1, [device.unit_id])
        db.session.commit()
        monkeypatch.setattr(SaltApiClient, "local_async", publish_then_die)
        with pytest.raises(Died):
            run_once()
        db.session.rollback()  # what the dead worker had not committed is gone
        db.session.remove()
    monkeypatch.setattr(SaltApiClient, "local_async", publish)
    assert [(p.fun, p.tgt) for p in standin.published()] == [(REFRESH_PILLAR[0], [device.unit_id])]

    _configure(app, standin, "worker-b")
    with app.app_context():
        run_once()  # within the lease: another worker leaves the message alone
        assert len(standin.published()) == 1 and not standin.lookups
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.3)
            run_once()
            db.session.remove()
            msg = db.session.scalars(select(OutboxMessage)).one()
            if msg.delivered_at is not None:
                break
        assert msg.delivered_at is not None, msg.last_error
        first = standin.published()[0]
        assert ("worker-b", first.jid) in standin.lookups  # found in the job cache
        assert [(p.caller, p.fun) for p in standin.published()] == [
            ("worker-a", REFRESH_PILLAR[0]),
            ("worker-b", RELEASE_PULL[0]),
        ]
        assert msg.payload["jids"] == [p.jid for p in standin.published()]


def test_a_step_never_published_is_published_by_the_next_worker(app, device, standin):
    _configure(app, standin, "worker-b")
    with app.app_context():
        enqueue_release_notification(2, [device.unit_id])
        msg = db.session.scalars(select(OutboxMessage)).one()
        # a worker chose the step's jid and died before salt-api got the publish
        msg.payload = {**msg.payload, "publishing": {"step": 0, "jid": "20260101000000000001"}}
        db.session.commit()
        run_once()
        assert [(p.caller, p.jid) for p in standin.published()] == [
            ("worker-b", "20260101000000000001")
        ]


def test_a_master_of_masters_job_waits_for_the_messages_minions(app, device, monkeypatch):
    """Behind syndics the top master's job names no targets (it has no keys for them) and their
    returns do not come up (docs/scale.md "Salt syndic tiers"): step 2 waits for the minions the
    message names, up to BERTH_OUTBOX_STEP_WAIT, instead of following step 1 at once."""
    from api.salt_client import JobInfo, new_jid

    sent = []

    def local_async(self, minions, fun, arg=None, kwarg=None, jid=None):
        sent.append(fun)
        return jid or new_jid(), []  # what salt-api on a master of masters answers

    monkeypatch.setattr(SaltApiClient, "local_async", local_async)
    monkeypatch.setattr(SaltApiClient, "job", lambda self, jid: JobInfo(jid=jid))
    app.config.update(
        BERTH_SALT_API_URL="http://127.0.0.1:9",
        BERTH_SALT_API_USER="berth",
        BERTH_SALT_API_PASSWORD="x",
        BERTH_OUTBOX_STEP_WAIT="2",
    )
    with app.app_context():
        enqueue_release_notification(1, [device.unit_id])
        db.session.commit()
        run_once()
        assert sent == [REFRESH_PILLAR[0]]
        time.sleep(1.1)  # past the step poll, within the step wait
        run_once()
        assert sent == [REFRESH_PILLAR[0]]
        time.sleep(2)
        run_once()
        assert sent == [REFRESH_PILLAR[0], RELEASE_PULL[0]]
        assert db.session.scalars(select(OutboxMessage)).one().delivered_at is not None
