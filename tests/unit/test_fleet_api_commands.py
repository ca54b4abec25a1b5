"""Execute request parsing: structured and raw command lines, callbacks, clear 400s."""

import pytest

from api.errors import ValidationError
from api.execute.command import parse_raw, parse_structured


def test_structured_defaults():
    cmd = parse_structured({"command": "docker.logs", "arg": ["curveball"]})
    assert (cmd.fun, cmd.arg, cmd.kwarg, cmd.callback_url, cmd.timeout) == (
        "docker.logs",
        ["curveball"],
        {},
        None,
        120,
    )


def test_structured_all_fields():
    cmd = parse_structured(
        {
            "command": "test.arg",
            "arg": [1],
            "kwarg": {"tail": 5},
            "callback_url": "https://x.example/hook",
            "callback_timeout": 600,
        }
    )
    assert (cmd.kwarg, cmd.callback_url, cmd.timeout) == (
        {"tail": 5},
        "https://x.example/hook",
        600,
    )


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({}, "command", "This field is required."),
        ({"command": "rm -rf /"}, "command", 'expected "module.function"'),
        ({"command": "docker"}, "command", 'expected "module.function"'),
        ({"command": "test.ping", "arg": "x"}, "arg", "Expected a list"),
        ({"command": "test.ping", "kwarg": [1]}, "kwarg", "Expected an object"),
        (
            {"command": "test.ping", "arg": [{"__kwarg__": True, "x": 1}]},
            "arg",
            'not as {"__kwarg__": true}',
        ),
        (
            {"command": "test.ping", "kwarg": {"__pub_user": 1}},
            "kwarg",
            "Not valid keyword argument names",
        ),
        (
            {"command": "test.ping", "callback_url": "ftp://x"},
            "callback_url",
            "valid http or https URL",
        ),
        ({"command": "test.ping", "callback_timeout": 0}, "callback_timeout", "between 1 and 600"),
        (
            {"command": "test.ping", "callback_timeout": 601},
            "callback_timeout",
            "between 1 and 600",
        ),
        ({"command": "test.ping", "callback_timeout": "soon"}, "callback_timeout", "valid integer"),
    ],
)
def test_structured_errors_name_the_field(body, field, message):
    with pytest.raises(ValidationError) as exc:
        parse_structured(body)
    assert field in exc.value.errors
    assert message in " ".join(map(str, exc.value.errors[field]))


def test_raw_parses_like_the_salt_cli():
    cmd = parse_raw({"command": "docker.logs curveball tail=10 'two words'"})
    assert (cmd.fun, cmd.arg, cmd.kwarg) == (
        "docker.logs",
        ["curveball", "two words"],
        {"tail": 10},
    )


@pytest.mark.parametrize(
    "command, message",
    [
        ("", "may not be blank"),
        ("docker.logs 'unclosed", "Cannot parse"),
        ("logs curveball", "module.function"),
    ],
)
def test_raw_errors(command, message):
    with pytest.raises(ValidationError) as exc:
        parse_raw({"command": command})
    assert message in " ".join(exc.value.errors["command"])
