"""The HTML account page: login, list/create/revoke tokens, CSRF (real database)."""

import re

import pytest
from sqlalchemy import func, select

from api.accounts.models import ApiToken
from api.extensions import db


def csrf(html: bytes) -> str:
    match = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1).decode()


@pytest.fixture
def logged_in(client, user):
    page = client.get("/account/login/")
    assert page.status_code == 200
    r = client.post(
        "/account/login/",
        data={"email": user.email, "password": user.password, "csrf_token": csrf(page.data)},
    )
    assert r.status_code == 302 and r.headers["Location"].endswith("/account/")
    return client


def _token_count(app):
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(ApiToken))


def test_requires_login(client):
    r = client.get("/account/")
    assert r.status_code == 302 and r.headers["Location"].endswith("/account/login/")


def test_wrong_password_is_refused(client, user):
    page = client.get("/account/login/")
    r = client.post(
        "/account/login/",
        data={"email": user.email, "password": "nope", "csrf_token": csrf(page.data)},
    )
    assert r.status_code == 400 and b"Wrong email or password." in r.data
    assert client.get("/account/").status_code == 302


def test_login_without_csrf_is_refused(client, user):
    r = client.post("/account/login/", data={"email": user.email, "password": user.password})
    assert r.status_code == 400
    assert client.get("/account/").status_code == 302


def test_create_token_shown_once_and_works(app, logged_in):
    client = logged_in
    page = client.get("/account/")
    r = client.post(
        "/account/tokens/",
        data={"name": "ci", "scope": "user", "device": "", "csrf_token": csrf(page.data)},
    )
    assert r.status_code == 201
    token = re.search(rb'id="new-token">([^<]+)<', r.data).group(1).decode()
    assert token.startswith("berth_")
    assert (
        client.get("/devices/", headers={"Authorization": f"APIToken {token}"}).status_code == 200
    )
    listing = client.get("/account/")
    assert token.encode() not in listing.data
    assert b"ci" in listing.data


def test_create_with_expiry_and_device_scope(app, logged_in, device):
    client = logged_in
    page = client.get("/account/")
    r = client.post(
        "/account/tokens/",
        data={
            "scope": "device",
            "device": device.id,
            "expires": "2099-05-01T10:00",
            "csrf_token": csrf(page.data),
        },
    )
    assert r.status_code == 201
    with app.app_context():
        row = db.session.scalars(select(ApiToken).order_by(ApiToken.id.desc())).first()
        assert row.scope == "device" and row.device_id == device.id
        assert row.expires.isoformat() == "2099-05-01T10:00:00+00:00"


def test_create_validation(app, logged_in):
    client = logged_in
    token = csrf(client.get("/account/").data)
    before = _token_count(app)
    r = client.post("/account/tokens/", data={"scope": "device", "device": "", "csrf_token": token})
    assert r.status_code == 400 and b"needs a device" in r.data
    r = client.post(
        "/account/tokens/",
        data={"scope": "user", "expires": "2000-01-01T00:00", "csrf_token": token},
    )
    assert r.status_code == 400 and b"future" in r.data
    assert _token_count(app) == before


def test_create_without_csrf_is_refused(app, logged_in):
    before = _token_count(app)
    r = logged_in.post("/account/tokens/", data={"name": "x", "scope": "user"})
    assert r.status_code == 400
    assert _token_count(app) == before


def test_revoke(app, logged_in, api_factory, user):
    made = api_factory.token("user", user=user)
    client = logged_in
    assert client.post(f"/account/tokens/{made.id}/revoke/").status_code == 400  # no CSRF token
    assert client.get("/devices/", headers=made.headers).status_code == 200
    r = client.post(
        f"/account/tokens/{made.id}/revoke/",
        data={"csrf_token": csrf(client.get("/account/").data)},
    )
    assert r.status_code == 302
    assert client.get("/devices/", headers=made.headers).status_code == 401
    assert b"revoked" in client.get("/account/").data


def test_cannot_see_or_revoke_other_accounts_tokens(app, logged_in, api_factory):
    other = api_factory.token("user", name="their-token")
    client = logged_in
    page = client.get("/account/")
    assert b"their-token" not in page.data
    r = client.post(f"/account/tokens/{other.id}/revoke/", data={"csrf_token": csrf(page.data)})
    assert r.status_code == 404
    assert client.get("/devices/", headers=other.headers).status_code == 200


def test_logout(logged_in):
    client = logged_in
    r = client.post("/account/logout/", data={"csrf_token": csrf(client.get("/account/").data)})
    assert r.status_code == 302
    assert client.get("/account/").status_code == 302


def test_null_character_login_is_refused_not_500(client, user):
    page = client.get("/account/login/")
    r = client.post(
        "/account/login/",
        data={"email": "a\x00@b.c", "password": "x", "csrf_token": csrf(page.data)},
    )
    assert r.status_code == 400 and b"Null characters" in r.data
