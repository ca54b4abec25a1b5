import pytest

from berth.startup_params import StartupParameterError, to_create_kwargs, validate

SEED = {
    "environment": "REQUESTS_CA_BUNDLE='/usr/local/share/ca-certificates/AdamCA.crt'",
    "binds": ["/home/balenaEngine/data:/opt/RavenDB/Server/RavenData"],
    "network_mode": "host",
    "restart_policy": "always",
    "privileged": True,
}


def test_seed_parameters_convert_to_docker_sdk_kwargs():
    kwargs = to_create_kwargs(SEED)
    assert kwargs == {
        "environment": {"REQUESTS_CA_BUNDLE": "/usr/local/share/ca-certificates/AdamCA.crt"},
        "volumes": ["/home/balenaEngine/data:/opt/RavenDB/Server/RavenData:rw"],
        "network_mode": "host",
        "restart_policy": {"Name": "always"},
        "privileged": True,
    }


@pytest.mark.parametrize(
    "env",
    [
        "A='x y' B=z",
        ["A=x y", "B=z"],
        {"A": "x y", "B": "z"},
    ],
)
def test_environment_accepts_string_list_and_map(env):
    assert to_create_kwargs({"environment": env})["environment"] == {"A": "x y", "B": "z"}


@pytest.mark.parametrize(
    "policy,expected",
    [
        ("no", {"Name": ""}),
        ("unless-stopped", {"Name": "unless-stopped"}),
        ("on-failure", {"Name": "on-failure", "MaximumRetryCount": 0}),
        ("on-failure:5", {"Name": "on-failure", "MaximumRetryCount": 5}),
    ],
)
def test_restart_policies(policy, expected):
    assert to_create_kwargs({"restart_policy": policy})["restart_policy"] == expected


def test_all_other_keys():
    kwargs = to_create_kwargs(
        {
            "volumes": {"cache": "/var/cache/app"},
            "ports": {"80": 8080, "53/udp": "127.0.0.1:5353"},
            "command": "sh -c 'echo hi'",
            "entrypoint": ["/bin/sh"],
            "labels": {"team": "edge"},
            "devices": ["/dev/ttyUSB0:/dev/ttyUSB0:rwm"],
            "cap_add": ["NET_ADMIN"],
            "mem_limit": "512m",
            "user": "1000:1000",
            "working_dir": "/app",
            "log_config": {"type": "json-file", "config": {"max-size": "10m"}},
        }
    )
    assert kwargs["volumes"] == ["cache:/var/cache/app:rw"]
    assert kwargs["ports"] == {"80/tcp": 8080, "53/udp": ("127.0.0.1", 5353)}
    assert kwargs["command"] == ["sh", "-c", "echo hi"]
    assert kwargs["mem_limit"] == "512m"
    assert kwargs["log_config"] == {"type": "json-file", "config": {"max-size": "10m"}}


@pytest.mark.parametrize(
    "params,field",
    [
        ({"hostname": "x"}, "hostname"),
        ({"environment": "A='unterminated"}, "environment"),
        ({"environment": "1A=x"}, "environment"),
        ({"environment": 5}, "environment"),
        ({"binds": ["relative:/x"]}, "binds"),
        ({"binds": ["/a:b"]}, "binds"),
        ({"binds": "/a:/b"}, "binds"),
        ({"volumes": ["/abs:/x"]}, "volumes"),
        ({"ports": {"http": 80}}, "ports"),
        ({"ports": {"80": 70000}}, "ports"),
        ({"ports": {"80": "$(id):8080"}}, "ports"),
        ({"ports": ["$(id):8080:80"]}, "ports"),
        ({"ports": {"80": "\u0661\u0662"}}, "ports"),
        ({"ports": {"80\n": 80}}, "ports"),
        ({"network_mode": "host\n"}, "network_mode"),
        ({"mem_limit": "\u0661m"}, "mem_limit"),
        ({"network_mode": "host net"}, "network_mode"),
        ({"restart_policy": "sometimes"}, "restart_policy"),
        ({"privileged": "yes"}, "privileged"),
        ({"command": []}, "command"),
        ({"labels": {"io.berth.release": "1"}}, "labels"),
        ({"devices": ["ttyUSB0"]}, "devices"),
        ({"cap_add": ["net admin"]}, "cap_add"),
        ({"mem_limit": "lots"}, "mem_limit"),
        ({"user": "a b"}, "user"),
        ({"working_dir": "app"}, "working_dir"),
        ({"log_config": {"driver": "json-file"}}, "log_config"),
    ],
)
def test_bad_values_are_reported_by_field(params, field):
    errors = validate(params)
    assert list(errors) == [field]
    assert errors[field][0]
    with pytest.raises(StartupParameterError) as exc:
        to_create_kwargs(params)
    assert exc.value.errors == errors


@pytest.mark.parametrize(
    "ports, expected",
    [
        ({"80": "127.0.0.1:8080"}, {"80/tcp": ("127.0.0.1", 8080)}),
        (["[::1]:8080:80/udp"], {"80/udp": ("[::1]", 8080)}),
    ],
)
def test_host_ip_must_be_an_address(ports, expected):
    assert to_create_kwargs({"ports": ports})["ports"] == expected


def test_not_a_map():
    assert validate(["a"]) == {"non_field_errors": ["Expected a map of startup parameters."]}
    assert validate(None) == {}


def test_integral_floats_count_as_integers():
    """JSON Schema's integer includes 80.0; what the document calls an integer is accepted."""
    from berth import startup_params

    assert (
        startup_params.validate({"user": 1000.0, "mem_limit": 1024.0, "ports": {"80": 8080.0}})
        == {}
    )
    kwargs = startup_params.to_create_kwargs({"user": 1000.0, "mem_limit": 1024.0})
    assert kwargs["user"] == "1000" and kwargs["mem_limit"] == 1024
    assert "user" in startup_params.validate({"user": 1.5})
