"""The console's session rules in Flask's test client (the browser tests drive Chromium):
login's ``next``, the console's CSP and cache headers, ``/``."""

import pytest

from tests.functional.test_api_account_page import csrf


def _login(client, user, next_path=None):
    query = f"?next={next_path}" if next_path is not None else ""
    page = client.get(f"/account/login/{query}")
    return client.post(
        f"/account/login/{query}",
        data={"email": user.email, "password": user.password, "csrf_token": csrf(page.data)},
    )


def test_anonymous_console_goes_to_login_with_next(client):
    r = client.get("/ui/devices/?tag=a")
    assert r.status_code == 302
    assert r.headers["Location"] == "/account/login/?next=/ui/devices/?tag%3Da"
    assert client.get("/").status_code == 404


def test_login_returns_to_the_console_page(client, user):
    r = _login(client, user, "/ui/devices/")
    assert r.status_code == 302 and r.headers["Location"] == "/ui/devices/"
    page = client.get("/ui/devices/")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    assert client.get("/").headers["Location"] == "/ui/"
    assert client.get("/ui/").headers["Location"] == "/ui/devices/"
    asset = client.get("/ui/static/htmx/htmx.min.js")
    assert asset.status_code == 200 and "no-store" not in asset.headers.get("Cache-Control", "")


@pytest.mark.parametrize(
    "next_path", ["//evil.example/", "https://evil.example/ui/", "/account/", "/ui/\\\\evil"]
)
def test_login_never_follows_next_off_the_console(client, user, next_path):
    r = _login(client, user, next_path)
    assert r.status_code == 302 and r.headers["Location"] == "/account/"


def test_console_post_without_csrf_is_refused(client, user):
    _login(client, user)
    r = client.post("/ui/devices/", data={})
    assert r.status_code == 400 and b"CSRF token is missing" in r.data
