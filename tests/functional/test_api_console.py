"""The console's session rules in Flask's test client (the browser tests drive Chromium):
login's ``next``, the console's CSP and cache headers, ``/``."""

import re

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
    "next_path",
    [
        "//evil.example/",
        "https://evil.example/ui/",
        "/account/",
        "/ui/\\\\evil",
        "/ui/%0D%0ASet-Cookie:%20x=1",  # a newline in Location was a 500 after the login
        "/ui/%09/evil.example",  # a tab, dropped from Location, made it /ui//evil.example
    ],
)
def test_login_never_follows_next_off_the_console(client, user, next_path):
    r = _login(client, user, next_path)
    assert r.status_code == 302 and r.headers["Location"] == "/account/"


def test_console_post_without_csrf_is_refused(client, user):
    _login(client, user)
    r = client.post("/ui/devices/", data={})
    assert r.status_code == 400 and b"CSRF token is missing" in r.data


def test_fleet_page_filters_in_sql(client, user, api_factory, account, user_token):
    """The fleet page's filters and counts on this database (PostgreSQL in the second pass)."""
    other = api_factory.device(api_factory.account(), unit_id="other-100%")
    a = api_factory.device(account, unit_id="unit_a%1", display="Alpha")
    b = api_factory.device(account, unit_id="unit_b", display="Beta", enrolled=False)
    r = client.patch(f"/devices/{a.id}/", json={"tags": ["x"]}, headers=user_token.headers)
    assert r.status_code == 200
    _login(client, user)

    def unit_ids(query):
        page = client.get(f"/ui/devices/?{query}")
        assert page.status_code == 200
        return re.findall(r'data-unit-id="([^"]+)"', page.get_data(as_text=True))

    assert unit_ids("") == ["unit_a%1", "unit_b"]
    assert other.unit_id not in client.get("/ui/devices/").get_data(as_text=True)
    # a prefix of the unit id or of the display name, case-sensitive; % and _ are characters
    assert unit_ids("q=unit_a%25") == ["unit_a%1"]
    assert unit_ids("q=unit%25") == []
    assert unit_ids("q=unit_") == ["unit_a%1", "unit_b"]
    assert unit_ids("q=Alph") == ["unit_a%1"]
    assert unit_ids("q=alph") == []
    assert unit_ids("q=nit") == []
    assert unit_ids("tag=x") == ["unit_a%1"]
    assert unit_ids("enrolled=no") == ["unit_b"]
    assert unit_ids("status=never_reported") == ["unit_a%1", "unit_b"]
    assert unit_ids("status=failed") == []
    assert unit_ids("status=succeeded") == []
    assert unit_ids(f"after_unit=unit_a%251&after_id={a.id}") == ["unit_b"]
    page = client.get("/ui/devices/").get_data(as_text=True)
    assert re.search(r'data-outcome="never_reported">2<', page)
    assert client.get(f"/ui/devices/{b.id}/").status_code == 200
    assert client.get(f"/ui/devices/{other.id}/").status_code == 404
