"""API token authentication, scopes, error bodies (real database)."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from api.accounts.models import ApiToken
from api.crypto import token_digest
from api.extensions import db


def test_missing_header_is_401_with_drf_body(client):
    r = client.get("/devices/")
    assert r.status_code == 401
    assert r.json == {"detail": "Authentication credentials were not provided."}
    assert r.headers["WWW-Authenticate"] == "APIToken"


def test_other_keyword_is_not_credentials(client, user_token):
    r = client.get("/devices/", headers={"Authorization": f"Bearer {user_token.token}"})
    assert r.status_code == 401
    assert r.json["detail"] == "Authentication credentials were not provided."


def test_malformed_headers(client):
    r = client.get("/devices/", headers={"Authorization": "APIToken"})
    assert r.status_code == 401
    assert r.json["detail"] == "Invalid token header. No credentials provided."
    r = client.get("/devices/", headers={"Authorization": "APIToken a b"})
    assert r.json["detail"] == "Invalid token header. Token string should not contain spaces."


def test_unknown_token_is_invalid(client):
    r = client.get("/devices/", headers={"Authorization": "APIToken berth_nope"})
    assert r.status_code == 401
    assert r.json == {"detail": "Invalid token."}
    assert r.headers["WWW-Authenticate"] == "APIToken"


def test_valid_token_and_last_used_recorded(app, client, user_token):
    r = client.get("/devices/", headers=user_token.headers)
    assert r.status_code == 200
    with app.app_context():
        row = db.session.get(ApiToken, user_token.id)
        assert row.last_used is not None
        assert (datetime.now(UTC) - row.last_used) < timedelta(minutes=1)


def test_keyword_is_case_insensitive(client, user_token):
    r = client.get("/devices/", headers={"Authorization": f"apitoken {user_token.token}"})
    assert r.status_code == 200


def test_expired_token(client, api_factory, user):
    token = api_factory.token("user", user=user, expires=datetime.now(UTC) - timedelta(seconds=1))
    r = client.get("/devices/", headers=token.headers)
    assert r.status_code == 401
    assert r.json == {"detail": "Token expired."}


def test_future_expiry_is_accepted(client, api_factory, user):
    token = api_factory.token("user", user=user, expires=datetime.now(UTC) + timedelta(hours=1))
    assert client.get("/devices/", headers=token.headers).status_code == 200


def test_revoked_token(app, client, user_token):
    with app.app_context():
        db.session.get(ApiToken, user_token.id).revoke()
        db.session.commit()
    r = client.get("/devices/", headers=user_token.headers)
    assert r.status_code == 401
    assert r.json == {"detail": "Invalid token."}


def test_wrong_scope_is_403(client, device_token):
    r = client.get("/devices/", headers=device_token.headers)
    assert r.status_code == 403
    assert "scope" in r.json["detail"]


def test_only_digest_is_stored(app, user_token):
    with app.app_context():
        row = db.session.get(ApiToken, user_token.id)
        assert row.digest == token_digest(user_token.token)
        assert user_token.token not in row.digest
        columns = [getattr(row, c.key) for c in ApiToken.__table__.columns]
        assert user_token.token not in [str(c) for c in columns]


def test_digest_is_keyed_by_secret(app, user_token):
    import hashlib

    with app.app_context():
        assert (
            token_digest(user_token.token) != hashlib.sha256(user_token.token.encode()).hexdigest()
        )


def test_tokens_are_long_and_random(api_factory, user):
    a = api_factory.token("user", user=user)
    b = api_factory.token("user", user=user)
    assert a.token != b.token
    assert len(a.token) >= 40


def test_device_token_sets_g_device(app, api_factory, device, user):
    from flask import g

    from api.auth import require_token

    token = api_factory.token("device", user=user, device=device)

    @require_token("device")
    def view():
        return {"device": g.device.id, "account": g.account.id, "token": g.token.id}

    with app.test_request_context("/x", headers=token.headers):
        assert view() == {"device": device.id, "account": device.account_id, "token": token.id}


def test_token_lookup_uses_unique_digest_index(app):
    with app.app_context():
        assert ApiToken.__table__.c.digest.unique
        assert db.session.scalars(select(ApiToken)).all() == []


def test_last_used_is_written_at_most_once_a_minute(app, client, user_token):
    from sqlalchemy import update

    client.get("/devices/", headers=user_token.headers)
    with app.app_context():
        first = db.session.get(ApiToken, user_token.id).last_used
    client.get("/devices/", headers=user_token.headers)
    with app.app_context():
        assert db.session.get(ApiToken, user_token.id).last_used == first
        stale = datetime.now(UTC) - timedelta(minutes=5)
        db.session.execute(
            update(ApiToken).where(ApiToken.id == user_token.id).values(last_used=stale)
        )
        db.session.commit()
    client.get("/devices/", headers=user_token.headers)
    with app.app_context():
        assert db.session.get(ApiToken, user_token.id).last_used > stale + timedelta(minutes=4)
