"""The console's door: the account page's login leads into it, a forged POST is refused, and
another account's user sees none of it."""

from __future__ import annotations

import re

import requests

from tests.fixtures.browser import screenshot


def test_login_through_the_form_opens_the_console(anonymous_page, console_server):
    page = anonymous_page
    page.goto(f"{console_server.url}/ui/devices/")
    # not logged in: the account login, which brings the visitor back afterwards
    assert re.search(r"/account/login/\?next=/ui/devices/$", page.url)
    screenshot(page, "login")
    page.get_by_label("Email").fill(console_server.user.email)
    page.get_by_label("Password").fill(console_server.user.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{console_server.url}/ui/devices/")
    nav = page.get_by_role("navigation", name="Console")
    for section in ("Fleet", "Releases", "Account", "Audit"):
        assert nav.get_by_role("link", name=section).is_visible()
    assert page.get_by_role("main").is_visible()
    assert page.get_by_role("heading", name="Fleet").is_visible()
    # `/` opens the console when logged in
    page.goto(f"{console_server.url}/")
    assert page.url == f"{console_server.url}/ui/devices/"
    # the skip link is the first stop of the keyboard and leads to <main>
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"


def test_root_without_a_session_stays_404(console_server):
    assert requests.get(f"{console_server.url}/", allow_redirects=False).status_code == 404


def test_a_forged_post_without_the_csrf_token_is_refused(page, console_server):
    device = console_server.factory.device(console_server.account, unit_id="forge-target")
    # the session cookie rides along (as a forging site's form would make it), the token does not
    r = page.context.request.post(
        f"{console_server.url}/ui/devices/{device.id}/tags/",
        form={"tags": "stolen"},
        fail_on_status_code=False,
    )
    assert r.status == 400, r.text()
    assert "CSRF token is missing" in r.text()
    # a wrong token is refused the same way
    r = page.context.request.post(
        f"{console_server.url}/ui/devices/{device.id}/tags/",
        form={"tags": "stolen", "csrf_token": "forged"},
        fail_on_status_code=False,
    )
    assert r.status == 400


def test_another_accounts_user_gets_404(browser, console_server):
    other_account = console_server.factory.account("other")
    other = console_server.factory.user(other_account, password="other-pass-12")
    mine = console_server.factory.device(console_server.account, unit_id="not-yours")
    context = browser.new_context()
    try:
        page = context.new_page()
        console_server.login(page, other)
        assert page.url.endswith("/ui/devices/")
        assert "not-yours" not in page.content()
        r = page.goto(f"{console_server.url}/ui/devices/{mine.id}/")
        assert r.status == 404
    finally:
        context.close()
