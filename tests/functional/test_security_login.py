"""Login and session hardening (docs/security.md). Each test is the attack that worked before:
guessing passwords without limit, reusing a cookie after logout or a password change, framing
or caching the token page, minting a master token from the page."""

import re

import pytest
from sqlalchemy import func, select

from api import create_app
from api.accounts.models import ApiToken
from api.extensions import db
from tests.fixtures.api import TEST_SECRET_KEY

pytestmark = pytest.mark.db


def csrf(html: bytes) -> str:
    match = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1).decode()


def login(client, email, password):
    page = client.get("/account/login/")
    return client.post(
        "/account/login/",
        data={"email": email, "password": password, "csrf_token": csrf(page.data)},
    )


def test_lockout_after_10_failures_even_with_the_right_password(client, user, user_token):
    for _ in range(10):
        assert login(client, user.email, "wrong guess").status_code == 400
    resp = login(client, user.email, user.password)
    assert resp.status_code == 429
    assert 800 <= int(resp.headers["Retry-After"]) <= 900
    assert b"Too many failed logins" in resp.data and b"Try again in 15 minutes" in resp.data
    assert client.get("/account/").status_code == 302  # not logged in
    rows = client.get("/audit/", headers=user_token.headers).json["results"]
    assert [r["action"] for r in rows].count("login.failed") == 10
    assert rows[0]["action"] == "login.locked" and rows[0]["user"] == user.id
    assert "wrong guess" not in str(rows)


def test_throttle_per_client_address(app, client, api_factory):
    app.config["BERTH_LOGIN_MAX_FAILURES_PER_ADDRESS"] = 3
    victim = api_factory.user()
    for n in range(3):
        assert login(client, f"nobody{n}@example.com", "x").status_code == 400
    resp = login(client, victim.email, victim.password)
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0


def test_logout_invalidates_the_session_server_side(app, client, user):
    assert login(client, user.email, user.password).status_code == 302
    stolen = client.get_cookie("session").value
    page = client.get("/account/")
    assert page.status_code == 200
    assert client.post("/account/logout/", data={"csrf_token": csrf(page.data)}).status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    resp = thief.get("/account/")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/account/login/")


def test_password_change_ends_every_other_session(app, client, user):
    assert login(client, user.email, user.password).status_code == 302
    other = app.test_client()
    assert login(other, user.email, user.password).status_code == 302
    page = client.get("/account/")
    resp = client.post(
        "/account/password/",
        data={
            "current_password": "not it",
            "new_password": "a much longer passphrase",
            "csrf_token": csrf(page.data),
        },
    )
    assert resp.status_code == 400 and b"Wrong password." in resp.data
    resp = client.post(
        "/account/password/",
        data={
            "current_password": user.password,
            "new_password": "a much longer passphrase",
            "csrf_token": csrf(page.data),
        },
    )
    assert resp.status_code == 302
    assert client.get("/account/").status_code == 200  # this browser goes on
    assert other.get("/account/").status_code == 302  # the other session ended
    assert login(app.test_client(), user.email, "a much longer passphrase").status_code == 302


def test_cli_password_change_ends_sessions(app, client, user):
    assert login(client, user.email, user.password).status_code == 302
    result = app.test_cli_runner().invoke(
        args=["users", "password", user.email, "--password", "another long one"]
    )
    assert result.exit_code == 0, result.output
    assert client.get("/account/").status_code == 302


def test_security_headers(client, user):
    for path in ("/account/login/", "/docs/"):
        resp = client.get(path)
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        assert "script-src" not in resp.headers["Content-Security-Policy"]  # default-src 'none'
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert client.get("/account/login/").headers["Cache-Control"] == "no-store"
    assert login(client, user.email, user.password).status_code == 302
    assert client.get("/account/").headers["Cache-Control"] == "no-store"  # shows new tokens
    assert client.get("/openapi.json").headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "config,secure",
    [
        ({"BERTH_PUBLIC_URL": "https://berth.example.com"}, True),
        ({"BERTH_PUBLIC_URL": "http://127.0.0.1:8000"}, False),
        ({"BERTH_PUBLIC_URL": "http://127.0.0.1:8000", "BERTH_SESSION_COOKIE_SECURE": "1"}, True),
        (
            {"BERTH_PUBLIC_URL": "https://berth.example.com", "BERTH_SESSION_COOKIE_SECURE": "0"},
            False,
        ),
    ],
)
def test_secure_cookie(api_database_url, tmp_path, user, config, secure):
    app = create_app(
        {
            "DATABASE_URL": api_database_url,
            "SECRET_KEY": TEST_SECRET_KEY,
            "INSTANCE_PATH": str(tmp_path),
            **config,
        }
    )
    client = app.test_client()
    resp = login(client, user.email, user.password)
    assert resp.status_code == 302
    cookie = resp.headers["Set-Cookie"]
    assert ("Secure" in cookie) is secure and "HttpOnly" in cookie


def test_master_tokens_are_not_made_on_the_account_page(app, client, user):
    assert login(client, user.email, user.password).status_code == 302
    page = client.get("/account/")
    assert b'value="master"' not in page.data
    resp = client.post(
        "/account/tokens/",
        data={"name": "x", "scope": "master", "device": "", "csrf_token": csrf(page.data)},
    )
    assert resp.status_code == 400
    with app.app_context():
        assert (
            db.session.scalar(
                select(func.count()).select_from(ApiToken).where(ApiToken.scope == "master")
            )
            == 0
        )


def _age_sessions(app, *, idle=None, since_login=None):
    """Move every account-page session's last request (``idle``) or login (``since_login``)
    into the past, as if that much time had passed."""
    from datetime import timedelta

    from sqlalchemy import update

    from api.security.login import AccountSession
    from api.types import utcnow

    values = {}
    if idle is not None:
        values["last_seen"] = utcnow() - timedelta(seconds=idle)
    if since_login is not None:
        values["created"] = utcnow() - timedelta(seconds=since_login)
    with app.app_context():
        db.session.execute(update(AccountSession).values(**values))
        db.session.commit()


def _session_rows(app) -> int:
    from api.security.login import AccountSession

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(AccountSession))


def test_a_session_ends_after_30_idle_minutes_and_a_request_keeps_it_alive(app, client, user):
    assert app.config["BERTH_SESSION_IDLE_SECONDS"] == 1800
    assert login(client, user.email, user.password).status_code == 302
    _age_sessions(app, idle=29 * 60)
    assert client.get("/account/").status_code == 200  # used now: 30 more minutes
    _age_sessions(app, idle=20 * 60)
    assert client.get("/account/").status_code == 200
    _age_sessions(app, idle=31 * 60)
    resp = client.get("/account/")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/account/login/")
    assert _session_rows(app) == 0  # ended server-side, not only for this cookie


def test_a_session_ends_12_hours_after_login_even_when_in_use(app, client, user):
    assert app.config["BERTH_SESSION_MAX_SECONDS"] == 12 * 3600
    assert login(client, user.email, user.password).status_code == 302
    stolen = client.get_cookie("session").value
    _age_sessions(app, since_login=12 * 3600 - 60)
    assert client.get("/account/").status_code == 200  # in use all the time, 1 minute left
    _age_sessions(app, since_login=12 * 3600 + 60)
    assert client.get("/account/").status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/account/").status_code == 302
    assert _session_rows(app) == 0


def test_session_lifetimes_are_settings(api_database_url, tmp_path, monkeypatch, user):
    monkeypatch.setenv("BERTH_SESSION_IDLE_SECONDS", "60")
    monkeypatch.setenv("BERTH_SESSION_MAX_SECONDS", "120")
    app = create_app(
        {
            "DATABASE_URL": api_database_url,
            "SECRET_KEY": TEST_SECRET_KEY,
            "INSTANCE_PATH": str(tmp_path),
        }
    )
    client = app.test_client()
    assert login(client, user.email, user.password).status_code == 302
    _age_sessions(app, idle=61)
    assert client.get("/account/").status_code == 302
    assert login(client, user.email, user.password).status_code == 302
    _age_sessions(app, idle=0, since_login=121)
    assert client.get("/account/").status_code == 302
    monkeypatch.setenv("BERTH_SESSION_IDLE_SECONDS", "half an hour")
    with pytest.raises(ValueError, match="BERTH_SESSION_IDLE_SECONDS"):
        create_app({"DATABASE_URL": api_database_url, "INSTANCE_PATH": str(tmp_path)})


@pytest.mark.parametrize(
    "proxies, counted",
    [(None, "127.0.0.1"), ("1", "198.51.100.9"), ("2", "203.0.113.7")],
)
def test_behind_trusted_proxies_the_client_address_is_counted(
    api_database_url, tmp_path, api_factory, proxies, counted
):
    """Behind a load balancer every login came from its address, so the per-address limit
    counted the balancer (docs/scale.md): BERTH_TRUSTED_PROXIES believes that many
    X-Forwarded-For entries, counted from the end, and no more."""
    from api.security.login import LoginAttempt

    config = {} if proxies is None else {"BERTH_TRUSTED_PROXIES": proxies}
    app = create_app(
        {
            "DATABASE_URL": api_database_url,
            "SECRET_KEY": TEST_SECRET_KEY,
            "INSTANCE_PATH": str(tmp_path),
            **config,
        }
    )
    client = app.test_client()
    page = client.get("/account/login/")
    forwarded = {"X-Forwarded-For": "10.6.6.6, 203.0.113.7, 198.51.100.9"}
    resp = client.post(
        "/account/login/",
        data={"email": "x@example.com", "password": "x", "csrf_token": csrf(page.data)},
        headers=forwarded,
    )
    assert resp.status_code == 400
    with app.app_context():
        assert db.session.scalars(select(LoginAttempt.client_address)).all() == [counted]
        db.engine.dispose()


@pytest.mark.parametrize("value", ["-1", "one"])
def test_trusted_proxies_must_be_a_count(api_database_url, tmp_path, value):
    with pytest.raises(ValueError, match="BERTH_TRUSTED_PROXIES"):
        create_app(
            {
                "DATABASE_URL": api_database_url,
                "SECRET_KEY": TEST_SECRET_KEY,
                "INSTANCE_PATH": str(tmp_path),
                "BERTH_TRUSTED_PROXIES": value,
            }
        )
