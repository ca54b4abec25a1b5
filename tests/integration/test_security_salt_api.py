"""salt-api itself refuses what the API does not publish (issue 17, finding 8): a real salt-master
+ salt-api running the shipped conf/master.d/salt-api.conf and a real minion. Before,
``test.*`` and unpinned ``state.sls`` let whoever held the API's salt-api credentials run any
function as root on every device (``test.cross_test cmd.run ...``)."""

import time

import pytest

from api.outbox import REFRESH_PILLAR, REGISTRIES_LOGIN, RELEASE_PULL
from api.salt_client import SaltApiClient, SaltApiRefused
from tests.fixtures.salt import job_returned

pytestmark = pytest.mark.salt_daemons


def _returned(client, jid, minion):
    return job_returned(client, jid, minion, timeout=60).returns[minion]


def test_salt_api_refuses_functions_outside_what_the_api_publishes(
    salt_api, salt_minions, tmp_path
):
    minion = salt_minions[0].id
    client = SaltApiClient(salt_api.url, salt_api.username, salt_api.password, salt_api.eauth)
    marker = tmp_path / "owned"
    for fun, arg, kwarg in (
        ("test.cross_test", ["cmd.run", [f"touch {marker}"]], None),
        ("cmd.run", [f"touch {marker}"], None),
        ("state.single", ["cmd.run"], {"name": f"touch {marker}"}),
        ("state.sls", ["docker.sleep"], None),
        ("state.sls", [], {"mods": "docker.sleep"}),
        ("state.apply", ["docker.sleep"], None),
        ("saltutil.cmd", ["*", "cmd.run", [f"touch {marker}"]], None),
        ("event.fire_master", [{"id": "another-device"}, "berth/release/result"], None),
    ):
        with pytest.raises(SaltApiRefused) as refused:
            client.local_async([minion], fun, arg, kwarg)
        assert fun in str(refused.value)
    # the API's own calls still go through, and GET /jobs/<jid> answers
    ping = client.local_async([minion], "test.ping")[0]
    assert _returned(client, ping, minion).ret is True
    for fun, arg, kwarg in (REFRESH_PILLAR, RELEASE_PULL, REGISTRIES_LOGIN):
        kwarg = {**kwarg, "test": True} if fun == "state.sls" else kwarg
        jid, minions = client.local_async([minion], fun, arg, kwarg)
        assert jid and minions == [minion], fun
        _returned(client, jid, minion)
    jid, _ = client.local_async([minion], "state.sls", ["docker.release"], {"test": True})
    _returned(client, jid, minion)
    time.sleep(2)
    assert not marker.exists()


def test_an_account_allowed_more_than_salt_api_permits_gets_a_403_naming_salt_api(
    app, client, api_factory, account, user_token, salt_api, salt_minions
):
    """The execute policy and salt-api's permissions are two fences: an administrator who allows
    ``cmd.run`` for an account without widening external_auth gets a clear refusal."""
    from sqlalchemy import select

    from api.execute.models import ExecuteJob
    from api.extensions import db

    app.config.update(salt_api.env(), BERTH_SALT_API_TIMEOUT="60")
    device = api_factory.device(account, unit_id=salt_minions[0].id)
    result = app.test_cli_runner().invoke(
        args=["accounts", "commands", account.name, "--allow", "cmd.run", "--allow", "test.ping"]
    )
    assert result.exit_code == 0 and "add cmd.run there too" in result.output, result.output
    url = f"/dongle/devices/{device.id}/execute/"
    resp = client.post(url, json={"command": "cmd.run", "arg": ["id"]}, headers=user_token.headers)
    assert resp.status_code == 403 and "salt-api does not permit" in resp.json["detail"], resp.json
    with app.app_context():
        assert db.session.scalars(select(ExecuteJob)).all() == []
    resp = client.post(url, json={"command": "test.ping"}, headers=user_token.headers)
    assert resp.status_code == 202, resp.json
