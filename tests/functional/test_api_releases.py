"""/docker/projects/{p}/releases/ and deployments (real database), incl. the seed's body verbatim."""

import copy
import json
import re

import pytest

from api.deployments.models import Deployment
from api.extensions import db
from tests.fixtures.api import deployment_statuses

pytestmark = pytest.mark.docker

# The release body from the seed document ("Deploying docker containers on devices"), verbatim.
SEED_RELEASE = json.loads("""
{   "id": 1,   "version": "1.0.0",   "version_hash": "96a7191f",   "devices": [       "device_id"   ],   "containers": [       {           "name": "curveball",           "image": "curveball",           "tag": "delta-base-r0.0.0.1",           "required_tags": [               "base"           ],           "startup_parameters": {               "environment": "REQUESTS_CA_BUNDLE='/usr/local/share/ca-certificates/AdamCA.crt'",               "binds": [                   "/home/balenaEngine/data:/opt/RavenDB/Server/RavenData"               ],               "network_mode": "host",               "restart_policy": "always",               "privileged": true           },           "purge_data": false,           "registry": 1,           "fully_qualified_name": "deployment-curveball-1"       },       {           "name": "ravendb",           "image": "ravendb",           "tag": "base",           "required_tags": [],           "startup_parameters": {               "environment": "RAVEN_ARGS='--config-path /opt/RavenDB/Server/RavenData/settings.json'",               "binds": [                   "/home/balenaEngine/data:/opt/RavenDB/Server/RavenData"               ],               "network_mode": "host",               "restart_policy": "always",               "privileged": true           },           "purge_data": false,           "registry": 1,           "fully_qualified_name": "deployment-ravendb-1"       }   ],   "successful_deployments": [       "device_id"   ],   "remove_containers": [       "curveball",       "ravendb"   ]}
""")


@pytest.fixture(scope="session")
def seed_images(registry_push):
    """The seed's images on the testbed registry: its release body is pinned as it stands."""
    for container in SEED_RELEASE["containers"]:
        registry_push.image(container["image"], container["tag"])


@pytest.fixture
def setup(client, user_token, api_factory, account, testbed, seed_images):
    headers = user_token.headers
    registry = client.post(
        "/docker/registries/",
        json={
            "name": "r",
            "url": testbed.registry,
            "username": testbed.user,
            "password": testbed.password,
        },
        headers=headers,
    ).json
    project = client.post("/docker/projects/", json={"name": "proj"}, headers=headers).json
    devices = [api_factory.device(account), api_factory.device(account)]
    return {
        "headers": headers,
        "registry": registry["id"],
        "project": project["id"],
        "url": f"/docker/projects/{project['id']}/releases/",
        "devices": devices,
    }


def seed_body(setup, devices=None):
    body = copy.deepcopy(SEED_RELEASE)
    body["devices"] = [d.id for d in (devices or setup["devices"][:1])]
    for container in body["containers"]:
        container["registry"] = setup["registry"]
    return body


def simple_body(version="1", devices=(), **container):
    # an image that was never pushed: run by tag (pinning: tests/functional/test_api_release_pinning.py)
    return {
        "version": version,
        "devices": [d.id for d in devices],
        "containers": [{"name": "app", "image": "app", "tag": "1.0", **container}],
        "pin_digests": False,
    }


def _deployments(app, release_id):
    with app.app_context():
        return deployment_statuses(release_id)


def test_seed_release_body_is_accepted_verbatim(app, client, setup):
    device = setup["devices"][0]
    r = client.post(setup["url"], json=seed_body(setup), headers=setup["headers"])
    assert r.status_code == 201, r.json
    body = r.json
    rid = body["id"]
    assert isinstance(rid, int)
    assert set(SEED_RELEASE) <= set(body)
    assert body["version"] == "1.0.0"
    assert re.fullmatch(r"[0-9a-f]{8}", body["version_hash"])
    assert body["devices"] == [device.id]
    assert body["successful_deployments"] == []
    assert body["remove_containers"] == ["curveball", "ravendb"]
    assert [c["name"] for c in body["containers"]] == ["curveball", "ravendb"]
    for got, sent in zip(body["containers"], SEED_RELEASE["containers"], strict=True):
        assert set(got) == {*sent, "digest"}
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", got["digest"])
        for key in ("name", "image", "tag", "required_tags", "startup_parameters", "purge_data"):
            assert got[key] == sent[key]
        assert got["registry"] == setup["registry"]
        assert got["fully_qualified_name"] == f"deployment-{sent['name']}-{rid}"
    # creating it queued it on the listed device (seed step 2)
    assert _deployments(app, rid) == {device.id: "queued"}
    # GET returns the same entity
    assert client.get(f"{setup['url']}{rid}/", headers=setup["headers"]).json == body


def test_version_hash_unique_and_filter(client, setup):
    a = client.post(setup["url"], json=simple_body("1"), headers=setup["headers"]).json
    b = client.post(setup["url"], json=simple_body("2"), headers=setup["headers"]).json
    assert a["version_hash"] != b["version_hash"]
    r = client.get(f"{setup['url']}?version_hash={b['version_hash']}", headers=setup["headers"])
    assert [x["id"] for x in r.json["results"]] == [b["id"]]
    assert r.json["count"] == 1


def test_filter_releases_by_device(client, setup):
    d1, d2 = setup["devices"]
    client.post(setup["url"], json=simple_body("1", [d1]), headers=setup["headers"])
    b = client.post(setup["url"], json=simple_body("2", [d2]), headers=setup["headers"]).json
    r = client.get(f"{setup['url']}?device={d2.id}", headers=setup["headers"])
    assert [x["id"] for x in r.json["results"]] == [b["id"]]


def test_duplicate_version_in_project_is_400(client, setup):
    client.post(setup["url"], json=simple_body("1.0.0"), headers=setup["headers"])
    r = client.post(setup["url"], json=simple_body("1.0.0"), headers=setup["headers"])
    assert r.status_code == 400
    assert list(r.json) == ["version"]
    other = client.post("/docker/projects/", json={"name": "other"}, headers=setup["headers"]).json
    r = client.post(
        f"/docker/projects/{other['id']}/releases/",
        json=simple_body("1.0.0"),
        headers=setup["headers"],
    )
    assert r.status_code == 201


@pytest.mark.parametrize(
    "container, field",
    [
        ({"image": "Curveball"}, "image"),
        ({"image": "app:1.0"}, "image"),
        ({"image": "app@sha256:abc"}, "image"),
        ({"image": "bad//path"}, "image"),
        ({"image": ""}, "image"),
        ({"tag": ".dot"}, "tag"),
        ({"tag": "x" * 129}, "tag"),
        ({"tag": "has space"}, "tag"),
        ({"tag": 5}, "tag"),
        ({"name": "a"}, "name"),
        ({"name": "-lead"}, "name"),
        ({"name": "bad/name"}, "name"),
        ({"required_tags": ["ok", "-bad"]}, "required_tags"),
        ({"required_tags": "base"}, "required_tags"),
        ({"purge_data": "yes"}, "purge_data"),
        ({"registry": 999999}, "registry"),
        ({"registry": "1"}, "registry"),
        ({"startup_parameters": "x"}, "startup_parameters"),
    ],
)
def test_container_validation_names_the_field(client, setup, container, field):
    r = client.post(setup["url"], json=simple_body(**container), headers=setup["headers"])
    assert r.status_code == 400, r.json
    assert list(r.json) == ["containers"]
    assert list(r.json["containers"][0]) == [field]


def test_valid_docker_references_are_accepted(client, setup):
    body = simple_body(image="registry.example.com:5000/team/app-x_y.z", tag="v1.2.3_rc-1")
    body["containers"][0]["required_tags"] = ["base", "latest"]
    r = client.post(setup["url"], json=body, headers=setup["headers"])
    assert r.status_code == 201, r.json


def test_startup_parameters_errors_name_the_subfield(client, setup):
    body = simple_body(
        startup_parameters={"restart_policy": "sometimes", "bogus": 1, "privileged": True}
    )
    r = client.post(setup["url"], json=body, headers=setup["headers"])
    assert r.status_code == 400
    errors = r.json["containers"][0]["startup_parameters"]
    assert set(errors) == {"restart_policy", "bogus"}
    assert all(isinstance(m, list) and m for m in errors.values())


def test_errors_are_reported_per_container_index(client, setup):
    body = simple_body()
    body["containers"].append({"name": "second", "image": "OK-NOT", "tag": "1"})
    r = client.post(setup["url"], json=body, headers=setup["headers"])
    assert r.status_code == 400
    assert r.json["containers"][0] == {}
    assert list(r.json["containers"][1]) == ["image"]


def test_container_names_unique_within_release(client, setup):
    body = simple_body()
    body["containers"].append({"name": "app", "image": "other", "tag": "1"})
    r = client.post(setup["url"], json=body, headers=setup["headers"])
    assert r.status_code == 400
    assert r.json["containers"][1]["name"][0].startswith(
        'Container name "app" is used more than once'
    )


def test_missing_fields(client, setup):
    r = client.post(setup["url"], json={}, headers=setup["headers"])
    assert r.status_code == 400
    assert r.json == {
        "version": ["This field is required."],
        "containers": ["This field is required."],
    }
    r = client.post(
        setup["url"], json={"version": "1", "containers": [{}]}, headers=setup["headers"]
    )
    assert r.json["containers"][0] == {
        k: ["This field is required."] for k in ("name", "image", "tag")
    }
    r = client.post(
        setup["url"], json={"version": "1", "containers": ["x"]}, headers=setup["headers"]
    )
    assert "non_field_errors" in r.json["containers"][0]


def test_remove_containers_validated(client, setup):
    body = {**simple_body(), "remove_containers": ["ok-name", "bad name"]}
    r = client.post(setup["url"], json=body, headers=setup["headers"])
    assert r.status_code == 400 and list(r.json["remove_containers"]) == ["1"]


def test_devices_and_registry_of_another_account_are_400(client, setup, api_factory):
    other_device = api_factory.device()
    other_user = api_factory.token("user")
    other_registry = client.post(
        "/docker/registries/",
        json={"name": "x", "url": "h.example", "username": "u", "password": "p"},
        headers=other_user.headers,
    ).json["id"]
    r = client.post(
        setup["url"], json=simple_body(devices=[other_device]), headers=setup["headers"]
    )
    assert r.status_code == 400
    assert r.json == {"devices": [f'Invalid pk "{other_device.id}" - object does not exist.']}
    r = client.post(
        setup["url"], json=simple_body(registry=other_registry), headers=setup["headers"]
    )
    assert r.status_code == 400
    assert r.json["containers"][0] == {
        "registry": [f'Invalid pk "{other_registry}" - object does not exist.']
    }


def test_malformed_json_release(client, setup):
    r = client.post(
        setup["url"], data='{"version": ', headers=setup["headers"], content_type="application/json"
    )
    assert r.status_code == 400 and "JSON parse error" in r.json["detail"]


def test_containers_are_immutable_devices_may_change(app, client, setup):
    d1, d2 = setup["devices"]
    created = client.post(setup["url"], json=seed_body(setup, [d1]), headers=setup["headers"]).json
    url = f"{setup['url']}{created['id']}/"
    changed = seed_body(setup, [d1])
    changed["containers"][0]["tag"] = "other"
    r = client.put(url, json=changed, headers=setup["headers"])
    assert r.status_code == 409 and "create a new release" in r.json["detail"]
    r = client.patch(url, json={"containers": []}, headers=setup["headers"])
    assert r.status_code == 409
    r = client.patch(url, json={"remove_containers": []}, headers=setup["headers"])
    assert r.status_code == 409
    # the same containers again (PUT of the whole body) is fine, and a device can be added
    r = client.put(url, json=seed_body(setup, [d1, d2]), headers=setup["headers"])
    assert r.status_code == 200, r.json
    assert r.json["devices"] == [d1.id, d2.id]
    assert r.json["containers"] == created["containers"]
    assert _deployments(app, created["id"]) == {d1.id: "queued", d2.id: "queued"}
    # removing a device forgets its queued deployment
    r = client.patch(url, json={"devices": [d2.id]}, headers=setup["headers"])
    assert r.status_code == 200 and r.json["devices"] == [d2.id]
    assert _deployments(app, created["id"]) == {d2.id: "queued"}


def test_newer_release_supersedes_older_for_its_devices(app, client, setup):
    d1, d2 = setup["devices"]
    r1 = client.post(setup["url"], json=simple_body("1", [d1, d2]), headers=setup["headers"]).json
    r2 = client.post(setup["url"], json=simple_body("2", [d1]), headers=setup["headers"]).json
    assert _deployments(app, r1["id"]) == {d1.id: "superseded", d2.id: "queued"}
    assert _deployments(app, r2["id"]) == {d1.id: "queued"}


def test_deployments_endpoint(app, client, setup):
    d1, d2 = setup["devices"]
    rel = client.post(setup["url"], json=simple_body("1", [d1, d2]), headers=setup["headers"]).json
    with app.app_context():
        # what a device's success report stores
        db.session.add(
            Deployment(release_id=rel["id"], device_id=d1.id, status="succeeded", attempts=1)
        )
        db.session.commit()
    url = f"{setup['url']}{rel['id']}/deployments/"
    r = client.get(url, headers=setup["headers"])
    assert r.status_code == 200
    rows = {row["device"]: row for row in r.json["results"]}
    assert set(rows) == {d1.id, d2.id}
    assert rows[d1.id]["status"] == "succeeded" and rows[d1.id]["attempts"] == 1
    assert rows[d2.id]["status"] == "queued"
    assert set(rows[d2.id]) >= {
        "device",
        "status",
        "error",
        "attempts",
        "started_at",
        "finished_at",
    }
    r = client.get(f"{url}?device={d2.id}", headers=setup["headers"])
    assert [row["device"] for row in r.json["results"]] == [d2.id]
    # computed fields: successful_deployments and the device's docker_releases
    assert client.get(f"{setup['url']}{rel['id']}/", headers=setup["headers"]).json[
        "successful_deployments"
    ] == [d1.id]
    assert client.get(f"/devices/{d1.id}/", headers=setup["headers"]).json["docker_releases"] == [
        rel["id"]
    ]
    assert client.get(f"/devices/{d2.id}/", headers=setup["headers"]).json["docker_releases"] == []
    listed = client.get("/devices/", headers=setup["headers"]).json["results"]
    assert {d["id"]: d["docker_releases"] for d in listed} == {d1.id: [rel["id"]], d2.id: []}
    assert client.get(setup["url"], headers=setup["headers"]).json["results"][0][
        "successful_deployments"
    ] == [d1.id]


def test_delete_release_requeues_previous(app, client, setup):
    d1 = setup["devices"][0]
    r1 = client.post(setup["url"], json=simple_body("1", [d1]), headers=setup["headers"]).json
    r2 = client.post(setup["url"], json=simple_body("2", [d1]), headers=setup["headers"]).json
    assert _deployments(app, r1["id"]) == {d1.id: "superseded"}
    assert client.delete(f"{setup['url']}{r2['id']}/", headers=setup["headers"]).status_code == 204
    assert client.get(f"{setup['url']}{r2['id']}/", headers=setup["headers"]).status_code == 404
    assert _deployments(app, r1["id"]) == {d1.id: "queued"}


def test_release_of_other_project_is_404(client, setup):
    rel = client.post(setup["url"], json=simple_body("1"), headers=setup["headers"]).json
    other = client.post("/docker/projects/", json={"name": "other"}, headers=setup["headers"]).json
    assert (
        client.get(
            f"/docker/projects/{other['id']}/releases/{rel['id']}/", headers=setup["headers"]
        ).status_code
        == 404
    )


def test_created_release_lists_its_devices_as_get_does(app, client, setup, api_factory, account):
    """The 201 body's devices come from validation, not a re-read: de-duplicated, in the GET order."""
    d1, d2 = setup["devices"]
    d3 = api_factory.device(account)
    given = [d3.id, d1.id, d3.id, d2.id]
    r = client.post(
        setup["url"], json={**simple_body(), "devices": given}, headers=setup["headers"]
    )
    assert r.status_code == 201, r.json
    fetched = client.get(f"{setup['url']}{r.json['id']}/", headers=setup["headers"]).json
    assert r.json["devices"] == fetched["devices"]
    assert sorted(r.json["devices"]) == sorted({d1.id, d2.id, d3.id})
    assert _deployments(app, r.json["id"]) == {d1.id: "queued", d2.id: "queued", d3.id: "queued"}
    # unknown ids are named in the order given
    r = client.post(
        setup["url"],
        json={**simple_body("2"), "devices": ["nope-2", d1.id, "nope-1"]},
        headers=setup["headers"],
    )
    assert r.status_code == 400
    assert r.json == {
        "devices": [
            'Invalid pk "nope-2" - object does not exist.',
            'Invalid pk "nope-1" - object does not exist.',
        ]
    }


def test_responses_match_their_openapi_models(client, setup):
    from api.releases.schemas import Deployment, Release

    body = client.post(setup["url"], json=seed_body(setup), headers=setup["headers"]).json
    Release.model_validate(body)
    page = client.get(f"{setup['url']}{body['id']}/deployments/", headers=setup["headers"]).json
    assert page["results"]
    for deployment in page["results"]:
        Deployment.model_validate(deployment)
