"""Docker naming rules used by the release API (pure functions, no database)."""

import pytest

from api.fields import FieldError, container_name, docker_image, docker_tag, list_of, string


@pytest.mark.parametrize(
    "image",
    [
        "ubuntu",
        "library/ubuntu",
        "curveball",
        "localhost:5000/team/app",
        "registry.example.com/a/b/c",
        "[::1]:5000/app",
        "a.b_c__d-e--f",
        "127.0.0.1:5000/busybox",
    ],
)
def test_valid_images(image):
    assert docker_image(image) == image


@pytest.mark.parametrize(
    "image",
    [
        "Ubuntu",
        "app:latest",
        "app@sha256:" + "a" * 64,
        "/app",
        "app/",
        "a..b",
        "a___b",
        "-app",
        "a//b",
        "",
        " ",
        "x" * 256,
    ],
)
def test_invalid_images(image):
    with pytest.raises(FieldError):
        docker_image(image)


@pytest.mark.parametrize("tag", ["latest", "v1.0.0", "_x", "delta-base-r0.0.0.1", "A" * 128, "1"])
def test_valid_tags(tag):
    assert docker_tag(tag) == tag


@pytest.mark.parametrize("tag", ["-x", ".x", "A" * 129, "a b", "a:b", "", "a/b", 5, None])
def test_invalid_tags(tag):
    with pytest.raises(FieldError):
        docker_tag(tag)


@pytest.mark.parametrize("name", ["curveball", "ravendb", "ab", "a_b.c-d", "A1"])
def test_valid_container_names(name):
    assert container_name(name) == name


@pytest.mark.parametrize("name", ["a", "_ab", ".ab", "-ab", "a b", "a/b", "a:b", "é-name", ""])
def test_invalid_container_names(name):
    with pytest.raises(FieldError):
        container_name(name)


def test_list_errors_are_per_index():
    with pytest.raises(FieldError) as exc:
        list_of(docker_tag)(["ok", "-bad", "fine", ".bad"])
    assert set(exc.value.detail) == {"1", "3"}


def test_string_rules():
    assert string(max_length=6)("  ab  ") == "ab"
    # maxLength is the length as sent (what OpenAPI's maxLength says), whitespace included
    for bad in ("", "   ", "toolong", "a\x00", 3, "  ab  "):
        with pytest.raises(FieldError):
            string(max_length=5)(bad)
    assert string(max_length=5, allow_blank=True)("") == ""


def test_unique_list_of_100000_names():
    """The duplicate check is a set (bench/validation_bench.py times it; list.count took minutes)."""
    check = list_of(container_name, unique=True)
    names = [f"c{i:06d}" for i in range(100_000)]
    assert check(names) == names
    with pytest.raises(FieldError) as exc:
        check(names + ["c000007", "c000003", "c000007"])
    assert exc.value.detail == ["Duplicate items: c000003, c000007."]


@pytest.mark.parametrize(
    "check, value",
    [
        (docker_tag, "v1\n"),
        (docker_tag, "\u00e9t\u00e9"),
        (container_name, "app\nx"),
        (docker_image, "app\nx"),
    ],
)
def test_trailing_newlines_and_non_ascii_are_refused(check, value):
    with pytest.raises(FieldError):
        check(value)


def test_capped_list_refuses_before_validating_items():
    check = list_of(container_name, max_items=2)
    with pytest.raises(FieldError) as exc:
        check([None, None, None])
    assert exc.value.detail == ["Ensure this field has no more than 2 elements."]


def test_json_value_rules():
    from api.fields import json_value

    assert json_value({"a": [1, "x", None, 1.5, {"b": True}]}) == {
        "a": [1, "x", None, 1.5, {"b": True}]
    }
    for bad in ([[[[1]]]], {"k\x00": 1}, ["\ud800"], [float("nan")], [2**64]):
        with pytest.raises(FieldError):
            json_value(bad, max_depth=3)
    deep = []
    node = deep
    for _ in range(100_000):  # iterative: no RecursionError
        node.append([])
        node = node[0]
    with pytest.raises(FieldError):
        json_value(deep)


def test_iso_datetime_reads_every_rfc3339_date_time():
    from datetime import UTC, datetime

    from api.fields import iso_datetime

    assert iso_datetime("2026-01-02t03:04:05z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert iso_datetime("2016-12-31T23:59:60Z") == datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert iso_datetime("2026-01-02T03:04:05+02:00") == datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)
    assert iso_datetime("0001-01-01T00:00:00+01:00") == datetime.min.replace(tzinfo=UTC)
    for bad in ("yesterday", "2026-13-01T00:00:00Z", 5):
        with pytest.raises(FieldError):
            iso_datetime(bad)


def test_space_is_what_python_strips():
    import re
    import sys

    from api.fields import SPACE

    space = re.compile(f"[{SPACE}]")
    assert all(bool(space.fullmatch(chr(i))) == chr(i).isspace() for i in range(sys.maxunicode + 1))
