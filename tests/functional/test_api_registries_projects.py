"""/docker/registries/ and /docker/projects/ (real database)."""

import logging

import pytest
from sqlalchemy import select, text

from api.extensions import db
from api.registries.models import Registry

REGISTRY = {
    "name": "private",
    "url": "registry.example.com:5000",
    "username": "deploy",
    "password": "s3cr3t-pw",
}


def test_registry_crud_never_returns_password(client, user_token):
    r = client.post("/docker/registries/", json=REGISTRY, headers=user_token.headers)
    assert r.status_code == 201, r.json
    created = r.json
    assert set(created) == {"id", "name", "url", "username", "created"}
    assert created["url"] == "registry.example.com:5000"
    url = f"/docker/registries/{created['id']}/"
    for resp in (
        client.get(url, headers=user_token.headers),
        client.get("/docker/registries/", headers=user_token.headers),
        client.patch(url, json={"username": "other"}, headers=user_token.headers),
    ):
        assert resp.status_code == 200
        assert b"s3cr3t-pw" not in resp.data and b"password" not in resp.data
    r = client.put(url, json={**REGISTRY, "name": "renamed"}, headers=user_token.headers)
    assert r.status_code == 200 and r.json["name"] == "renamed"
    assert client.delete(url, headers=user_token.headers).status_code == 204
    assert client.get(url, headers=user_token.headers).status_code == 404


def test_registry_password_encrypted_at_rest_and_decryptable(app, client, user_token):
    rid = client.post("/docker/registries/", json=REGISTRY, headers=user_token.headers).json["id"]
    with app.app_context():
        raw = db.session.execute(
            text("SELECT password_encrypted FROM registries WHERE id = :i"), {"i": rid}
        ).scalar()
        assert "s3cr3t-pw" not in raw
        assert db.session.get(Registry, rid).get_password() == "s3cr3t-pw"
        dump = " ".join(str(v) for v in db.session.execute(text("SELECT * FROM registries")).one())
        assert "s3cr3t-pw" not in dump


def test_password_update_keeps_or_replaces(app, client, user_token):
    rid = client.post("/docker/registries/", json=REGISTRY, headers=user_token.headers).json["id"]
    client.patch(
        f"/docker/registries/{rid}/", json={"url": "r2.example.com"}, headers=user_token.headers
    )
    with app.app_context():
        assert db.session.get(Registry, rid).get_password() == "s3cr3t-pw"
    client.patch(
        f"/docker/registries/{rid}/", json={"password": "new-pw"}, headers=user_token.headers
    )
    with app.app_context():
        assert db.session.get(Registry, rid).get_password() == "new-pw"


def test_password_never_logged(client, user_token, caplog):
    caplog.set_level(logging.DEBUG)
    client.post("/docker/registries/", json=REGISTRY, headers=user_token.headers)
    client.post(
        "/docker/registries/", json={**REGISTRY, "url": "bad url"}, headers=user_token.headers
    )
    assert "s3cr3t-pw" not in caplog.text


def test_scheme_and_trailing_slash_are_dropped(client, user_token):
    r = client.post(
        "/docker/registries/",
        json={**REGISTRY, "url": "https://127.0.0.1:5000/"},
        headers=user_token.headers,
    )
    assert r.status_code == 201 and r.json["url"] == "127.0.0.1:5000"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"name": ""}, "name"),
        ({"url": "not a url"}, "url"),
        ({"url": "-bad-.com"}, "url"),
        ({"username": None}, "username"),
        ({"password": 5}, "password"),
    ],
)
def test_registry_validation(client, user_token, change, field):
    r = client.post("/docker/registries/", json={**REGISTRY, **change}, headers=user_token.headers)
    assert r.status_code == 400
    assert field in r.json


def test_registry_password_required_on_create(client, user_token):
    body = {k: v for k, v in REGISTRY.items() if k != "password"}
    r = client.post("/docker/registries/", json=body, headers=user_token.headers)
    assert r.status_code == 400 and r.json == {"password": ["This field is required."]}


def test_registry_name_unique_per_account(client, api_factory, user_token):
    assert (
        client.post("/docker/registries/", json=REGISTRY, headers=user_token.headers).status_code
        == 201
    )
    r = client.post("/docker/registries/", json=REGISTRY, headers=user_token.headers)
    assert r.status_code == 400 and list(r.json) == ["name"]
    other = api_factory.token("user")
    assert (
        client.post("/docker/registries/", json=REGISTRY, headers=other.headers).status_code == 201
    )


def test_registries_are_tenant_scoped(client, api_factory, user_token):
    other = api_factory.token("user")
    rid = client.post("/docker/registries/", json=REGISTRY, headers=other.headers).json["id"]
    assert client.get("/docker/registries/", headers=user_token.headers).json["count"] == 0
    for method in ("get", "patch", "delete"):
        r = getattr(client, method)(
            f"/docker/registries/{rid}/", json={}, headers=user_token.headers
        )
        assert r.status_code == 404 and r.json == {"detail": "Not found."}


def test_registry_in_use_cannot_be_deleted(client, user_token):
    rid = client.post("/docker/registries/", json=REGISTRY, headers=user_token.headers).json["id"]
    pid = client.post("/docker/projects/", json={"name": "p"}, headers=user_token.headers).json[
        "id"
    ]
    body = {
        "version": "1",
        "containers": [{"name": "app", "image": "app", "tag": "1", "registry": rid}],
        "pin_digests": False,  # images never pushed: run by tag (pinning: test_api_release_pinning.py)
    }
    assert (
        client.post(
            f"/docker/projects/{pid}/releases/", json=body, headers=user_token.headers
        ).status_code
        == 201
    )
    r = client.delete(f"/docker/registries/{rid}/", headers=user_token.headers)
    assert r.status_code == 409 and "used by 1" in r.json["detail"]


def test_project_crud(client, user_token):
    r = client.post(
        "/docker/projects/",
        json={"name": "fleet", "description": "main"},
        headers=user_token.headers,
    )
    assert r.status_code == 201
    project = r.json
    assert set(project) == {"id", "name", "description", "created"}
    url = f"/docker/projects/{project['id']}/"
    assert client.get(url, headers=user_token.headers).json == project
    assert client.get("/docker/projects/", headers=user_token.headers).json["results"] == [project]
    r = client.patch(url, json={"description": "changed"}, headers=user_token.headers)
    assert r.json["description"] == "changed" and r.json["name"] == "fleet"
    r = client.put(url, json={"name": "fleet2"}, headers=user_token.headers)
    assert r.status_code == 200 and r.json["name"] == "fleet2" and r.json["description"] == ""
    assert client.delete(url, headers=user_token.headers).status_code == 204
    assert client.get(url, headers=user_token.headers).status_code == 404


def test_project_validation_and_uniqueness(client, user_token):
    assert client.post("/docker/projects/", json={}, headers=user_token.headers).json == {
        "name": ["This field is required."]
    }
    client.post("/docker/projects/", json={"name": "p"}, headers=user_token.headers)
    r = client.post("/docker/projects/", json={"name": "p"}, headers=user_token.headers)
    assert r.status_code == 400 and r.json == {"name": ["project with this name already exists."]}


def test_projects_are_tenant_scoped(client, api_factory, user_token):
    other = api_factory.token("user")
    pid = client.post("/docker/projects/", json={"name": "theirs"}, headers=other.headers).json[
        "id"
    ]
    assert client.get(f"/docker/projects/{pid}/", headers=user_token.headers).status_code == 404
    assert (
        client.get(f"/docker/projects/{pid}/releases/", headers=user_token.headers).status_code
        == 404
    )
    r = client.post(f"/docker/projects/{pid}/releases/", json={}, headers=user_token.headers)
    assert r.status_code == 404


def test_deleting_project_deletes_releases(app, client, user_token, device):
    pid = client.post("/docker/projects/", json={"name": "p"}, headers=user_token.headers).json[
        "id"
    ]
    body = {
        "version": "1",
        "devices": [device.id],
        "containers": [{"name": "app", "image": "app", "tag": "1"}],
        "pin_digests": False,  # images never pushed: run by tag (pinning: test_api_release_pinning.py)
    }
    client.post(f"/docker/projects/{pid}/releases/", json=body, headers=user_token.headers)
    assert client.delete(f"/docker/projects/{pid}/", headers=user_token.headers).status_code == 204
    with app.app_context():
        assert (
            db.session.execute(select(text("count(*)")).select_from(text("releases"))).scalar() == 0
        )
        assert (
            db.session.execute(select(text("count(*)")).select_from(text("deployments"))).scalar()
            == 0
        )
