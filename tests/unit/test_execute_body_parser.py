"""One execute-body parser (``berth.execargs``) for the cloud API and the device's local API: the
same body gets the same DRF-style 400 ``{field: [message]}`` from both, and the same parse."""

from __future__ import annotations

import json

import pytest

from api.errors import ValidationError
from api.execute.command import parse_raw, parse_structured
from berth import execargs, localapi

ALIAS_BOMB = "x=[&a [1,2], *a, *a]"

BAD_BODIES = [
    ({}, "command", "This field is required."),
    ({"command": None}, "command", "This field may not be null."),
    ({"command": 5}, "command", "Not a valid string."),
    ({"command": "   "}, "command", "This field may not be blank."),
    (
        {"command": "x." + "a" * 255},
        "command",
        "Ensure this field has no more than 255 characters.",
    ),
    (
        {"command": "rm -rf /"},
        "command",
        '"rm -rf /" is not a Salt function: expected "module.function", e.g. "docker.logs".',
    ),
    ({"command": "a.b.c"}, "command", '"a.b.c" is not a Salt function'),
    ({"command": "test.echo", "arg": "a"}, "arg", 'but got type "str"'),
    ({"command": "test.echo", "arg": [{"__kwarg__": True}]}, "arg", 'not as {"__kwarg__": true}'),
    ({"command": "test.echo", "arg": [ALIAS_BOMB]}, "arg", "anchors and aliases"),
    (
        {"command": "test.echo", "arg": ["x"] * (execargs.MAX_ARG_NODES + 1)},
        "arg",
        f"more than {execargs.MAX_ARG_NODES} values",
    ),
    ({"command": "test.echo", "kwarg": [1]}, "kwarg", 'but got type "list"'),
    (
        {"command": "test.echo", "kwarg": {"__pub_fun": 1, "ok": 2, "not a name": 3}},
        "kwarg",
        "Not valid keyword argument names: __pub_fun, not a name.",
    ),
]

BAD_RAW = [
    ({}, "command", "This field is required."),
    ({"command": ["docker.logs"]}, "command", "Not a valid string."),
    ({"command": ""}, "command", "This field may not be blank."),
    (
        {"command": "x" * (execargs.MAX_COMMAND_LINE + 1)},
        "command",
        f"no more than {execargs.MAX_COMMAND_LINE} characters",
    ),
    ({"command": "docker.logs 'unclosed"}, "command", "Cannot parse the command line"),
    ({"command": "rm -rf /"}, "command", '"rm" is not a Salt function'),
    ({"command": "test.echo __pub_fun=1"}, "command", "Not valid keyword argument names"),
    ({"command": f"test.echo '{ALIAS_BOMB}'"}, "command", "anchors and aliases"),
]


def _local(parse, body):
    with pytest.raises(localapi.BadRequest) as exc:
        parse(json.dumps(body).encode())
    return exc.value.errors


def _cloud(parse, body):
    with pytest.raises(ValidationError) as exc:
        parse(body)
    return exc.value.errors


@pytest.mark.parametrize(
    "local_parse, cloud_parse, body, field, message",
    [(localapi.parse_body, parse_structured, *case) for case in BAD_BODIES]
    + [(localapi.parse_raw_body, parse_raw, *case) for case in BAD_RAW],
)
def test_bad_bodies_get_the_same_400_from_both_apis(local_parse, cloud_parse, body, field, message):
    local = _local(local_parse, body)
    assert list(local) == [field]
    assert local == _cloud(cloud_parse, body)
    assert message in local[field][0]


def test_every_bad_field_is_named_at_once():
    body = {"command": "nope", "arg": "a", "kwarg": []}
    assert set(_local(localapi.parse_body, body)) == {"command", "arg", "kwarg"}
    assert _local(localapi.parse_body, body) == _cloud(parse_structured, body)


@pytest.mark.parametrize(
    "body",
    [
        {"command": "docker.logs"},
        {"command": " docker.logs ", "arg": None, "kwarg": None},
        {"command": "docker.logs", "arg": ["curveball", "tail=7"], "kwarg": {"_": 1, "tail": 3}},
    ],
)
def test_good_bodies_parse_the_same(body):
    cmd = parse_structured(body)
    assert localapi.parse_body(json.dumps(body).encode()) == (cmd.fun, cmd.arg, cmd.kwarg)


def test_good_command_lines_parse_the_same():
    body = {"command": "docker.logs curveball tail=10 'two words'"}
    cmd = parse_raw(body)
    assert localapi.parse_raw_body(json.dumps(body).encode()) == (cmd.fun, cmd.arg, cmd.kwarg)
    assert cmd.fun == "docker.logs" and cmd.kwarg == {"tail": 10}
