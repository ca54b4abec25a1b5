"""Hostile or odd input is a 400/404 with a JSON body on SQLite and PostgreSQL, never a 500."""

import pytest

BIG = 10**30


@pytest.fixture
def project_id(client, user_token):
    return client.post("/docker/projects/", json={"name": "p"}, headers=user_token.headers).json[
        "id"
    ]


@pytest.mark.parametrize(
    "url",
    [
        f"/docker/registries/{BIG}/",
        f"/docker/projects/{BIG}/",
        f"/docker/projects/{BIG}/releases/",
        "/docker/projects/0/",
        "/devices/" + "x" * 5000 + "/",
        "/devices/%00/",
    ],
)
def test_out_of_range_or_odd_ids_are_404(client, user_token, url):
    r = client.get(url, headers=user_token.headers)
    assert r.status_code == 404 and r.json == {"detail": "Not found."}


def test_huge_release_id_is_404(client, user_token, project_id):
    r = client.get(f"/docker/projects/{project_id}/releases/{BIG}/", headers=user_token.headers)
    assert r.status_code == 404


def test_null_character_in_query_is_400(client, user_token):
    r = client.get("/devices/?unit_id=%00", headers=user_token.headers)
    assert r.status_code == 400 and "Null characters" in r.json["detail"]


def test_null_characters_in_body_are_400(client, user_token, project_id):
    r = client.post(
        "/devices/", json={"unit_id": "ok", "display": "a\x00b"}, headers=user_token.headers
    )
    assert r.status_code == 400 and r.json == {"display": ["Null characters are not allowed."]}
    body = {"version": "1", "devices": ["\x00"], "containers": []}
    r = client.post(
        f"/docker/projects/{project_id}/releases/", json=body, headers=user_token.headers
    )
    assert r.status_code == 400 and list(r.json) == ["devices"]
    r = client.post(
        f"/docker/projects/{project_id}/releases/",
        json={"version": "\x00", "containers": []},
        headers=user_token.headers,
    )
    assert r.status_code == 400 and list(r.json) == ["version"]


def test_huge_registry_id_in_body_is_400(client, user_token, project_id):
    body = {
        "version": "1",
        "containers": [{"name": "app", "image": "app", "tag": "1", "registry": BIG}],
    }
    r = client.post(
        f"/docker/projects/{project_id}/releases/", json=body, headers=user_token.headers
    )
    assert r.status_code == 400
    assert r.json["containers"][0] == {"registry": [f'Invalid pk "{BIG}" - object does not exist.']}


@pytest.mark.parametrize(
    "body, field",
    [
        ({"version": 1.5, "containers": []}, "version"),
        ({"version": "x", "containers": [], "devices": [5]}, "devices"),
        ({"version": "x", "containers": [], "devices": "abc"}, "devices"),
        ({"version": "x", "containers": {"name": "app"}}, "containers"),
        ({"version": "x", "containers": [], "remove_containers": "app"}, "remove_containers"),
        ({"version": "x" * 101, "containers": []}, "version"),
    ],
)
def test_ill_typed_release_fields(client, user_token, project_id, body, field):
    r = client.post(
        f"/docker/projects/{project_id}/releases/", json=body, headers=user_token.headers
    )
    assert r.status_code == 400 and list(r.json) == [field]


def test_undecodable_body_is_400(client, user_token, project_id):
    r = client.post(
        f"/docker/projects/{project_id}/releases/",
        data=b"\xff\xfe",
        headers={**user_token.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.json["detail"].startswith("JSON parse error")
