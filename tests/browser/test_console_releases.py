"""The console's release pages in Chromium (issue 21, item 2): a release made through the form
(a bad image name shows the API's message beside the image input), a deployment changing status
on the open page without a reload, a rollout that halts by itself showing its halt_reason, and
resume / abort / revert acting and written to the audit log; another account's user gets 404."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import expect

from tests.fixtures.api import report_body, signed_report
from tests.fixtures.browser import screenshot

CONTAINER = {"name": "app", "image": "app", "tag": "1"}
#: ms to wait for the page to follow a change (its polling, a redirect) on a loaded machine
WAIT = 30_000


class Fleet:
    """The console server's account seen through its REST API (a user and a master token)."""

    def __init__(self, server):
        self.server = server
        factory = server.factory
        self.user = factory.token("user", user=server.user).headers
        self.master = factory.token("master", user=server.user).headers
        self.devices = [factory.device(server.account, unit_id=f"car-{i}") for i in range(2)]
        self.project = self.post("/docker/projects/", {"name": "cars"})["id"]

    def post(self, path, body, expect=(200, 201)):
        r = requests.post(self.server.url + path, json=body, headers=self.user, timeout=30)
        assert r.status_code in expect, r.text
        return r.json()

    def get(self, path):
        r = requests.get(self.server.url + path, headers=self.user, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def release(self, version, devices, rollout=None):
        body = {
            "version": version,
            "devices": [d.id for d in devices],
            "containers": [CONTAINER],
            "pin_digests": False,
        }
        if rollout:
            body["rollout"] = rollout
        return self.post(f"/docker/projects/{self.project}/releases/", body)

    def report(self, release, device, outcome, error=None):
        body = report_body(device.unit_id, release, outcome, error=error)
        r = requests.post(
            f"{self.server.url}/master/deployments/report/",
            json=signed_report(self.server.app, body, device.id),
            headers=self.master,
            timeout=30,
        )
        assert r.status_code == 200, r.text

    def page_url(self, release, tail=""):
        return f"{self.server.url}/ui/projects/{self.project}/releases/{release['id']}/{tail}"


@pytest.fixture(scope="module")
def fleet(console_server):
    return Fleet(console_server)


def test_create_a_release_through_the_form(page, fleet, console_server):
    page.goto(f"{console_server.url}/ui/releases/")
    screenshot(page, "projects")
    page.get_by_role("link", name="cars").click()
    page.get_by_role("link", name="New release").click()
    page.get_by_label("Version", exact=True).fill("2.0")
    page.get_by_label("Devices").fill(f"{fleet.devices[0].unit_id}, {fleet.devices[1].id}")
    page.get_by_label("Name", exact=True).fill("app")
    page.get_by_label("Image", exact=True).fill("Bad Image!")
    page.get_by_label("Tag", exact=True).fill("1")
    page.get_by_label("Pin each image's digest").uncheck()
    page.get_by_role("button", name="Create release").click()
    # the API's own message for that image, beside the image input
    api = requests.post(
        f"{console_server.url}/docker/projects/{fleet.project}/releases/",
        json={"version": "2.0", "containers": [{**CONTAINER, "image": "Bad Image!"}]},
        headers=fleet.user,
        timeout=30,
    ).json()["containers"][0]["image"]
    beside = page.locator("#containers-0-image-errors li")
    assert beside.all_inner_texts() == api
    image = page.get_by_label("Image", exact=True)
    assert image.get_attribute("aria-invalid") == "true"
    assert "containers-0-image-errors" in image.get_attribute("aria-describedby")
    screenshot(page, "release-new")
    image.fill("app")
    page.get_by_role("button", name="Create release").click()
    page.wait_for_url(re.compile(r"/ui/projects/\d+/releases/\d+/$"))
    assert page.get_by_role("heading", name=re.compile("Release 2.0")).is_visible()
    assert page.locator("#deployments tbody tr").count() == 2
    page.goto(f"{console_server.url}/ui/projects/{fleet.project}/releases/")
    assert page.get_by_role("link", name="2.0").is_visible()
    screenshot(page, "releases")


def test_a_deployment_changes_status_without_a_reload(page, fleet):
    release = fleet.release("3.0", fleet.devices)
    page.goto(fleet.page_url(release))
    device = fleet.devices[1]
    status = page.locator(f"#device-{device.id} [data-status]")
    assert status.inner_text() == "queued"
    page.evaluate("window.berthNoReload = true")  # gone if the page were loaded again
    fleet.report(release, device, "failed", error="exited 3: config missing")
    expect(status).to_have_text("failed", timeout=WAIT)  # the page's polling, no reload
    assert page.evaluate("window.berthNoReload") is True
    assert "exited 3: config missing" in page.locator(f"#device-{device.id} .reason").inner_text()
    screenshot(page, "release")


def test_a_halted_rollout_shows_its_reason_and_the_actions_act_and_are_audited(page, fleet):
    release = fleet.release("4.0", fleet.devices, rollout={"waves": [50, 100]})
    page.goto(fleet.page_url(release))
    assert page.locator("#rollout-state").inner_text() == "running"
    wave1 = fleet.get(
        f"/docker/projects/{fleet.project}/releases/{release['id']}/deployments/?wave=1"
    )["results"][0]["device"]
    first = next(d for d in fleet.devices if d.id == wave1)
    fleet.report(release, first, "failed", error="exited 3")
    # halted by the report itself; the open page follows
    page.locator("#halt-reason").wait_for(timeout=WAIT)
    reason = fleet.get(f"/docker/projects/{fleet.project}/releases/{release['id']}/rollout/")[
        "halt_reason"
    ]
    assert reason in page.locator("#halt-reason").inner_text()
    assert page.locator("#rollout-state").inner_text() == "halted"
    screenshot(page, "rollout-halted")

    page.locator("#action-resume").click()
    expect(page.locator("#rollout-state")).to_have_text("running", timeout=WAIT)
    page.locator("#action-abort").click()  # asks first, saying to how many devices
    assert page.locator("#consequences").inner_text().count("device(s)") == 3
    screenshot(page, "rollout-confirm")
    page.locator("#confirm-abort").click()
    expect(page.locator("#rollout-state")).to_have_text("aborted", timeout=WAIT)
    page.locator("#action-revert").click()
    page.locator("#confirm-revert").click()
    expect(page.locator("#rollout-state")).to_have_text(
        re.compile("^(reverting|reverted)$"), timeout=WAIT
    )
    history = page.locator("table.history tbody tr").all_inner_texts()
    assert [row.split("\t")[1] for row in history] == ["resume", "abort", "revert"]

    audit = fleet.get("/audit/?action=rollout.action")["results"]
    mine = [a for a in audit if a["target"] == f"release:{release['id']}"]
    assert sorted(a["details"]["action"] for a in mine) == ["abort", "resume", "revert"]
    assert {a["user_email"] for a in mine} == {fleet.server.user.email}


def test_another_accounts_user_gets_404_on_the_release_page_and_every_action(
    browser, fleet, console_server
):
    release = fleet.release("5.0", fleet.devices[:1], rollout={"waves": [100]})
    other = console_server.factory.user(console_server.factory.account("other-releases"))
    context = browser.new_context()
    try:
        page = context.new_page()
        console_server.login(page, other)
        token = page.locator('meta[name="csrf-token"]').get_attribute("content")
        for tail in ("", "live/", "rollout/abort/", "rollout/revert/"):
            assert page.goto(fleet.page_url(release, tail)).status == 404, tail
        new = f"{console_server.url}/ui/projects/{fleet.project}/releases/new/"
        assert page.goto(new).status == 404
        for action in ("pause", "resume", "abort", "revert"):
            r = page.context.request.post(
                fleet.page_url(release, f"rollout/{action}/"),
                form={"csrf_token": token},
                fail_on_status_code=False,
            )
            assert r.status == 404, (action, r.text()[:300])
        r = page.context.request.post(
            new, form={"csrf_token": token, "version": "x"}, fail_on_status_code=False
        )
        assert r.status == 404
    finally:
        context.close()
    rollout = fleet.get(f"/docker/projects/{fleet.project}/releases/{release['id']}/rollout/")
    assert rollout["state"] == "running" and rollout["history"] == []
