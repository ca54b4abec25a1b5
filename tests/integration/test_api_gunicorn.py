"""The API served the production way: gunicorn with several workers sharing one database."""

import pytest
import requests

from tests.fixtures.browser import start_gunicorn, stop_gunicorn


@pytest.fixture
def gunicorn_api(app, api_database_url, tmp_path):
    proc, base, _log = start_gunicorn(api_database_url, tmp_path, workers=3)
    try:
        yield base
    finally:
        stop_gunicorn(proc)


def test_release_flow_over_http(gunicorn_api, user_token, device):
    s = requests.Session()
    s.headers.update(user_token.headers)
    project = s.post(f"{gunicorn_api}/docker/projects/", json={"name": "p"}).json()
    body = {
        "version": "1",
        "devices": [device.id],
        "containers": [{"name": "app", "image": "app", "tag": "1"}],
        "pin_digests": False,  # images never pushed: run by tag (pinning: test_api_release_pinning.py)
    }
    # many requests so that several workers serve them
    for i in range(20):
        r = s.post(
            f"{gunicorn_api}/docker/projects/{project['id']}/releases/",
            json={**body, "version": str(i)},
        )
        assert r.status_code == 201, r.text
    for _ in range(30):
        r = s.get(f"{gunicorn_api}/devices/{device.id}/")
        assert r.status_code == 200 and r.json()["id"] == device.id
    r = s.post(
        f"{gunicorn_api}/docker/projects/{project['id']}/releases/",
        data="{bad",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.headers["Content-Type"] == "application/json"
    r = requests.get(f"{gunicorn_api}/devices/{device.id}/")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "APIToken"
