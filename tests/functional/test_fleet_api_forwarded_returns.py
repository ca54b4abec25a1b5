"""``POST /master/execute/returns/``: the return path behind Salt syndics (docs/scale.md "The
path up"). The lower master a device hangs off forwards the return of an execute job the API
published; the API takes it only from a credential that serves that device and only for a jid it
published to that device, and the poll answers with it while salt-api knows nothing.
(With real syndics: tests/integration/test_fleet_syndic.py.)"""

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from api.execute.models import ExecuteJob
from api.extensions import db
from api.outbox import OutboxMessage
from api.types import utcnow
from berth.contract import MAX_FORWARDED_RETURN_CHARS
from tests.fixtures.api import SALT_API_UNREACHABLE

pytestmark = pytest.mark.db

PATH = "/master/execute/returns/"
RESPONSE = {
    "fun": "docker.ps",
    "fun_args": ["all=True"],
    "return": {"deployment-app-7": {"State": "running"}},
    "retcode": 0,
    "success": True,
}


def published_job(app, device, jid="20261207120000123456", callback_url=None) -> str:
    """An execute job as ``service.submit`` records it before publishing (PENDING)."""
    with app.app_context():
        db.session.add(
            ExecuteJob(
                jid=jid,
                account_id=device.account_id,
                device_id=device.id,
                unit_id=device.unit_id,
                fun="docker.ps",
                arg=["all=True"],
                kwarg={},
                callback_url=callback_url,
                deadline=utcnow() + timedelta(seconds=120),
            )
        )
        db.session.commit()
    return jid


def forward(client, token, device, jid, response=None):
    body = {"unit_id": device.unit_id, "jid": jid, "response": response or RESPONSE}
    return client.post(PATH, json=body, headers=token.headers)


def poll(client, user_token, device, jid):
    resp = client.get(f"/dongle/devices/{device.id}/execute/{jid}/", headers=user_token.headers)
    assert resp.status_code == 200, resp.json
    return resp.json


@pytest.fixture
def tiers(app, client, api_factory, user, device):
    """Two lower masters of one account, each with its own master token; ``device`` enrolled
    through the first (its first pillar request binds it, as on a real lower master)."""
    app.config.update(SALT_API_UNREACHABLE)  # the poll can only use the forwarded return
    own, other = api_factory.token("master", user=user), api_factory.token("master", user=user)
    assert (
        client.get(f"/master/minions/{device.unit_id}/pillar/", headers=own.headers).status_code
        == 200
    )
    return own, other


def test_a_forwarded_return_finishes_the_job_and_the_poll_answers_with_it(
    app, client, user_token, device, tiers
):
    own, _ = tiers
    jid = published_job(app, device, callback_url="https://hooks.example.com/berth")
    assert poll(client, user_token, device, jid)["state"] == "PENDING"

    resp = forward(client, own, device, jid)
    assert resp.status_code == 200, resp.json
    assert resp.json == {"jid": jid, "state": "COMMAND_EXECUTED", "recorded": True}
    job = poll(client, user_token, device, jid)
    assert job == {
        "jid": jid,
        "device_id": device.id,
        "state": "COMMAND_EXECUTED",
        "response": RESPONSE,
    }

    # sent again (a retry of the lower master): nothing changes, the webhook is queued once
    again = forward(client, own, device, jid, {**RESPONSE, "return": "other", "retcode": 1})
    assert again.status_code == 200
    assert again.json == {"jid": jid, "state": "COMMAND_EXECUTED", "recorded": False}
    assert poll(client, user_token, device, jid)["response"] == RESPONSE
    with app.app_context():
        hooks = db.session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "webhook")
        )
    assert hooks == 1


def test_a_forwarded_return_without_its_function_names_the_jobs(
    app, client, user_token, device, tiers
):
    """The lower master's job cache may not hold the load (``berth.master.forward``: fun
    None); the poll still answers with the ExecuteResult its operation declares (fun a string)."""
    own, _ = tiers
    jid = published_job(app, device)
    assert forward(client, own, device, jid, {**RESPONSE, "fun": None}).status_code == 200
    assert poll(client, user_token, device, jid)["response"] == RESPONSE


def test_only_a_master_that_serves_the_device_and_only_for_its_own_jid(
    app, client, api_factory, account, user, user_token, device, tiers
):
    own, other = tiers
    jid = published_job(app, device)
    sibling = api_factory.device(account)
    sibling_jid = published_job(app, sibling, jid="20261207120000654321")
    client.get(f"/master/minions/{sibling.unit_id}/pillar/", headers=own.headers)
    stranger = api_factory.device()  # another account's device, with its own job
    stranger_jid = published_job(app, stranger, jid="20261207120000999999")
    stranger_master = api_factory.token("master", account=api_factory.account())

    refused = [
        # another lower master of the same account: it does not serve this device
        forward(client, other, device, jid),
        # the master that serves it, for a jid published to another device (of its own tier)
        forward(client, own, device, sibling_jid),
        # ... or a device's return named as another's
        forward(client, own, sibling, jid),
        # a jid the API never published
        forward(client, own, device, "20261207120000000001"),
        # another account's master about its own device's job: not this account's device
        forward(client, stranger_master, device, jid),
        # this account's master about the other account's device
        forward(client, own, stranger, stranger_jid),
    ]
    assert [r.status_code for r in refused] == [404] * len(refused), [r.json for r in refused]
    assert (
        client.post(
            PATH,
            json={"unit_id": device.unit_id, "jid": jid, "response": RESPONSE},
            headers=user_token.headers,
        ).status_code
        == 403
    )
    assert client.post(PATH, json={"unit_id": device.unit_id, "jid": jid}).status_code == 401
    for dev, j in ((device, jid), (sibling, sibling_jid)):
        assert poll(client, user_token, dev, j)["state"] == "PENDING"
    with app.app_context():
        assert db.session.scalar(
            select(ExecuteJob.state).where(ExecuteJob.jid == stranger_jid)
        ) == ("PENDING")


def test_a_finished_job_is_not_changed_by_a_late_return(app, client, user_token, device, tiers):
    own, _ = tiers
    jid = published_job(app, device)
    with app.app_context():
        job = db.session.scalar(select(ExecuteJob).where(ExecuteJob.jid == jid))
        job.deadline = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert poll(client, user_token, device, jid)["state"] == "TIMEOUT"
    resp = forward(client, own, device, jid)
    assert resp.json == {"jid": jid, "state": "TIMEOUT", "recorded": False}


@pytest.mark.parametrize(
    "body,field",
    [
        ({"jid": "20261207120000123456", "response": RESPONSE}, "unit_id"),
        ({"unit_id": "u", "jid": "2026; DROP", "response": RESPONSE}, "jid"),
        ({"unit_id": "u", "jid": "2" * 33, "response": RESPONSE}, "jid"),
        ({"unit_id": "u", "jid": "20261207120000123456", "response": []}, "response"),
        ({"unit_id": "u", "jid": "20261207120000123456", "response": {"fun": "x"}}, "response"),
        (
            {"unit_id": "u", "jid": "1", "response": {**RESPONSE, "retcode": "0"}},
            "response",
        ),
        (
            {"unit_id": "u", "jid": "1", "response": {**RESPONSE, "success": "yes"}},
            "response",
        ),
        (
            {"unit_id": "u", "jid": "1", "response": {"return": "x" * MAX_FORWARDED_RETURN_CHARS}},
            "response",
        ),
        (
            {"unit_id": "u", "jid": "1", "response": {"return": float("inf")}},
            "response",
        ),
    ],
)
def test_bad_bodies_are_400_naming_the_field(client, master_token, body, field):
    resp = client.post(PATH, json=body, headers=master_token.headers)
    assert resp.status_code == 400, resp.json
    assert field in resp.json, resp.json


def test_it_is_in_the_openapi_document(client):
    op = client.get("/openapi.json").json["paths"][PATH]["post"]
    assert op["tags"] == ["master"]
    assert set(op["responses"]) >= {"200", "400", "401", "403", "404"}
