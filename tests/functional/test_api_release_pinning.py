"""Digest pinning at release creation (docs/release.md "Digest pinning"), against the real
testbed registry (images pushed through its HTTP API) and a local token-auth registry."""

import secrets
import socket

import pytest

from berth import registryclient

pytestmark = pytest.mark.docker


@pytest.fixture
def pin(client, user_token, testbed, api_factory, account):
    headers = user_token.headers

    def registry(url, username=testbed.user, password=testbed.password):
        body = {"name": secrets.token_hex(4), "url": url, "username": username}
        body["password"] = password
        r = client.post("/docker/registries/", json=body, headers=headers)
        assert r.status_code == 201, r.json
        return r.json["id"]

    project = client.post("/docker/projects/", json={"name": "pin"}, headers=headers).json["id"]

    class Pin:
        url = f"/docker/projects/{project}/releases/"
        repo = "pin" + secrets.token_hex(3)
        device = api_factory.device(account)

        def __init__(self):
            self.headers = headers
            self.registry = registry(testbed.registry)

        def new_registry(self, *args, **kwargs):
            return registry(*args, **kwargs)

        def create(self, containers, expect=201, **extra):
            body = {
                "version": secrets.token_hex(4),
                "devices": [self.device.id],
                "containers": [
                    {"name": f"c{i}", "registry": self.registry, **c}
                    for i, c in enumerate(containers)
                ],
                **extra,
            }
            r = client.post(self.url, json=body, headers=headers)
            assert r.status_code == expect, r.json
            return r.json

    return Pin()


def test_the_tag_is_resolved_at_creation_stored_and_shown(client, pin, registry_push):
    digest, _ = registry_push.image(f"{pin.repo}/app", "2.0.0")
    body = pin.create([{"image": f"{pin.repo}/app", "tag": "2.0.0"}])
    assert body["containers"][0]["digest"] == digest
    # the tag moves: the release keeps what it was created with
    registry_push.image(f"{pin.repo}/app", "2.0.0")
    got = client.get(f"{pin.url}{body['id']}/", headers=pin.headers).json
    assert got["containers"][0]["digest"] == digest


def test_a_digest_in_the_body_wins_over_the_tag_and_is_not_resolved(pin, registry_push):
    registry_push.image(f"{pin.repo}/app", "1")
    given = "sha256:" + "ab" * 32
    body = pin.create(
        [
            {"image": f"{pin.repo}/app", "tag": "1", "digest": given},
            # a tag that does not exist is fine when the digest is given
            {"image": f"{pin.repo}/app", "tag": "never-pushed", "digest": given},
        ]
    )
    assert [c["digest"] for c in body["containers"]] == [given, given]


@pytest.mark.parametrize(
    "digest",
    ["sha256:" + "AB" * 32, "sha256:abc", "md5:" + "a" * 32, "sha256:" + "a" * 64 + "\n", 7],
)
def test_a_bad_digest_is_400_naming_the_field(pin, digest):
    body = pin.create([{"image": "app", "tag": "1", "digest": digest}], expect=400)
    assert list(body) == ["containers"]
    assert list(body["containers"][0]) == ["digest"]


def test_an_unknown_tag_is_400_naming_the_container(pin, registry_push):
    registry_push.image(f"{pin.repo}/app", "1")
    body = pin.create(
        [
            {"image": f"{pin.repo}/app", "tag": "1"},
            {"image": f"{pin.repo}/app", "tag": "2"},
        ],
        expect=400,
    )
    assert body["containers"][0] == {}
    (message,) = body["containers"][1]["tag"]
    assert f"{pin.repo}/app:2" in message and "unknown tag" in message
    assert '"pin_digests": false' in message


def test_registry_unreachable_and_auth_refused_are_400_naming_the_container(
    pin, registry_push, testbed
):
    registry_push.image(f"{pin.repo}/app", "1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    down = pin.new_registry(closed)
    wrong = pin.new_registry(testbed.registry, password="not-the-password")
    body = pin.create(
        [
            {"image": f"{pin.repo}/app", "tag": "1", "registry": down},
            {"image": f"{pin.repo}/app", "tag": "1", "registry": wrong},
            {"image": f"{pin.repo}/app", "tag": "1"},
        ],
        expect=400,
    )
    assert "registry unreachable" in body["containers"][0]["tag"][0]
    assert "auth refused" in body["containers"][1]["tag"][0]
    assert "not-the-password" not in str(body)
    assert body["containers"][2] == {}


def test_pin_digests_false_runs_by_tag_and_is_in_the_audit_log(client, pin):
    body = pin.create([{"image": "never/pushed", "tag": "1"}], pin_digests=False)
    assert body["containers"][0]["digest"] is None
    rows = client.get("/audit/?action=release.create", headers=pin.headers).json["results"]
    assert rows[0]["target"] == f"release:{body['id']}"
    assert rows[0]["details"]["pin_digests"] is False


def test_pinned_creation_is_audited_as_pinned(client, pin, registry_push):
    registry_push.image(f"{pin.repo}/app", "1")
    body = pin.create([{"image": f"{pin.repo}/app", "tag": "1"}])
    rows = client.get("/audit/?action=release.create", headers=pin.headers).json["results"]
    assert rows[0]["target"] == f"release:{body['id']}"
    assert rows[0]["details"]["pin_digests"] is True


@pytest.mark.parametrize(
    "index_type,child_type",
    [
        (registryclient.OCI_INDEX, registryclient.OCI_MANIFEST),
        (registryclient.DOCKER_LIST, registryclient.DOCKER_MANIFEST),
    ],
)
def test_a_multi_arch_image_pins_the_digest_of_its_index(
    pin, registry_push, index_type, child_type
):
    repo = f"{pin.repo}/multi"
    children = []
    for arch in ("amd64", "arm64"):
        digest, size = registry_push.image(repo, None, arch=arch, media_type=child_type)
        children.append((digest, size, child_type, arch))
    index = registry_push.index(repo, "3.0", children, media_type=index_type)
    body = pin.create([{"image": repo, "tag": "3.0"}])
    assert body["containers"][0]["digest"] == index
    assert index not in {c[0] for c in children}


def test_bearer_token_registry_and_each_distinct_image_resolved_once(pin, token_registry):
    reg = pin.new_registry(
        token_registry.url, username=token_registry.user, password=token_registry.password
    )
    one = token_registry.add("team/app", "1")
    two = token_registry.add("team/db", "1")
    body = pin.create(
        [
            {"image": "team/app", "tag": "1", "registry": reg},
            {"image": "team/app", "tag": "1", "registry": reg},
            {"image": "team/db", "tag": "1", "registry": reg},
        ]
    )
    assert [c["digest"] for c in body["containers"]] == [one, one, two]
    # each image once: a challenge, then the request with the token
    assert sorted(token_registry.manifest_requests) == ["team/app:1"] * 2 + ["team/db:1"] * 2
    assert len(token_registry.token_requests) == 2


def test_a_put_without_digests_keeps_them_and_another_digest_is_409(client, pin, registry_push):
    registry_push.image(f"{pin.repo}/app", "1")
    body = pin.create([{"image": f"{pin.repo}/app", "tag": "1"}])
    url = f"{pin.url}{body['id']}/"
    replay = {k: body[k] for k in ("version", "devices", "containers", "remove_containers")}
    assert client.put(url, json=replay, headers=pin.headers).status_code == 200
    without = [{k: v for k, v in c.items() if k != "digest"} for c in body["containers"]]
    r = client.put(url, json={**replay, "containers": without}, headers=pin.headers)
    assert r.status_code == 200, r.json
    assert r.json["containers"][0]["digest"] == body["containers"][0]["digest"]
    other = [{**c, "digest": "sha256:" + "cd" * 32} for c in body["containers"]]
    r = client.put(url, json={**replay, "containers": other}, headers=pin.headers)
    assert r.status_code == 409


def test_the_pillar_carries_the_digest(client, pin, registry_push, master_token):
    digest, _ = registry_push.image(f"{pin.repo}/app", "1")
    body = pin.create([{"image": f"{pin.repo}/app", "tag": "1"}])
    resp = client.get(f"/master/minions/{pin.device.unit_id}/pillar/", headers=master_token.headers)
    assert resp.status_code == 200, resp.json
    assert resp.json["release"]["id"] == body["id"]
    assert resp.json["release"]["containers"][0]["digest"] == digest
