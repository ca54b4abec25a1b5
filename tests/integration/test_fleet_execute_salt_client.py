"""api.salt_client against a real salt-master + salt-api (rest_cherrypy, sharedsecret eauth) + minion."""

import pytest

from api.salt_client import SaltApiClient, SaltApiError
from tests.fixtures.salt import job_returned

pytestmark = pytest.mark.salt_daemons


def test_local_async_and_job_lookup(salt_api, salt_minions):
    minion = salt_minions[0].id
    client = SaltApiClient(salt_api.url, salt_api.username, salt_api.password, salt_api.eauth)
    jid, minions = client.local_async([minion, "no-such-minion"], "test.echo", ["hello"])
    assert jid and minions == [minion]
    job = job_returned(client, jid, minion)
    ret = job.returns[minion]
    assert job.found and job.fun == "test.echo" and job.fun_args == ["hello"]
    assert ret.as_response() == {
        "fun": "test.echo",
        "fun_args": ["hello"],
        "return": "hello",
        "retcode": 0,
        "success": True,
    }


def test_pending_job_then_failed_return(salt_api, salt_minions):
    minion = salt_minions[0].id
    client = SaltApiClient(salt_api.url, salt_api.username, salt_api.password, salt_api.eauth)
    jid, _ = client.local_async([minion], "test.sleep", [2])
    early = client.job(jid)
    assert early.found and early.returns == {} and early.minions == [minion]
    job_returned(client, jid, minion)
    jid, _ = client.local_async([minion], "test.retcode", kwarg={"code": 3})
    ret = job_returned(client, jid, minion).returns[minion]
    assert ret.retcode == 3 and ret.success is False


def test_unknown_minion_and_unknown_job(salt_api):
    client = SaltApiClient(salt_api.url, salt_api.username, salt_api.password, salt_api.eauth)
    assert client.local_async(["nobody-here"], "test.ping") == (None, [])
    assert client.job("20000101000000000000").found is False


def test_token_renewed_after_invalidation(salt_api, salt_minions):
    client = SaltApiClient(salt_api.url, salt_api.username, salt_api.password, salt_api.eauth)
    client.login()
    client._token = "not-a-valid-token"  # as after a master restart
    jid, minions = client.local_async([salt_minions[0].id], "test.ping")
    assert jid and minions == [salt_minions[0].id]
    assert client._token != "not-a-valid-token"


def test_wrong_password_is_a_clear_error(salt_api):
    client = SaltApiClient(salt_api.url, salt_api.username, "wrong", salt_api.eauth)
    with pytest.raises(SaltApiError, match="refused the login of user"):
        client.local_async(["x"], "test.ping")


def test_unreachable_salt_api_is_a_clear_error():
    client = SaltApiClient("http://127.0.0.1:9", "u", "p", timeout=1)
    with pytest.raises(SaltApiError, match="unreachable"):
        client.job("1")
