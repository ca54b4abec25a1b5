"""Hostile or odd input is a 400/404 with a JSON body on SQLite and PostgreSQL, never a 500."""

import pytest

BIG = 10**30


@pytest.fixture
def project_id(client, user_token):
    return client.post("/docker/projects/", json={"name": "p"}, headers=user_token.headers).json[
        "id"
    ]


@pytest.mark.parametrize(
    "url",
    [
        f"/docker/registries/{BIG}/",
        f"/docker/projects/{BIG}/",
        f"/docker/projects/{BIG}/releases/",
        "/docker/projects/0/",
        "/devices/" + "x" * 5000 + "/",
        "/devices/%00/",
    ],
)
def test_out_of_range_or_odd_ids_are_404(client, user_token, url):
    r = client.get(url, headers=user_token.headers)
    assert r.status_code == 404 and r.json == {"detail": "Not found."}


def test_huge_release_id_is_404(client, user_token, project_id):
    r = client.get(f"/docker/projects/{project_id}/releases/{BIG}/", headers=user_token.headers)
    assert r.status_code == 404


def test_null_character_in_query_is_400(client, user_token):
    r = client.get("/devices/?unit_id=%00", headers=user_token.headers)
    assert r.status_code == 400 and "Null characters" in r.json["detail"]


def test_null_characters_in_body_are_400(client, user_token, project_id):
    r = client.post(
        "/devices/", json={"unit_id": "ok", "display": "a\x00b"}, headers=user_token.headers
    )
    assert r.status_code == 400 and r.json == {"display": ["Null characters are not allowed."]}
    body = {"version": "1", "devices": ["\x00"], "containers": []}
    r = client.post(
        f"/docker/projects/{project_id}/releases/", json=body, headers=user_token.headers
    )
    assert r.status_code == 400 and list(r.json) == ["devices"]
    r = client.post(
        f"/docker/projects/{project_id}/releases/",
        json={"version": "\x00", "containers": []},
        headers=user_token.headers,
    )
    assert r.status_code == 400 and list(r.json) == ["version"]


def test_huge_registry_id_in_body_is_400(client, user_token, project_id):
    body = {
        "version": "1",
        "containers": [{"name": "app", "image": "app", "tag": "1", "registry": BIG}],
    }
    r = client.post(
        f"/docker/projects/{project_id}/releases/", json=body, headers=user_token.headers
    )
    assert r.status_code == 400
    assert r.json["containers"][0] == {"registry": [f'Invalid pk "{BIG}" - object does not exist.']}


@pytest.mark.parametrize(
    "body, field",
    [
        ({"version": 1.5, "containers": []}, "version"),
        ({"version": "x", "containers": [], "devices": [5]}, "devices"),
        ({"version": "x", "containers": [], "devices": "abc"}, "devices"),
        ({"version": "x", "containers": {"name": "app"}}, "containers"),
        ({"version": "x", "containers": [], "remove_containers": "app"}, "remove_containers"),
        ({"version": "x" * 101, "containers": []}, "version"),
    ],
)
def test_ill_typed_release_fields(client, user_token, project_id, body, field):
    r = client.post(
        f"/docker/projects/{project_id}/releases/", json=body, headers=user_token.headers
    )
    assert r.status_code == 400 and list(r.json) == [field]


def test_undecodable_body_is_400(client, user_token, project_id):
    r = client.post(
        f"/docker/projects/{project_id}/releases/",
        data=b"\xff\xfe",
        headers={**user_token.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.json["detail"].startswith("JSON parse error")


ID_ROUTES = [
    "/docker/registries/{id}/",
    "/docker/projects/{id}/",
    "/docker/projects/{id}/releases/",
    "/docker/projects/1/releases/{id}/",
    "/docker/projects/{id}/releases/1/deployments/",
]


@pytest.mark.parametrize("bad_id", [0, 2**31, BIG])
@pytest.mark.parametrize("method", ["get", "put", "patch", "delete", "post"])
@pytest.mark.parametrize("route", ID_ROUTES)
@pytest.mark.parametrize("authenticated", [True, False])
def test_out_of_range_url_ids_are_404_for_every_method(
    client, user_token, route, method, bad_id, authenticated
):
    """Before authentication and for every method the route has (never 405 for a method it has)."""
    url = route.format(id=bad_id)
    headers = user_token.headers if authenticated else {}
    r = getattr(client, method)(url, json={}, headers=headers)
    if r.status_code == 405:  # a method this path does not have at all
        allowed = client.options(route.format(id=1)).headers["Allow"]
        assert method.upper() not in allowed
        assert r.json == {"detail": f'Method "{method.upper()}" not allowed.'}
    else:
        assert r.status_code == 404 and r.json == {"detail": "Not found."}


def test_405_lists_every_method_of_the_path(client, user_token):
    r = client.post("/docker/projects/1/", headers=user_token.headers)
    assert r.status_code == 405
    assert set(r.headers["Allow"].split(", ")) >= {"GET", "PUT", "PATCH", "DELETE"}


@pytest.mark.parametrize("depth", [1_100, 10_000])
def test_deeply_nested_json_is_400(client, user_token, depth):
    for body in (
        "[" * depth + "]" * depth,
        '{"name": ' + "[" * depth + "1" * 25 + "]" * depth + "}",
    ):
        r = client.post(
            "/docker/projects/",
            data=body,
            headers={**user_token.headers, "Content-Type": "application/json"},
        )
        assert r.status_code == 400 and r.json == {
            "detail": "JSON parse error - nested too deeply."
        }


def test_nested_free_form_values_are_400_naming_the_field(client, user_token, device):
    deep = "[" * 40 + "]" * 40
    r = client.post(
        f"/dongle/devices/{device.id}/execute/",
        data='{"command": "test.echo", "arg": [' + deep + "]}",
        headers={**user_token.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.json == {"arg": ["Nested more than 32 levels deep."]}
    r = client.post(
        f"/dongle/devices/{device.id}/execute/",
        json={"command": "test.echo", "kwarg": {"x": 2**70}},
        headers=user_token.headers,
    )
    assert r.status_code == 400 and r.json == {"kwarg": ["Integers must fit in 64 bits."]}


SURROGATE = '"a\\ud800b"'  # a JSON escape Python decodes to a lone surrogate


@pytest.mark.parametrize(
    "url, template, field",
    [
        ("/docker/projects/", '{"name": %s}', "name"),
        ("/docker/projects/", '{"name": "p2", "description": %s}', "description"),
        ("/devices/", '{"unit_id": %s}', "unit_id"),
        ("/devices/", '{"unit_id": "u1", "display": %s}', "display"),
        (
            "/docker/registries/",
            '{"name": "r", "url": "r.example", "username": "u", "password": %s}',
            "password",
        ),
    ],
)
def test_lone_surrogates_are_400_naming_the_field(client, user_token, url, template, field):
    r = client.post(
        url,
        data=template % SURROGATE,
        headers={**user_token.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and list(r.json) == [field]
    assert "surrogate" in r.json[field][0]


def test_lone_surrogates_in_release_bodies_are_400(client, user_token, project_id):
    url = f"/docker/projects/{project_id}/releases/"
    headers = {**user_token.headers, "Content-Type": "application/json"}
    r = client.post(
        url,
        data='{"version": "1", "containers": [], "devices": [@]}'.replace("@", SURROGATE),
        headers=headers,
    )
    assert r.status_code == 400 and list(r.json) == ["devices"]
    container = '{"name": "app", "image": "app", "tag": "1", "startup_parameters": {"environment": {"A": %s}}}'
    r = client.post(
        url,
        data='{"version": "1", "containers": [%s]}' % (container % SURROGATE),
        headers=headers,
    )
    assert r.status_code == 400
    assert "surrogate" in r.json["containers"][0]["startup_parameters"][0]


@pytest.mark.parametrize(
    "release_id, message",
    [
        (99999999999999999999999, "Ensure this value is less than or equal to 2147483647."),
        ("99999999999999999999999", "Ensure this value is less than or equal to 2147483647."),
        (2**31, "Ensure this value is less than or equal to 2147483647."),
        (0, "Ensure this value is greater than or equal to 1."),
        (-5, "Ensure this value is greater than or equal to 1."),
        ("1e3", "A valid integer is required."),
    ],
)
def test_out_of_range_ids_in_master_report_are_400(
    client, master_token, device, release_id, message
):
    body = {"unit_id": device.unit_id, "release_id": release_id, "outcome": "failed"}
    r = client.post("/master/deployments/report/", json=body, headers=master_token.headers)
    assert r.status_code == 400 and r.json == {"release_id": [message]}


@pytest.mark.parametrize("page_size, status", [("1000", 200), ("1001", 400), ("10" * 40, 400)])
def test_page_size_above_the_cap_is_400_naming_it(client, user_token, page_size, status):
    r = client.get(f"/docker/projects/?page_size={page_size}", headers=user_token.headers)
    assert r.status_code == status
    if status == 400:
        assert list(r.json) == ["page_size"]


@pytest.mark.parametrize(
    "field, value, cap",
    [
        ("remove_containers", [f"c{i:06d}" for i in range(100_000)], 1000),
        ("remove_containers", ["ab"] * 100_000, 1000),
        ("devices", ["00000000-0000-0000-0000-000000000000"] * 10_001, 10_000),
        ("containers", [{}] * 101, 100),
    ],
)
def test_lists_above_their_cap_are_400_naming_the_field(
    client, user_token, project_id, field, value, cap
):
    body = {"version": "1", "containers": [], field: value}
    r = client.post(
        f"/docker/projects/{project_id}/releases/", json=body, headers=user_token.headers
    )
    assert r.status_code == 400
    assert r.json == {field: [f"Ensure this field has no more than {cap} elements."]}


def test_duplicate_remove_containers_are_named_once(client, user_token, project_id):
    names = [f"c{i}" for i in range(1000)]
    body = {"version": "1", "containers": [], "remove_containers": names[:-2] + ["c7", "c9"]}
    r = client.post(
        f"/docker/projects/{project_id}/releases/", json=body, headers=user_token.headers
    )
    assert r.status_code == 400 and r.json == {"remove_containers": ["Duplicate items: c7, c9."]}


def test_master_sync_of_long_unit_ids_keeps_display_within_its_column(client, master_token):
    uid = "u" * 255
    r = client.post(
        "/master/devices/sync/", json={"unit_ids": [uid, uid]}, headers=master_token.headers
    )
    assert r.status_code == 200 and r.json["created"] == [uid]
