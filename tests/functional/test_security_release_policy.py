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
            "pin_digests": False,  # images never pushed: run by tag (pinning: test_api_release_pinning.py)
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
    # a directory under a data root may be purged; the data root itself never (issue 17)
    under = {"binds": ["/home/balenaEngine/data/curveball:/opt/data"]}
    assert create(startup=under, purge_data=True).status_code == 201
    resp = create(purge_data=True)
    assert resp.status_code == 400 and list(resp.json["containers"][0]) == ["purge_data"]


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


# -- issue 17, finding 4: binds by allow-list -----------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "/run/dbus/system_bus_socket",  # the system D-Bus: systemd1.Manager starts units as root
        "/var/run/dbus/system_bus_socket",
        "/run/systemd/private",  # systemd's private socket
        "/run/systemd",
        "/var/spool/cron",  # the cron spool: a crontab runs as root
        "/var/spool/cron/crontabs",
        "/home",  # every user's ~/.ssh/authorized_keys, ~/.bashrc
        "/home/pi/.ssh",
        "/run/podman/podman.sock",  # other container runtimes' sockets
        "/run/crio/crio.sock",
        "/var/lib/containers",
        "/run/user/1000",  # a user's session bus and runtime dir
        "/run/user/0/bus",
        "/tmp",  # root's tmux/X11 sockets
        "/mnt",
        "/opt/app",
    ],
)
def test_binds_outside_the_data_roots_are_400_naming_the_field(create, source):
    resp = create(startup={"binds": [f"{source}:/host"]})
    assert resp.status_code == 400, resp.json
    assert list(resp.json) == ["containers"]
    assert list(resp.json["containers"][0]) == ["startup_parameters"]
    assert list(resp.json["containers"][0]["startup_parameters"]) == ["binds"]


def test_data_roots_and_named_volumes_need_no_policy(create):
    for source in ("/data", "/data/app", "/srv/data/x", "/home/balenaEngine/data/db"):
        assert create(startup={"binds": [f"{source}:/x"]}).status_code == 201, source
    assert create(startup={"volumes": ["app-data:/var/lib/app"]}).status_code == 201
    # a path that only starts with a data root's name is not under it
    assert create(startup={"binds": ["/database:/x"]}).status_code == 400


@pytest.mark.parametrize(
    "key, value",
    [
        ("volumes_from", ["salt-minion"]),
        ("mounts", [{"Type": "volume", "Source": "pki", "Target": "/x"}]),
        ("volume_driver", "local"),
        ("volume_opts", {"type": "none", "o": "bind", "device": "/etc"}),
        ("tmpfs", {"/x": ""}),
    ],
)
def test_no_startup_parameter_reaches_another_containers_mounts_or_a_volume_driver(
    create, key, value
):
    """Another container's mounts and a volume's driver or options are no startup parameters:
    what volume a release may mount is decided on the device (docs/security.md)."""
    resp = create(startup={key: value})
    assert resp.status_code == 400, resp.json
    assert list(resp.json["containers"][0]["startup_parameters"]) == [key]


def test_a_named_volume_is_a_name_never_a_host_path(create):
    for spec in ("/etc:/x", "../etc:/x", "type=bind,source=/etc:/x"):
        resp = create(startup={"volumes": [spec]})
        assert resp.status_code == 400, spec
        assert list(resp.json["containers"][0]["startup_parameters"]) == ["volumes"]


def _policy_rows(client, user_token):
    return client.get(
        "/audit/", headers=user_token.headers, query_string={"action": "policy.change"}
    ).json["results"]


def test_a_bind_prefix_opens_a_path_and_is_audited(
    app, create, account, client, user_token, master_token, device
):
    assert create(startup={"binds": ["/opt/app/data:/data"]}).status_code == 400
    out = cli(app, "accounts", "release-policy", account.name, "--bind-prefix", "/opt/app/")
    assert json.loads(out.split("release policy ", 1)[1])["bind_prefixes"] == ["/opt/app"]
    (row,) = _policy_rows(client, user_token)
    assert row["details"]["before"]["bind_prefixes"] == []
    assert row["details"]["after"]["bind_prefixes"] == ["/opt/app"]
    resp = create(startup={"binds": ["/opt/app/data:/data"]})
    assert resp.status_code == 201, resp.json
    assert create(startup={"binds": ["/opt/application:/data"]}).status_code == 400
    # the prefixes reach the device with the release (it checks the same)
    pillar = client.get(f"/master/minions/{device.unit_id}/pillar/", headers=master_token.headers)
    assert pillar.json["release"]["id"] == resp.json["id"]
    assert pillar.json["release"]["bind_prefixes"] == ["/opt/app"]

    cli(app, "accounts", "release-policy", account.name, "--no-bind-prefixes")
    assert _policy_rows(client, user_token)[0]["details"]["after"]["bind_prefixes"] == []
    assert create(startup={"binds": ["/opt/app/data:/data"]}).status_code == 400


def test_a_bind_prefix_never_opens_a_denied_path(app, create, account, client, user_token):
    for prefix in ("/run/dbus", "/var/spool/cron", "/etc", "/run/user/1000", "/", "relative"):
        result = app.test_cli_runner().invoke(
            args=["accounts", "release-policy", account.name, "--bind-prefix", prefix]
        )
        assert result.exit_code != 0 and "--bind-prefix" in result.output, prefix
    assert _policy_rows(client, user_token) == []  # nothing changed
    # a prefix above denied paths opens only what is not denied under it
    cli(app, "accounts", "release-policy", account.name, "--bind-prefix", "/run")
    assert create(startup={"binds": ["/run/myapp:/x"]}).status_code == 201
    for source in (
        "/run/dbus/system_bus_socket",
        "/run/systemd/private",
        "/run/user/1000",
        "/run/docker.sock",
        "/run/podman/podman.sock",
        "/run",
    ):
        resp = create(startup={"binds": [f"{source}:/x"]})
        assert resp.status_code == 400, source
        assert "sensitive host path" in resp.json["containers"][0]["startup_parameters"]["binds"][0]


# -- issue 17, finding 5: the release policy is checked again --------------------------------


def test_a_release_the_policy_now_refuses_gains_no_device_and_is_served_to_none(
    app, client, user_token, master_token, account, api_factory
):
    headers = user_token.headers
    project = client.post("/docker/projects/", json={"name": "p5"}, headers=headers).json["id"]
    a, b, c = (api_factory.device(account) for _ in range(3))

    def release(version, devices, privileged, **extra):
        container = copy.deepcopy(SEED_CONTAINERS[1])
        container["startup_parameters"]["privileged"] = privileged
        body = {"version": version, "devices": [d.id for d in devices], "containers": [container]}
        body["pin_digests"] = (
            False  # images never pushed: run by tag (pinning: test_api_release_pinning.py)
        )
        resp = client.post(
            f"/docker/projects/{project}/releases/", json={**body, **extra}, headers=headers
        )
        assert resp.status_code == 201, resp.json
        return resp.json

    def pillar(device):
        resp = client.get(f"/master/minions/{device.unit_id}/pillar/", headers=master_token.headers)
        assert resp.status_code == 200, resp.json
        return resp.json["release"]

    def deployments(rel, **query):
        resp = client.get(
            f"/docker/projects/{project}/releases/{rel['id']}/deployments/",
            headers=headers,
            query_string=query,
        )
        assert resp.status_code == 200, resp.json
        return {d["device"]: d for d in resp.json["results"]}

    earlier = release("0", [a], privileged=False)
    old = release("1", [a], privileged=True)  # allowed when it was made
    tagged = release("2", [], privileged=True, device_tags=["prod"])
    assert pillar(a)["id"] == old["id"]

    cli(app, "accounts", "release-policy", account.name, "--no-privileged")

    # it gains no device, by PATCH or PUT of its devices
    url = f"/docker/projects/{project}/releases/{old['id']}/"
    resp = client.patch(url, json={"devices": [a.id, b.id]}, headers=headers)
    assert resp.status_code == 400, resp.json
    assert list(resp.json) == ["devices"]
    assert "containers[0].startup_parameters.privileged" in resp.json["devices"][0]
    put = {k: old[k] for k in ("version", "containers", "remove_containers")}
    resp = client.put(url, json={**put, "devices": [a.id, b.id]}, headers=headers)
    assert resp.status_code == 400, resp.json
    assert list(resp.json["containers"][0]["startup_parameters"]) == ["privileged"]
    assert pillar(b) is None
    # losing devices stays possible
    resp = client.patch(
        f"/docker/projects/{project}/releases/{old['id']}/", json={"version": "1b"}, headers=headers
    )
    assert resp.status_code == 200, resp.json

    # the device it already listed keeps its previous release: the refused one is not served
    assert pillar(a)["id"] == earlier["id"]
    listed = deployments(old)
    assert listed[a.id]["status"] == "refused_by_policy"
    assert "privileged" in listed[a.id]["error"]
    assert deployments(old, status="refused_by_policy").keys() == {a.id}
    assert deployments(old, status="queued") == {}

    # a tag change that retargets a device to it: accepted, but the release is not served
    resp = client.patch(f"/devices/{c.id}/", json={"tags": ["prod"]}, headers=headers)
    assert resp.status_code == 200, resp.json
    assert pillar(c) is None
    assert deployments(tagged)[c.id]["status"] == "refused_by_policy"

    # switched on again, it is served again
    cli(app, "accounts", "release-policy", account.name, "--privileged")
    assert pillar(a)["id"] == old["id"] and pillar(c)["id"] == tagged["id"]
    assert deployments(old)[a.id]["status"] == "queued"
