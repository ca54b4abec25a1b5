"""/devices/ endpoints (real database)."""

import uuid

import pytest


def test_create_device_returns_its_own_id(client, user_token):
    unit = str(uuid.uuid4())
    r = client.post(
        "/devices/", json={"unit_id": unit, "display": "Van 12"}, headers=user_token.headers
    )
    assert r.status_code == 201, r.json
    body = r.json
    assert body["unit_id"] == unit
    assert body["display"] == "Van 12"
    assert body["docker_releases"] == []
    assert str(uuid.UUID(body["id"])) == body["id"] and body["id"] != unit


def test_get_list_update_delete(client, user_token):
    created = client.post(
        "/devices/", json={"unit_id": "minion-1"}, headers=user_token.headers
    ).json
    url = f"/devices/{created['id']}/"
    r = client.get(url, headers=user_token.headers)
    assert r.status_code == 200 and r.json == created
    r = client.get("/devices/", headers=user_token.headers)
    assert r.json["count"] == 1 and r.json["results"] == [created]
    r = client.patch(url, json={"display": "renamed"}, headers=user_token.headers)
    assert (
        r.status_code == 200 and r.json["display"] == "renamed" and r.json["unit_id"] == "minion-1"
    )
    r = client.put(url, json={"display": "x"}, headers=user_token.headers)
    assert r.status_code == 400 and r.json == {"unit_id": ["This field is required."]}
    r = client.put(url, json={"unit_id": "minion-2", "display": "x"}, headers=user_token.headers)
    assert r.status_code == 200 and r.json["unit_id"] == "minion-2"
    r = client.delete(url, headers=user_token.headers)
    assert r.status_code == 204 and r.data == b""
    assert client.get(url, headers=user_token.headers).status_code == 404


def test_filter_by_unit_id(client, user_token):
    for unit in ("a-1", "a-2"):
        client.post("/devices/", json={"unit_id": unit}, headers=user_token.headers)
    r = client.get("/devices/?unit_id=a-2", headers=user_token.headers)
    assert [d["unit_id"] for d in r.json["results"]] == ["a-2"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "unit_id"),
        ({"unit_id": ""}, "unit_id"),
        ({"unit_id": "has space"}, "unit_id"),
        ({"unit_id": "../etc"}, "unit_id"),
        ({"unit_id": "a/b"}, "unit_id"),
        ({"unit_id": 5}, "unit_id"),
        ({"unit_id": "x" * 256}, "unit_id"),
        ({"unit_id": "ok", "display": 3}, "display"),
    ],
)
def test_invalid_device_bodies(client, user_token, body, field):
    r = client.post("/devices/", json=body, headers=user_token.headers)
    assert r.status_code == 400
    assert list(r.json) == [field]
    assert isinstance(r.json[field], list) and r.json[field][0]


def test_unit_id_is_unique_per_account(client, api_factory, user_token):
    r = client.post("/devices/", json={"unit_id": "mine"}, headers=user_token.headers)
    assert r.status_code == 201
    r = client.post("/devices/", json={"unit_id": "mine"}, headers=user_token.headers)
    assert r.status_code == 400
    assert r.json == {"unit_id": ["device with this unit id already exists."]}
    # another account's device of the same unit_id is neither refused nor revealed
    # (tests/functional/test_security_tenancy.py)
    api_factory.device(unit_id="taken")
    r = client.post("/devices/", json={"unit_id": "taken"}, headers=user_token.headers)
    assert r.status_code == 201 and r.json["enrolled"] is False


def test_other_accounts_device_is_404(client, api_factory, user_token):
    other = api_factory.device()
    for method in ("get", "patch", "put", "delete"):
        r = getattr(client, method)(f"/devices/{other.id}/", json={}, headers=user_token.headers)
        assert r.status_code == 404, method
        assert r.json == {"detail": "Not found."}
    assert client.get("/devices/", headers=user_token.headers).json["count"] == 0


def test_master_token_may_read_devices_but_not_create(client, master_token, device):
    assert client.get(f"/devices/{device.id}/", headers=master_token.headers).status_code == 200
    r = client.post("/devices/", json={"unit_id": "m"}, headers=master_token.headers)
    assert r.status_code == 403


def test_pagination(client, api_factory, account, user_token):
    for i in range(5):
        api_factory.device(account, unit_id=f"dev-{i}")
    r = client.get("/devices/?page_size=2", headers=user_token.headers)
    body = r.json
    assert body["count"] == 5 and len(body["results"]) == 2
    assert body["previous"] is None and "page=2" in body["next"] and "page_size=2" in body["next"]
    r = client.get("/devices/?page_size=2&page=3", headers=user_token.headers)
    assert len(r.json["results"]) == 1 and r.json["next"] is None and "page=2" in r.json["previous"]
    assert [d["unit_id"] for d in r.json["results"]] == ["dev-4"]
    r = client.get("/devices/?page=9", headers=user_token.headers)
    assert r.status_code == 404 and r.json == {"detail": "Invalid page."}
    r = client.get("/devices/?page=x", headers=user_token.headers)
    assert r.status_code == 400 and list(r.json) == ["page"]
