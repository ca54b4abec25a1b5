"""Accessibility of every console page (issue 21, item 5), at a laptop's and a phone's size.

The pages are the console blueprint's GET routes, read from the app's URL map, so a page added
later is checked without touching this file (a route with a URL argument this module cannot
fill fails, naming it: add an object below). Each page gets axe-core (vendored in
``tests/browser/vendor/axe-core``, a test asset the console never serves) and must have no
``serious`` or ``critical`` violation; the keyboard's Tab reaches the navigation and then the
page's own controls, each with a visible focus indicator."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"
VIEWPORTS = {"laptop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
BLOCKING = ("serious", "critical")
CONTAINERS = [{"name": "app", "image": "app", "tag": "1"}]

_RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ': ' + n.failureSummary)}));
}"""

_FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return null;
  const s = getComputedStyle(e);
  return {
    what: e.tagName.toLowerCase() + ' ' + (e.getAttribute('aria-label') || e.textContent || e.name || '').trim().slice(0, 40),
    nav: !!e.closest('header nav'),
    main: !!e.closest('main'),
    visible: (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== 'none',
  };
}"""

_MAIN_HAS_CONTROLS = """() => !!document.querySelector(
  'main a[href], main button, main input:not([type=hidden]), main select, main textarea')"""


@pytest.fixture(scope="module")
def console_pages(console_server):
    """Every console page's URL (GET routes of the blueprint), its arguments filled with this
    account's objects: {endpoint: url}."""
    from flask import url_for

    factory, base = console_server.factory, console_server.url
    headers = factory.token("user", user=console_server.user).headers
    device = factory.device(console_server.account, unit_id="a11y-car")

    def post(path, body):
        resp = requests.post(f"{base}{path}", json=body, headers=headers, timeout=30)
        assert resp.status_code == 201, (path, resp.text)
        return resp.json()

    project = post("/docker/projects/", {"name": "a11y"})["id"]
    release = post(
        f"/docker/projects/{project}/releases/",
        {
            "version": "1",
            "devices": [device.id],
            "containers": CONTAINERS,
            "pin_digests": False,
            "rollout": {"waves": [100]},
        },
    )["id"]
    registry = post(
        "/docker/registries/",
        {"name": "a11y", "url": "reg.example:5000", "username": "u", "password": "pw"},
    )["id"]
    ids = {
        "jid": _finished_job(console_server, device),
        "device_id": device.id,
        "project_id": project,
        "release_id": release,
        "registry_id": registry,
        "action": "abort",  # the rollout action's confirmation page
    }
    app, pages, unknown = console_server.app, {}, []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if (
                not rule.endpoint.startswith("console.")
                or rule.endpoint == "console.static"
                or "GET" not in rule.methods
            ):
                continue
            missing = rule.arguments - ids.keys()
            if missing:
                unknown.append(f"{rule.rule} ({', '.join(sorted(missing))})")
                continue
            pages[rule.endpoint] = url_for(rule.endpoint, **{a: ids[a] for a in rule.arguments})
    assert not unknown, f"console pages this test cannot fill in (add their objects): {unknown}"
    return pages


def _finished_job(console_server, device) -> str:
    """An execute job of ``device`` that has its output (the console's job page)."""
    from api.execute.models import ExecuteJob
    from api.extensions import db
    from api.types import utcnow
    from berth.contract import ExecuteJobState

    jid = "20261207120000000001"
    with console_server.app.app_context():
        db.session.add(
            ExecuteJob(
                jid=jid,
                account_id=device.account_id,
                device_id=device.id,
                unit_id=device.unit_id,
                fun="minionutil.last_logs",
                state=ExecuteJobState.COMMAND_EXECUTED,
                response={
                    "fun": "minionutil.last_logs",
                    "fun_args": [],
                    "return": "a log line",
                    "retcode": 0,
                    "success": True,
                },
                deadline=utcnow(),
                finished_at=utcnow(),
            )
        )
        db.session.commit()
    return jid


def _html_pages(page, base: str, pages: dict) -> dict:
    """The pages that are whole HTML documents (not an htmx fragment, an event stream or a
    download), as the logged-in browser sees them."""
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    found = {}
    for endpoint, path in sorted(pages.items()):
        with requests.get(f"{base}{path}", cookies=cookies, stream=True, timeout=30) as resp:
            kind = resp.headers.get("Content-Type", "")
            if not kind.startswith("text/html"):
                continue
            head = next(resp.iter_content(512), b"").lstrip().lower()
        if head.startswith(b"<!doctype html"):
            found[endpoint] = path
    return found


@pytest.fixture(scope="module")
def a11y_context(browser, console_server):
    # bypass_csp: axe is injected as a script the console's Content-Security-Policy refuses
    context = browser.new_context(bypass_csp=True, timezone_id="UTC")
    page = context.new_page()
    page.set_default_timeout(20_000)
    console_server.login(page)
    try:
        yield page
    finally:
        context.close()


def test_every_console_page_has_no_serious_axe_violation(
    a11y_context, console_server, console_pages
):
    page = a11y_context
    pages = _html_pages(page, console_server.url, console_pages)
    # the sections every console has: a page that stopped being HTML would drop out silently
    for endpoint in ("console.fleet", "console.account", "console.audit"):
        assert endpoint in pages, (endpoint, sorted(console_pages))
    failures = []
    for path in pages.values():
        # one load per page: the page is checked again after resizing (its CSS is responsive)
        page.set_viewport_size(VIEWPORTS["laptop"])
        page.goto(f"{console_server.url}{path}")
        page.add_script_tag(path=str(AXE))
        for size, viewport in VIEWPORTS.items():
            page.set_viewport_size(viewport)
            blocking = [v for v in page.evaluate(_RUN_AXE) if v["impact"] in BLOCKING]
            failures += [
                f"{size} {path}: {v['impact']} {v['id']} ({v['help']}): {v['nodes']}"
                for v in blocking
            ]
    assert not failures, "\n".join(failures)


def test_keyboard_reaches_the_navigation_and_the_page_with_visible_focus(
    a11y_context, console_server, console_pages
):
    page = a11y_context
    page.set_viewport_size(VIEWPORTS["laptop"])
    problems = []
    for path in _html_pages(page, console_server.url, console_pages).values():
        page.goto(f"{console_server.url}{path}")
        wants_main = page.evaluate(_MAIN_HAS_CONTROLS)
        stops, reached_nav, reached_main = [], False, False
        for _ in range(60):
            page.keyboard.press("Tab")
            focused = page.evaluate(_FOCUSED)
            if focused is None:
                continue
            stops.append(focused["what"])
            if not focused["visible"]:
                problems.append(f"{path}: no visible focus on {focused['what']!r}")
            reached_nav |= focused["nav"]
            if focused["main"]:
                reached_main = True
                break
        if not reached_nav:
            problems.append(f"{path}: Tab never reached the navigation ({stops})")
        if wants_main and not reached_main:
            problems.append(f"{path}: Tab never reached the page's controls ({stops})")
    assert not problems, "\n".join(problems)
