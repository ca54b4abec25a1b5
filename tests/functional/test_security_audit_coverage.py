"""Audit by construction (issue 17, finding 7): every state-changing route (POST, PUT, PATCH,
DELETE; the account page's forms) and every CLI command declares what it audits
(``api/audit/declarations.py``), and each audited one, really called with a valid request, leaves
its row -- with no secret in it. Deleting a project with its releases, changing a device's tags,
renaming a project and creating or deleting a rollout webhook left none.

A new route or command fails here until it is declared and has a recipe below: a request
(``ROUTE_CALLS``) or command line (``CLI_CALLS``) that changes something."""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import click
import pytest
from sqlalchemy import func, select

from api import create_app
from api.audit import ACTIONS, AuditEntry
from api.audit.declarations import EXEMPT_CLI_GROUPS, STATE_CHANGING_METHODS, declaration
from api.extensions import db
from tests.fixtures import cosign

pytestmark = pytest.mark.db

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"
UNREACHABLE_SALT = {
    "BERTH_SALT_API_URL": "http://127.0.0.1:9",
    "BERTH_SALT_API_USER": "berth",
    "BERTH_SALT_API_PASSWORD": "x",
    "BERTH_SALT_API_TIMEOUT": "1",
}
REGISTRY_PASSWORD = "registry-pw-never-audited"
SIGNING_KEY = cosign.public_pem(cosign.new_key("ed25519"))
USER_PASSWORD = "user-pw-never-audited"
HOOK_URL = "http://hookuser:hook-pw-never-audited@127.0.0.1:9/hook?sig=hook-query-never-audited"
SECRETS = ("never-audited",)
CONTAINERS = [{"name": "app", "image": "app", "tag": "1"}]


def _collection_app():
    return create_app(
        {
            "DATABASE_URL": "sqlite://",
            "SECRET_KEY": "collection-only",
            # nothing is written there (the secret key is given): one directory for every run
            "INSTANCE_PATH": os.path.join(tempfile.gettempdir(), "berth-audit-walk"),
        }
    )


def state_changing_routes(app) -> list[tuple[str, str, str]]:
    """(rule, method, endpoint) of every route that may change state."""
    return sorted(
        (rule.rule, method, rule.endpoint)
        for rule in app.url_map.iter_rules()
        for method in rule.methods & STATE_CHANGING_METHODS
    )


def cli_commands(app) -> list[tuple[str, click.Command]]:
    """("group sub", command) of every leaf of the app's CLI tree."""
    found = []

    def walk(cmd, path):
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])
        else:
            found.append((" ".join(path), cmd))

    for name, cmd in app.cli.commands.items():
        if name not in EXEMPT_CLI_GROUPS:
            walk(cmd, [name])
    return sorted(found, key=lambda item: item[0])


_APP = _collection_app()
ROUTES = state_changing_routes(_APP)
AUDITED_ROUTES = [r for r in ROUTES if not isinstance(declaration(_APP.view_functions[r[2]]), str)]
COMMANDS = [name for name, cmd in cli_commands(_APP)]
AUDITED_COMMANDS = [
    name for name, cmd in cli_commands(_APP) if not isinstance(declaration(cmd.callback), str)
]


# -- the world a recipe works in -------------------------------------------------------------


@dataclass
class Call:
    method: str
    path: str
    json: dict | None = None
    data: dict | None = None
    headers: dict = field(default_factory=dict)
    expect: tuple[int, ...] = (200, 201, 204, 302)
    client: object = None


def _csrf(html: bytes) -> str:
    match = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, html[:300]
    return match.group(1).decode()


class World:
    def __init__(self, app, client, factory, account, user, user_token, master_token, device):
        self.app, self.client, self.factory = app, client, factory
        self.account, self.user, self.device = account, user, device
        self.headers, self.master = user_token.headers, master_token.headers
        app.config.update(UNREACHABLE_SALT)

    def cli(self, *args):
        with self.app.app_context():  # what the flask command pushes for every command
            result = self.app.test_cli_runner().invoke(args=list(args))
        assert result.exit_code == 0, result.output
        return result.output

    def post(self, path, body, headers=None):
        resp = self.client.post(path, json=body, headers=headers or self.headers)
        assert resp.status_code in (200, 201), (path, resp.json)
        return resp.json

    def project(self):
        return self.post("/docker/projects/", {"name": "p", "description": "d"})["id"]

    def release(self, project, rollout=None):
        body = {
            "version": "1",
            "devices": [self.device.id],
            "containers": CONTAINERS,
            "pin_digests": False,  # images never pushed: run by tag (pinning: test_api_release_pinning.py)
        }
        if rollout:
            body["rollout"] = rollout
        return self.post(f"/docker/projects/{project}/releases/", body)["id"]

    def rollout_url(self, action, pause_first=False):
        project = self.project()
        release = self.release(project, rollout={"waves": [100]})
        url = f"/docker/projects/{project}/releases/{release}/rollout/"
        if pause_first:
            self.post(url + "pause/", None)
        return Call("POST", f"{url}{action}/")

    def registry(self):
        body = {"name": "r", "url": "reg.example:5000", "username": "u"}
        return self.post("/docker/registries/", {**body, "password": REGISTRY_PASSWORD})["id"]

    def signing_key(self):
        return self.post("/docker/signing-keys/", {"name": "k", "public_key": SIGNING_KEY})["id"]

    def webhook(self):
        self.cli("accounts", "webhook-secret", self.account.name)
        return self.post("/docker/rollout-webhooks/", {"url": HOOK_URL})["id"]

    def enrollment_token(self):
        return self.post("/enrollment-tokens/", {"name": "e"})

    def logged_in(self):
        """A browser logged in to the account page, and a CSRF token of its page."""
        browser = self.app.test_client()
        page = browser.get("/account/login/")
        resp = browser.post(
            "/account/login/",
            data={
                "email": self.user.email,
                "password": self.user.password,
                "csrf_token": _csrf(page.data),
            },
        )
        assert resp.status_code == 302
        return browser, _csrf(browser.get("/account/").data)

    def form(self, path, data):
        browser, token = self.logged_in()
        return Call("POST", path, data={**data, "csrf_token": token}, client=browser)


def _login(w: World) -> Call:
    browser = w.app.test_client()
    token = _csrf(browser.get("/account/login/").data)
    data = {"email": w.user.email, "password": w.user.password, "csrf_token": token}
    return Call("POST", "/account/login/", data=data, client=browser)


def _revoke_page_token(w: World) -> Call:
    token = w.factory.token("user", user=w.user)
    return w.form(f"/account/tokens/{token.id}/revoke/", {})


def _device_update(method):
    def recipe(w: World) -> Call:
        return Call(
            method,
            f"/devices/{w.device.id}/",
            json={"unit_id": w.device.unit_id, "display": "renamed", "tags": ["fleet-a"]},
        )

    return recipe


def _project_update(method):
    return lambda w: Call(method, f"/docker/projects/{w.project()}/", json={"name": "renamed"})


def _release_update(method):
    def recipe(w: World) -> Call:
        project = w.project()
        release = w.release(project)
        body = {"version": "2", "devices": [], "containers": CONTAINERS}
        return Call(method, f"/docker/projects/{project}/releases/{release}/", json=body)

    return recipe


def _registry_update(method):
    def recipe(w: World) -> Call:
        body = {"name": "r2", "url": "reg.example:5001", "username": "u2", "password": "x2"}
        body["password"] = REGISTRY_PASSWORD + "-2"
        return Call(method, f"/docker/registries/{w.registry()}/", json=body)

    return recipe


def _project_delete(w: World) -> Call:
    project = w.project()
    w.release(project)  # deleted with it
    return Call("DELETE", f"/docker/projects/{project}/")


def _release_delete(w: World) -> Call:
    project = w.project()
    return Call("DELETE", f"/docker/projects/{project}/releases/{w.release(project)}/")


def _webhook_create(w: World) -> Call:
    w.cli("accounts", "webhook-secret", w.account.name)
    return Call("POST", "/docker/rollout-webhooks/", json={"url": HOOK_URL})


def _console_release_create(w: World) -> Call:
    form = {"version": "1", "devices": w.device.id, "containers-0-name": "app"}
    form.update({"containers-0-image": "app", "containers-0-tag": "1"})  # pin_digests off
    call = w.form(f"/ui/projects/{w.project()}/releases/new/", form)
    call.expect = (303,)  # to the new release's page
    return call


def _console_rollout_action(w: World) -> Call:
    call = w.rollout_url("pause")
    call = w.form(call.path.replace("/docker/projects/", "/ui/projects/"), {})
    call.expect = (303,)  # back to the release's page
    return call


def _enroll(w: World) -> Call:
    token = w.enrollment_token()["token"]
    body = {"unit_id": "minion-by-enrollment", "enrollment_token": token}
    return Call("POST", "/master/devices/enroll/", json=body, headers=w.master)


# (endpoint, method) -> a request that changes something (the recipe may set up what it needs
# first; only rows written by the request itself count).
ROUTE_CALLS = {
    ("account_page.login", "POST"): _login,
    ("account_page.logout", "POST"): lambda w: w.form("/account/logout/", {}),
    ("account_page.change_password", "POST"): lambda w: w.form(
        "/account/password/",
        {"current_password": w.user.password, "new_password": USER_PASSWORD},
    ),
    ("account_page.create", "POST"): lambda w: w.form(
        "/account/tokens/", {"name": "page", "scope": "user", "device": ""}
    ),
    ("account_page.revoke", "POST"): _revoke_page_token,
    ("console.release_new", "POST"): _console_release_create,
    ("console.rollout_act", "POST"): _console_rollout_action,
    ("console.device_tags_edit", "POST"): lambda w: replace(
        w.form(f"/ui/devices/{w.device.id}/tags/", {"tags": "fleet-a"}), expect=(303,)
    ),
    ("console.device_execute", "POST"): lambda w: replace(
        w.form(f"/ui/devices/{w.device.id}/execute/", {"command": "last_logs"}), expect=(503,)
    ),
    ("devices.create_device", "POST"): lambda w: Call(
        "POST", "/devices/", json={"unit_id": "new-minion", "tags": ["fleet-a"]}
    ),
    ("devices.update_device", "PATCH"): _device_update("PATCH"),
    ("devices.update_device", "PUT"): _device_update("PUT"),
    ("devices.delete_device", "DELETE"): lambda w: Call("DELETE", f"/devices/{w.device.id}/"),
    ("devices.override_lock", "POST"): lambda w: Call(
        "POST", f"/devices/{w.device.id}/override-lock/"
    ),
    ("projects.create_project", "POST"): lambda w: Call(
        "POST", "/docker/projects/", json={"name": "p"}
    ),
    ("projects.update_project", "PATCH"): _project_update("PATCH"),
    ("projects.update_project", "PUT"): _project_update("PUT"),
    ("projects.delete_project", "DELETE"): _project_delete,
    ("releases.create_release", "POST"): lambda w: Call(
        "POST",
        f"/docker/projects/{w.project()}/releases/",
        json={
            "version": "1",
            "devices": [w.device.id],
            "containers": CONTAINERS,
            "pin_digests": False,  # images never pushed: run by tag (pinning: test_api_release_pinning.py)
        },
    ),
    ("releases.update_release", "PATCH"): _release_update("PATCH"),
    ("releases.update_release", "PUT"): _release_update("PUT"),
    ("releases.delete_release", "DELETE"): _release_delete,
    ("rollouts.rollout_pause", "POST"): lambda w: w.rollout_url("pause"),
    ("rollouts.rollout_resume", "POST"): lambda w: w.rollout_url("resume", pause_first=True),
    ("rollouts.rollout_abort", "POST"): lambda w: w.rollout_url("abort"),
    ("rollouts.rollout_revert", "POST"): lambda w: w.rollout_url("revert"),
    ("rollouts.create_webhook", "POST"): _webhook_create,
    ("rollouts.delete_webhook", "DELETE"): lambda w: Call(
        "DELETE", f"/docker/rollout-webhooks/{w.webhook()}/"
    ),
    ("registries.create_registry", "POST"): lambda w: Call(
        "POST",
        "/docker/registries/",
        json={"name": "r", "url": "reg.example", "username": "u", "password": REGISTRY_PASSWORD},
    ),
    ("registries.update_registry", "PATCH"): _registry_update("PATCH"),
    ("registries.update_registry", "PUT"): _registry_update("PUT"),
    ("registries.delete_registry", "DELETE"): lambda w: Call(
        "DELETE", f"/docker/registries/{w.registry()}/"
    ),
    ("signing_keys.create_signing_key", "POST"): lambda w: Call(
        "POST", "/docker/signing-keys/", json={"name": "k", "public_key": SIGNING_KEY}
    ),
    ("signing_keys.delete_signing_key", "DELETE"): lambda w: Call(
        "DELETE", f"/docker/signing-keys/{w.signing_key()}/"
    ),
    # Salt is unreachable here: the row is written, then 503
    ("execute.execute", "POST"): lambda w: Call(
        "POST",
        f"/dongle/devices/{w.device.id}/execute/",
        json={"command": "test.ping"},
        expect=(503,),
    ),
    ("execute.execute_raw", "POST"): lambda w: Call(
        "POST",
        f"/dongle/devices/{w.device.id}/execute_raw/",
        json={"command": "test.ping"},
        expect=(503,),
    ),
    ("enrollment.create_enrollment_token", "POST"): lambda w: Call(
        "POST", "/enrollment-tokens/", json={"name": "e", "max_uses": 1}
    ),
    ("enrollment.revoke_enrollment_token", "DELETE"): lambda w: Call(
        "DELETE", f"/enrollment-tokens/{w.enrollment_token()['id']}/"
    ),
    ("enrollment.enroll_device", "POST"): _enroll,
    # the console's account pages (api/console/account.py): the same services, as forms
    ("console.create_token", "POST"): lambda w: w.form(
        "/ui/account/tokens/", {"name": "console", "scope": "user", "device": ""}
    ),
    ("console.revoke_api_token", "POST"): lambda w: w.form(
        f"/ui/account/tokens/{w.factory.token('user', user=w.user).id}/revoke/", {}
    ),
    ("console.create_enrollment_token", "POST"): lambda w: w.form(
        "/ui/account/enrollment/", {"name": "e", "max_uses": "1", "expires": ""}
    ),
    ("console.revoke_enrollment_token", "POST"): lambda w: w.form(
        f"/ui/account/enrollment/{w.enrollment_token()['id']}/revoke/", {}
    ),
    ("console.create_registry", "POST"): lambda w: w.form(
        "/ui/account/registries/",
        {"name": "r", "url": "reg.example", "username": "u", "password": REGISTRY_PASSWORD},
    ),
    ("console.update_registry", "POST"): lambda w: w.form(
        f"/ui/account/registries/{w.registry()}/",
        {"name": "r2", "url": "reg.example:5001", "username": "u2", "password": REGISTRY_PASSWORD},
    ),
    ("console.delete_registry", "POST"): lambda w: w.form(
        f"/ui/account/registries/{w.registry()}/delete/", {}
    ),
    ("console.create_webhook", "POST"): lambda w: (
        w.cli("accounts", "webhook-secret", w.account.name),
        w.form("/ui/account/webhooks/", {"url": HOOK_URL}),
    )[1],
    ("console.delete_webhook", "POST"): lambda w: w.form(
        f"/ui/account/webhooks/{w.webhook()}/delete/", {}
    ),
    ("master.devices_sync", "POST"): lambda w: Call(
        "POST", "/master/devices/sync/", json={"unit_ids": ["minion-by-sync"]}, headers=w.master
    ),
}

# "group command" -> its arguments (after any setup); each must change something.
CLI_CALLS = {
    "accounts create": lambda w: ["accounts", "create", "another-account"],
    "users create": lambda w: [
        *("users", "create", "new@example.com", "--account", w.account.name),
        *("--password", USER_PASSWORD),
    ],
    "users password": lambda w: ["users", "password", w.user.email, "--password", USER_PASSWORD],
    "tokens create": lambda w: ["tokens", "create", w.user.email, "--name", "cli"],
    "tokens revoke": lambda w: ["tokens", "revoke", str(w.factory.token("user", user=w.user).id)],
    "accounts commands": lambda w: ["accounts", "commands", w.account.name, "--allow-all"],
    "accounts webhook-secret": lambda w: ["accounts", "webhook-secret", w.account.name],
    "accounts release-policy": lambda w: [
        *("accounts", "release-policy", w.account.name, "--no-privileged"),
    ],
    "platform-token create": lambda w: ["platform-token", "create", "--name", "m"],
    "platform-token revoke": lambda w: [
        "platform-token",
        "revoke",
        w.cli("platform-token", "create", "--name", "m").split()[3],  # "created platform token N"
    ],
    "enrollment create": lambda w: ["enrollment", "create", w.account.name, "--uses", "2"],
    "enrollment revoke": lambda w: [
        *("enrollment", "revoke", str(w.enrollment_token()["id"])),
    ],
    "rollouts recount": lambda w: [
        *("rollouts", "recount", str(w.release(w.project(), rollout={"waves": [100]}))),
    ],
}


@pytest.fixture
def world(app, client, api_factory, account, user, user_token, master_token, device):
    return World(app, client, api_factory, account, user, user_token, master_token, device)


def _last_row_id(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.coalesce(func.max(AuditEntry.id), 0)))


def _rows_after(app, row_id: int) -> list[AuditEntry]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEntry).where(AuditEntry.id > row_id)).all()
        db.session.expunge_all()
        return rows


def _text(rows) -> str:
    return json.dumps(
        [[r.action, r.target, r.user_email, r.details] for r in rows], default=str, sort_keys=True
    )


def _assert_no_secret(rows, *more: str) -> None:
    text = _text(rows)
    for secret in (*SECRETS, *[m for m in more if m]):
        assert secret not in text, (secret, text)


# -- the declarations ----------------------------------------------------------------------


def test_every_state_changing_route_and_command_declares_its_audit(app):
    undeclared = [
        f"{method} {rule} ({endpoint})"
        for rule, method, endpoint in state_changing_routes(app)
        if declaration(app.view_functions[endpoint]) is None
    ]
    undeclared += [
        f"flask --app api {name}"
        for name, cmd in cli_commands(app)
        if declaration(cmd.callback) is None
    ]
    assert undeclared == [], "declare them with @audited(...) or @not_audited(...)"


def test_every_exemption_is_documented(app):
    """Each route or command that writes no row is named with its reason in docs/security.md."""
    section = DOCS.read_text().split("## Audit log", 1)[1].split("\n## ", 1)[0]
    missing = [
        f"{method} {rule}"
        for rule, method, endpoint in state_changing_routes(app)
        if isinstance(declaration(app.view_functions[endpoint]), str)
        and f"`{method} {rule}`" not in section
    ]
    missing += [
        name
        for name, cmd in cli_commands(app)
        if isinstance(declaration(cmd.callback), str) and f"`{name}`" not in section
    ]
    missing += [f"{group} group" for group in EXEMPT_CLI_GROUPS if f"`{group} ...`" not in section]
    assert missing == []


# -- every audited route and command, really called ----------------------------------------


@pytest.mark.parametrize(
    "rule,method,endpoint", AUDITED_ROUTES, ids=[f"{m} {r}" for r, m, _ in AUDITED_ROUTES]
)
def test_each_state_changing_route_writes_its_audit_row(world, app, rule, method, endpoint):
    actions = declaration(app.view_functions[endpoint])
    recipe = ROUTE_CALLS.get((endpoint, method))
    assert recipe is not None, f"add a request for {method} {rule} to ROUTE_CALLS"
    call = recipe(world)
    before = _last_row_id(app)
    resp = (call.client or world.client).open(
        call.path,
        method=call.method,
        json=call.json,
        data=call.data,
        headers=call.headers or (world.headers if call.client is None else {}),
    )
    assert resp.status_code in call.expect, (resp.status_code, resp.get_data(as_text=True)[:500])
    rows = _rows_after(app, before)
    assert any(r.action in (actions or ACTIONS) for r in rows), (
        f"{method} {rule} changed something and wrote no audit row {actions or ''}: {_text(rows)}"
    )
    made = resp.get_json(silent=True) or {}
    shown = re.findall(rb'id="new-token">([^<]+)<', resp.data) if call.client else []
    _assert_no_secret(rows, made.get("token"), *[s.decode() for s in shown])
    assert actions is not None, f"{method} {rule} declares no audit action (@audited)"


@pytest.mark.parametrize("name", AUDITED_COMMANDS)
def test_each_cli_command_that_changes_something_writes_its_audit_row(world, app, name):
    command = dict(cli_commands(app))[name]
    actions = declaration(command.callback)
    recipe = CLI_CALLS.get(name)
    assert recipe is not None, f"add a command line for {name!r} to CLI_CALLS"
    args = recipe(world)
    before = _last_row_id(app)
    output = world.cli(*args)
    rows = _rows_after(app, before)
    assert any(r.action in (actions or ACTIONS) for r in rows), (
        f"flask --app api {' '.join(args)} wrote no audit row {actions or ''}: {_text(rows)}"
    )
    printed = output.strip().splitlines()[-1] if output.strip() else ""
    _assert_no_secret(rows, printed if len(printed) >= 20 else None)
    assert actions is not None, f"flask --app api {name} declares no audit action (@audited)"


def test_the_walk_sees_every_route_and_command():
    """The parametrisation above is built from the real URL map and CLI tree."""
    endpoints = {endpoint for _, _, endpoint in ROUTES}
    assert {"projects.delete_project", "rollouts.create_webhook", "devices.update_device"} <= (
        endpoints
    )
    assert {"accounts create", "users create", "accounts webhook-secret"} <= set(COMMANDS)
