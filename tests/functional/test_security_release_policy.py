"""Release policy at the API (docs/security.md): each dangerous field below was accepted (201)
and made every listed device the attacker's; now it is a 400 naming the field, while the seed's
release body is still accepted verbatim."""

import copy
import json

import pytest

pytestmark = pytest.mark.db

SEED_CONTAINERS = [
    {
        "name": "curveball",
        "image": "curveball",
        "tag": "delta-base-r0.0.0.1",
        "required_tags": ["base"],
        "startup_parameters": {
            "environment": "REQUESTS_CA_BUNDLE='/usr/local/share/ca-certificates/AdamCA.crt'",
            "binds": ["/home/balenaEngine/data:/opt/RavenDB/Server/RavenData"],
            "network_mode": "host",
            "restart_policy": "always",
            "privileged": True,
        },
        "purge_data": False,
        "registry": None,
        "fully_qualified_name": "deployment-curveball-1",
    },
    {
        "name": "ravendb",
        "image": "ravendb",
        "tag": "base",
        "required_tags": [],
        "startup_parameters": {
            "environment": "RAVEN_ARGS='--config-path /opt/RavenDB/Server/RavenData/settings.json'",
            "binds": ["/home/balenaEngine/data:/opt/RavenDB/Server/RavenData"],
            "network_mode": "host",
            "restart_policy": "always",
            "privileged": True,
        },
        "purge_data": False,
        "registry": None,
        "fully_qualified_name": "deployment-ravendb-1",
    },
]


@pytest.fixture
def create(client, user_token, device):
    project = client.post("/docker/projects/", json={"name": "p"}, headers=user_token.headers).json[
        "id"
    ]
    n = iter(range(1000))

    def create(containers=None, remove=(), **params):
        containers = copy.deepcopy(containers or [SEED_CONTAINERS[0]])
        containers[0]["startup_parameters"].update(params.pop("startup", {}))
        containers[0].update(params)
        body = {
            "version": f"v{next(n)}",
            "devices": [device.id],
            "containers": containers,
            "remove_containers": list(remove),
        }
        return client.post(
            f"/docker/projects/{project}/releases/", json=body, headers=user_token.headers
        )

    return create


def cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_the_seed_body_is_accepted_verbatim(create):
    resp = create(SEED_CONTAINERS, remove=["curveball", "ravendb"])
    assert resp.status_code == 201, resp.json


@pytest.mark.parametrize(
    "startup,field",
    [
        ({"binds": ["/:/host"]}, "binds"),
        ({"binds": ["/var/run/docker.sock:/var/run/docker.sock"]}, "binds"),
        ({"binds": ["/run/containerd:/c"]}, "binds"),
        ({"binds": ["/etc/salt:/salt"]}, "binds"),
        ({"binds": ["/home/x/../../etc:/x"]}, "binds"),
        ({"binds": ["/var:/var"]}, "binds"),
        ({"binds": ["/dev:/dev"]}, "binds"),
        ({"devices": ["/dev/mem"]}, "devices"),
        ({"devices": ["/dev/sda:/dev/xvda:rwm"]}, "devices"),
    ],
)
def test_sensitive_host_paths_are_400_naming_the_field(create, startup, field):
    resp = create(startup=startup)
    assert resp.status_code == 400, resp.json
    assert list(resp.json) == ["containers"]
    assert list(resp.json["containers"][0]["startup_parameters"]) == [field]


def test_purge_data_of_a_system_path_is_refused(create):
    resp = create(startup={"binds": ["/etc:/x"]}, purge_data=True)
    assert resp.status_code == 400
    errors = resp.json["containers"][0]
    assert "binds" in errors["startup_parameters"] and "purge_data" in errors
    assert create(purge_data=True).status_code == 201  # the seed's own data dir may be purged


def test_protected_containers_cannot_be_removed(create):
    resp = create(remove=["curveball", "salt-minion"])
    assert resp.status_code == 400
    assert resp.json == {
        "remove_containers": [
            '"salt-minion" is a protected container; a release may not remove it.'
        ]
    }


def test_switches_per_account(app, create, account):
    assert (
        create(startup={"cap_add": ["ALL"]}).status_code == 201
    )  # allowed by default (as privileged)
    assert create(startup={"devices": ["/dev/ttyUSB0"]}).status_code == 201
    out = cli(
        app,
        "accounts",
        "release-policy",
        account.name,
        "--no-privileged",
        "--no-cap-add",
        "--no-devices",
    )
    assert json.loads(out.split("release policy ", 1)[1])["privileged"] is False
    resp = create(startup={"cap_add": ["NET_ADMIN"], "devices": ["/dev/ttyUSB0"]})
    assert resp.status_code == 400
    assert set(resp.json["containers"][0]["startup_parameters"]) == {
        "privileged",
        "cap_add",
        "devices",
    }
    cli(app, "accounts", "release-policy", account.name, "--reset")
    assert create(SEED_CONTAINERS).status_code == 201


def test_an_allowed_host_path_may_be_bound_but_never_purged(
    app, create, account, client, user_token
):
    cli(app, "accounts", "release-policy", account.name, "--host-path", "/var/run/docker.sock")
    assert (
        create(startup={"binds": ["/var/run/docker.sock:/var/run/docker.sock"]}).status_code == 201
    )
    resp = create(startup={"binds": ["/var/run/docker.sock:/var/run/docker.sock"]}, purge_data=True)
    assert resp.status_code == 400 and list(resp.json["containers"][0]) == ["purge_data"]
    rows = client.get(
        "/audit/", headers=user_token.headers, query_string={"action": "policy.change"}
    ).json
    assert rows["results"][0]["details"]["after"]["host_paths"] == ["/var/run/docker.sock"]


@pytest.mark.parametrize(
    "network_mode",
    [
        "container:salt-minion",  # joins the minion's namespaces (its local API, its master link)
        "container:salt",
        "container:3f2a9c",  # Docker resolves an unknown name as a container-ID prefix
        "container:" + "ab" * 32,  # a full container ID is resolved before any name
    ],
)
def test_joining_a_protected_container_is_400_naming_network_mode(create, network_mode):
    resp = create(startup={"network_mode": network_mode})
    assert resp.status_code == 400, resp.json
    assert list(resp.json["containers"][0]["startup_parameters"]) == ["network_mode"]


def test_other_namespace_forms(app, create, account):
    assert create(startup={"network_mode": "container:vpn-sidecar"}).status_code == 201
    # pid_mode / ipc_mode are not startup parameters Berth accepts at all
    for key in ("pid_mode", "ipc_mode"):
        for value in ("host", "container:salt-minion"):
            resp = create(startup={key: value})
            assert resp.status_code == 400
            assert list(resp.json["containers"][0]["startup_parameters"]) == [key]
    cli(app, "accounts", "release-policy", account.name, "--protected-container", "vpn-*")
    resp = create(startup={"network_mode": "container:vpn-sidecar"})
    assert resp.status_code == 400 and "vpn-sidecar" in json.dumps(resp.json)
