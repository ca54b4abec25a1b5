"""The console's account pages (issue 21, item 4): API tokens and enrollment tokens shown once,
registries with a write-only password, webhooks, the audit log's filters; the REST API's
messages beside the fields, every action in the audit log, another account's objects 404."""

from __future__ import annotations

import re

import requests
from playwright.sync_api import expect

from tests.fixtures.browser import screenshot


def _ui(server, path: str) -> str:
    return f"{server.url}/ui{path}"


def test_api_token_is_shown_once_and_revoked(page, console_server):
    page.goto(_ui(console_server, "/account/"))
    nav = page.get_by_role("navigation", name="Account")
    for label in ("API tokens", "Enrollment tokens", "Registries", "Webhooks"):
        expect(nav.get_by_role("link", name=label)).to_be_visible()
    page.get_by_label("Name").fill("ci pipeline")
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token").text_content()
    assert token.startswith("berth_")
    screenshot(page, "account-tokens")
    row = page.get_by_role("row").filter(has_text="ci pipeline")
    token_id = row.get_by_role("cell").first.text_content()
    # shown once: the list never has it again
    page.goto(_ui(console_server, "/account/"))
    assert token not in page.content()
    row.get_by_role("button", name=f"Revoke token {token_id}").click()
    revoked = page.get_by_role("row").filter(has_text="ci pipeline").get_by_text("revoked")
    expect(revoked).to_be_visible()
    page.goto(_ui(console_server, "/audit/?action=token.revoke"))
    expect(page.get_by_role("cell", name=f"token:{token_id}")).to_be_visible()


def test_enrollment_token_messages_beside_the_field_and_shown_once(page, console_server):
    page.goto(_ui(console_server, "/account/enrollment/"))
    page.get_by_label("Name").fill("line 3")
    page.get_by_label("Uses (optional)").fill("0")
    page.get_by_role("button", name="Create enrollment token").click()
    # the API's own message (api/security/enrollment_schemas.py), beside the field
    expect(page.locator("#max_uses-error")).to_have_text(
        "Ensure this value is between 1 and 1000000."
    )
    assert page.get_by_label("Uses (optional)").get_attribute("aria-invalid") == "true"
    page.get_by_label("Uses (optional)").fill("5")
    page.get_by_role("button", name="Create enrollment token").click()
    token = page.locator("#new-token").text_content()
    assert token.startswith("berth_enroll_")
    screenshot(page, "account-enrollment")
    page.goto(_ui(console_server, "/account/enrollment/"))
    assert token not in page.content()
    row = page.get_by_role("row").filter(has_text="line 3")
    expect(row.get_by_text("0 of 5")).to_be_visible()
    row.get_by_role("button", name=re.compile("Revoke enrollment token")).click()
    expect(page.get_by_role("row").filter(has_text="line 3").get_by_text("revoked")).to_be_visible()


def test_registry_password_is_write_only(page, console_server):
    page.goto(_ui(console_server, "/account/registries/"))
    page.get_by_label("Name", exact=True).fill("private")
    page.get_by_label("Address (host[:port][/path])").fill("not a registry!")
    page.get_by_label("Username").fill("robot")
    page.get_by_label("Password").fill("registry-secret-1")
    page.get_by_role("button", name="Add registry").click()
    expect(page.locator("#url-error")).to_contain_text("is not a registry address")
    assert "registry-secret-1" not in page.content()  # not even in the form sent back
    page.get_by_label("Address (host[:port][/path])").fill("https://registry.example.com:5000/")
    page.get_by_label("Password").fill("registry-secret-1")
    page.get_by_role("button", name="Add registry").click()
    row = page.get_by_role("row").filter(has_text="private")
    expect(row.get_by_role("cell", name="registry.example.com:5000")).to_be_visible()
    screenshot(page, "account-registries")
    row.get_by_role("link", name="private").click()
    assert page.get_by_label("Password").input_value() == ""
    assert "registry-secret-1" not in page.content()
    page.get_by_label("Username").fill("robot2")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("row").filter(has_text="private").get_by_text("robot2")).to_be_visible()
    page.goto(_ui(console_server, "/audit/?action=registry.update"))
    expect(page.get_by_text('"fields": ["name", "url", "username"]')).to_be_visible()
    page.goto(_ui(console_server, "/account/registries/"))
    page.get_by_role("button", name="Delete registry private").click()
    expect(page.get_by_text("No registries yet.")).to_be_visible()


def test_webhooks(page, console_server):
    page.goto(_ui(console_server, "/account/webhooks/"))
    page.get_by_label("URL").fill("http://93.184.216.34/hooks/berth")
    page.get_by_role("button", name="Add webhook").click()
    expect(page.locator("#url-error")).to_contain_text("no webhook secret")
    result = console_server.app.test_cli_runner().invoke(
        args=["accounts", "webhook-secret", console_server.account.name]
    )
    assert result.exit_code == 0, result.output
    page.get_by_label("URL").fill("http://127.0.0.1:9/hook")
    page.get_by_role("button", name="Add webhook").click()
    expect(page.locator("#url-error")).to_contain_text("loopback")
    page.get_by_label("URL").fill("http://93.184.216.34/hooks/berth")
    page.get_by_role("button", name="Add webhook").click()
    expect(page.get_by_role("cell", name="http://93.184.216.34/hooks/berth")).to_be_visible()
    screenshot(page, "account-webhooks")
    page.get_by_role("button", name=re.compile("Delete webhook")).click()
    expect(page.get_by_text("No webhooks yet.")).to_be_visible()


def test_audit_log_filters_are_get_audit_s(page, console_server):
    page.goto(_ui(console_server, "/audit/"))
    page.get_by_label("Action").select_option("login")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"action=login"))
    actions = page.locator("tbody tr td:nth-child(2)").all_text_contents()
    assert actions and set(actions) == {"login"}
    screenshot(page, "audit")
    page.get_by_label("User id").fill("abc")
    page.get_by_role("button", name="Filter").click()
    # GET /audit/'s messages, beside the fields
    expect(page.locator("#f-user-error")).to_have_text("A valid integer is required.")
    page.get_by_label("User id").fill("")
    page.get_by_label("Since (UTC)").fill("2026-01-31")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#f-since-error")).to_contain_text("wrong format")
    page.get_by_label("Since (UTC)").fill("2026-01-31T00:00")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"since=2026-01-31T00"))
    assert page.locator("tbody tr td:nth-child(2)").all_text_contents() == actions


def test_another_accounts_user_gets_404_on_every_account_object(browser, console_server):
    factory, base = console_server.factory, console_server.url
    headers = factory.token("user", user=console_server.user).headers
    token = factory.token("user", user=console_server.user, name="not yours")
    body = {"name": "theirs", "url": "reg.example:5000", "username": "u", "password": "pw"}
    registry = requests.post(f"{base}/docker/registries/", json=body, headers=headers).json()["id"]
    enrollment = requests.post(f"{base}/enrollment-tokens/", json={}, headers=headers).json()["id"]
    console_server.app.test_cli_runner().invoke(
        args=["accounts", "webhook-secret", console_server.account.name]
    )
    hook = requests.post(
        f"{base}/docker/rollout-webhooks/", json={"url": "http://93.184.216.34/x"}, headers=headers
    ).json()["id"]
    other = factory.user(factory.account("other-account"), password="other-pass-123")
    context = browser.new_context()
    try:
        page = context.new_page()
        console_server.login(page, other)
        assert page.goto(_ui(console_server, f"/account/registries/{registry}/")).status == 404
        for path in (
            "/account/",
            "/account/enrollment/",
            "/account/registries/",
            "/account/webhooks/",
        ):
            page.goto(_ui(console_server, path))
            assert "theirs" not in page.content() and "93.184.216.34" not in page.content()
        csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
        for path in (
            f"/account/tokens/{token.id}/revoke/",
            f"/account/enrollment/{enrollment}/revoke/",
            f"/account/webhooks/{hook}/delete/",
            f"/account/registries/{registry}/delete/",
            f"/account/registries/{registry}/",
        ):
            r = page.context.request.post(
                _ui(console_server, path),
                form={"csrf_token": csrf, **body},
                fail_on_status_code=False,
            )
            assert r.status == 404, (path, r.status)
    finally:
        context.close()
    # all still there, unchanged
    assert (
        requests.get(f"{base}/docker/registries/{registry}/", headers=headers).json()["name"]
        == "theirs"
    )
    states = requests.get(f"{base}/enrollment-tokens/", headers=headers).json()["results"]
    assert [t["state"] for t in states if t["id"] == enrollment] == ["active"]
    hooks = requests.get(f"{base}/docker/rollout-webhooks/", headers=headers).json()["results"]
    assert hook in [h["id"] for h in hooks]
    assert requests.get(f"{base}/audit/", headers=token.headers).status_code == 200  # not revoked
