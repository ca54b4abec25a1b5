"""/openapi.json and /docs/ are public and describe every endpoint."""

import json
import re

import pytest
from jsonschema import Draft202012Validator

from api.limits import MAX_REPORT_BATCH
from api.openapi import _openapi_path
from berth.execargs import MAX_COMMAND_LINE


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_openapi_document_is_public_and_complete(app, client):
    r = client.get("/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    doc = r.json
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["APIToken"]["name"] == "Authorization"
    # the console's pages are HTML for a browser session, not REST operations
    assert not [p for p in doc["paths"] if p.startswith("/ui/")]
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith(("openapi.", "account_page.", "console.")):
            continue
        path = _openapi_path(rule.rule)
        assert path in doc["paths"], path
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            op = doc["paths"][path][method.lower()]
            assert op["summary"] and op["responses"], (path, method)
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref


def test_release_schema_matches_seed_fields(client):
    schemas = client.get("/openapi.json").json["components"]["schemas"]
    assert set(schemas["Release"]["properties"]) >= {
        "id",
        "version",
        "version_hash",
        "devices",
        "containers",
        "successful_deployments",
        "remove_containers",
    }
    assert schemas["RegistryInput"]["properties"]["password"]["writeOnly"] is True
    assert "password" not in schemas["Registry"]["properties"]
    assert set(schemas["StartupParameters"]["properties"]) == {
        "environment",
        "binds",
        "volumes",
        "ports",
        "network_mode",
        "restart_policy",
        "privileged",
        "command",
        "entrypoint",
        "labels",
        "devices",
        "cap_add",
        "mem_limit",
        "user",
        "working_dir",
        "log_config",
    }


def test_startup_parameters_schema_lists_what_the_validator_supports(client):
    from berth import startup_params

    documented = client.get("/openapi.json").json["components"]["schemas"]["StartupParameters"][
        "properties"
    ]
    for key in documented:
        messages = startup_params.validate({key: object()}).get(key, [])
        assert not any(m.startswith("Unknown startup parameter") for m in messages), key
    assert startup_params.validate({"not_a_key": 1})["not_a_key"][0].startswith(
        "Unknown startup parameter"
    )


def test_docs_page_is_public_html(client):
    r = client.get("/docs/")
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert b"/docker/projects/{project_id}/releases/" in r.data
    assert b"/openapi.json" in r.data
    json.loads(client.get("/openapi.json").data)


def test_openapi_document_is_valid_openapi_3_1(client):
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation import OpenAPIV31SpecValidator

    doc = client.get("/openapi.json").json
    assert doc["openapi"] == "3.1.0"
    validate(doc, cls=OpenAPIV31SpecValidator)


def test_bodies_and_enums_come_from_the_schemas_and_the_contract(client):
    from berth.contract import DeploymentState, ReportOutcome

    schemas = client.get("/openapi.json").json["components"]["schemas"]
    assert schemas["DeploymentState"]["enum"] == [s.value for s in DeploymentState]
    assert schemas["DeploymentReport"]["properties"]["outcome"]["enum"] == [
        o.value for o in ReportOutcome
    ]
    release_input = schemas["ReleaseInput"]
    assert release_input["required"] == ["version", "containers"]
    assert release_input["properties"]["containers"]["items"] == {
        "$ref": "#/components/schemas/ContainerInput"
    }
    assert schemas["ContainerInput"]["properties"]["startup_parameters"] == {
        "$ref": "#/components/schemas/StartupParameters"
    }
    report = client.get("/openapi.json").json["paths"]["/master/deployments/report/"]["post"]
    # one report, or a list of them (issue 20)
    ref = {"$ref": "#/components/schemas/DeploymentReport"}
    assert report["requestBody"]["content"]["application/json"]["schema"] == {
        "oneOf": [ref, {"type": "array", "maxItems": MAX_REPORT_BATCH, "items": ref}]
    }


def test_docs_page_serves_the_vendored_swagger_ui(client):
    r = client.get("/docs/")
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    page = r.data.decode()
    assert "/docs/static/swagger-ui/swagger-ui-bundle.js" in page
    assert 'data-openapi="/openapi.json"' in page
    assert "//cdn" not in page and "unpkg" not in page
    for asset, mimetype in (
        ("swagger-ui/swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui/swagger-ui.css", "text/css"),
        ("docs.js", "text/javascript"),
    ):
        r = client.get(f"/docs/static/{asset}")
        assert r.status_code == 200 and r.mimetype == mimetype, asset
        r.close()
    assert b"SwaggerUIBundle" in client.get("/docs/static/docs.js").data


def test_core_responses_match_their_openapi_models(client, user_token, device):
    from api.devices.schemas import Device
    from api.projects.schemas import Project
    from api.registries.schemas import Registry

    headers = user_token.headers
    registry = client.post(
        "/docker/registries/",
        json={"name": "r", "url": "127.0.0.1:5000", "username": "u", "password": "p"},
        headers=headers,
    ).json
    project = client.post("/docker/projects/", json={"name": "p"}, headers=headers).json
    Registry.model_validate(registry)
    Project.model_validate(project)
    Device.model_validate(client.get(f"/devices/{device.id}/", headers=headers).json)
    for url, model in (
        ("/docker/registries/", Registry),
        ("/docker/projects/", Project),
        ("/devices/", Device),
    ):
        results = client.get(url, headers=headers).json["results"]
        assert results
        for item in results:
            model.model_validate(item)


def test_audit_page_matches_its_openapi_model(client, user_token):
    from api.audit.schemas import AuditPage

    client.post("/docker/projects/", json={"name": "audited"}, headers=user_token.headers)
    client.post(
        "/docker/registries/",
        json={"name": "r", "url": "127.0.0.1:5000", "username": "u", "password": "p"},
        headers=user_token.headers,
    )
    page = client.get("/audit/", headers=user_token.headers).json
    assert page["results"]
    AuditPage.model_validate(page)


def test_creates_link_to_the_new_object(client):
    """OpenAPI links: a create's 201 leads to the new object's get/replace/update/delete."""
    doc = client.get("/openapi.json").json
    ops = {
        op["operationId"]: (path, method)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if "operationId" in op
    }
    for create, item_path, id_name in (
        ("createRegistry", "/docker/registries/{registry_id}/", "registry_id"),
        ("createProject", "/docker/projects/{project_id}/", "project_id"),
        ("createRelease", "/docker/projects/{project_id}/releases/{release_id}/", "release_id"),
        ("createDevice", "/devices/{device_id}/", "device_id"),
    ):
        path, method = ops[create]
        links = doc["paths"][path][method]["responses"]["201"]["links"]
        assert {ops[link["operationId"]] for link in links.values()} == {
            (item_path, m) for m in ("get", "put", "patch", "delete")
        }
        for link in links.values():
            assert link["parameters"][id_name] == "$response.body#/id"


def test_registry_put_may_leave_the_password_out(client, user_token):
    doc = client.get("/openapi.json").json
    put = doc["paths"]["/docker/registries/{registry_id}/"]["put"]["requestBody"]
    schema = put["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert "password" not in doc["components"]["schemas"][schema]["required"]
    assert "password" in doc["components"]["schemas"]["RegistryInput"]["required"]
    body = {"name": "r", "url": "registry.example", "username": "u", "password": "p"}
    created = client.post("/docker/registries/", json=body, headers=user_token.headers).json
    del body["password"]
    resp = client.put(f"/docker/registries/{created['id']}/", json=body, headers=user_token.headers)
    assert resp.status_code == 200, resp.json


def test_public_document_has_no_project_history_words(client):
    """The document speaks to API clients: no words about how the project began."""
    text = client.get("/openapi.json").get_data(as_text=True).lower()
    assert "seed" not in text


@pytest.mark.db
def test_execute_raw_command_schema_states_the_function_name_limit(client, user_token, device):
    """A command line the document allows is one the server takes: the function name's 255
    characters are in the pattern, the line's length in maxLength."""
    command = client.get("/openapi.json").json["components"]["schemas"]["ExecuteRawInput"][
        "properties"
    ]["command"]
    assert command["maxLength"] == MAX_COMMAND_LINE
    too_long = "m" * 200 + "." + "f" * 100 + " curveball"
    assert re.fullmatch(command["pattern"], too_long) is None
    resp = client.post(
        f"/dongle/devices/{device.id}/execute_raw/",
        json={"command": too_long},
        headers=user_token.headers,
    )
    assert resp.status_code == 400 and "command" in resp.json, resp.json
    assert re.fullmatch(command["pattern"], "m" * 127 + "." + "f" * 127 + " curveball")


@pytest.mark.db
def test_patch_without_a_body_is_what_the_document_says(client, user_token, device):
    """DRF reads a PATCH without a body as an empty partial update (200, the object): every
    PATCH operation's requestBody says it is optional, and the server answers so."""
    h = user_token.headers
    registry = client.post(
        "/docker/registries/",
        json={"name": "r", "url": "registry.example:5000", "username": "u", "password": "p"},
        headers=h,
    ).json
    project = client.post("/docker/projects/", json={"name": "p"}, headers=h).json
    container = {"name": "app", "image": "app", "tag": "v1", "digest": "sha256:" + "0" * 64}
    release = client.post(
        f"/docker/projects/{project['id']}/releases/",
        json={"version": "1", "devices": [device.id], "containers": [container]},
        headers=h,
    ).json
    paths = client.get("/openapi.json").json["paths"]
    patched = {path for path, ops in paths.items() if "patch" in ops}
    assert patched == {
        "/devices/{device_id}/",
        "/docker/registries/{registry_id}/",
        "/docker/projects/{project_id}/",
        "/docker/projects/{project_id}/releases/{release_id}/",
    }
    for path in patched:
        assert paths[path]["patch"]["requestBody"]["required"] is False, path
        url = path.format(
            device_id=device.id,
            registry_id=registry["id"],
            project_id=project["id"],
            release_id=release["id"],
        )
        before = client.get(url, headers=h).json
        resp = client.patch(url, headers=h)
        assert resp.status_code == 200 and resp.json == before, (path, resp.json)


@pytest.mark.db
def test_a_stored_release_reads_back_within_its_response_schema(client, user_token, device):
    """The server takes a shell-quoted environment with quotes (the request schema shows only
    plain words): the release read back still fits the document's Release schema."""
    h = user_token.headers
    project = client.post("/docker/projects/", json={"name": "p"}, headers=h).json
    container = {
        "name": "app",
        "image": "app",
        "tag": "v1",
        "digest": "sha256:" + "0" * 64,
        "startup_parameters": {"environment": "A='x y' B=\"1 2\" C=z"},
    }
    created = client.post(
        f"/docker/projects/{project['id']}/releases/",
        json={"version": "1", "devices": [device.id], "containers": [container]},
        headers=h,
    )
    assert created.status_code == 201, created.json
    doc = client.get("/openapi.json").json
    schemas = doc["components"]["schemas"]
    validator = Draft202012Validator(_inline_refs(schemas["Release"], schemas))
    for body in (
        created.json,
        client.get(
            f"/docker/projects/{project['id']}/releases/{created.json['id']}/", headers=h
        ).json,
    ):
        assert body["containers"][0]["startup_parameters"] == container["startup_parameters"]
        errors = [e.message for e in validator.iter_errors(body)]
        assert not errors, errors


def _inline_refs(node, schemas):
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline_refs(schemas[node["$ref"].rsplit("/", 1)[1]], schemas)
        return {k: _inline_refs(v, schemas) for k, v in node.items() if k != "components"}
    if isinstance(node, list):
        return [_inline_refs(v, schemas) for v in node]
    return node


def test_the_document_only_gains_precision():
    """Against the snapshot (tests/fixtures/openapi.json): no operation, status code, parameter,
    link or constraint lost or loosened. ``python -m tests.fixtures.openapi_diff`` shows every
    difference; ``--update`` takes a deliberate change of the API as the new snapshot."""
    from tests.fixtures.openapi_diff import compare

    assert compare().broken == []


def test_the_precision_check_fails_on_a_looser_document():
    from tests.fixtures.openapi_diff import Diff

    def doc(max_length, codes, required=True):
        return {
            "paths": {
                "/x/": {
                    "post": {
                        "requestBody": {
                            "required": required,
                            "content": {"application/json": {"schema": {"$ref": "#/c/X"}}},
                        },
                        "responses": {code: {"description": ""} for code in codes},
                    }
                }
            },
            "components": {
                "schemas": {"X": {"type": "object", "properties": {"a": {"maxLength": max_length}}}}
            },
        }

    assert Diff(doc(10, ["200"]), doc(5, ["200", "400"])).document().broken == []
    assert Diff(doc(10, ["200", "400"]), doc(20, ["200"], False)).document().broken == [
        "POST /x/ requestBody: no longer required",
        "POST /x/ response 400: removed",
        "component X.properties.a.maxLength: 10 -> 20",
    ]
