"""The salt-factories harness itself: master, salt-api with sharedsecret eauth, minions."""

import pytest
import requests

pytestmark = [pytest.mark.salt_daemons, pytest.mark.docker]


def test_minions_answer_and_each_has_its_own_engine(salt_cli, salt_minions):
    ids = [m.id for m in salt_minions]
    ret = salt_cli.run("test.ping", minion_tgt="*")
    assert ret.returncode == 0, ret
    for mid in ids:
        assert ret.data[mid] is True
    hosts = {m.docker_host for m in salt_minions}
    assert len(hosts) == len(ids)
    for minion in salt_minions:
        ret = salt_cli.run("config.get", "docker.url", minion_tgt=minion.id)
        assert ret.data == minion.docker_host


def test_salt_api_sharedsecret_login_and_local_async(salt_api, salt_minions):
    login = requests.post(
        f"{salt_api.url}/login",
        json={
            "username": salt_api.username,
            "password": salt_api.password,
            "eauth": salt_api.eauth,
        },
        timeout=30,
    )
    assert login.status_code == 200, login.text
    token = login.json()["return"][0]["token"]
    resp = requests.post(
        salt_api.url,
        headers={"X-Auth-Token": token, "Accept": "application/json"},
        json=[{"client": "local_async", "tgt": salt_minions[0].id, "fun": "test.ping"}],
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["return"][0]["minions"] == [salt_minions[0].id]


def test_salt_api_refuses_a_wrong_secret(salt_api):
    login = requests.post(
        f"{salt_api.url}/login",
        json={"username": salt_api.username, "password": "wrong", "eauth": salt_api.eauth},
        timeout=30,
    )
    assert login.status_code == 401
