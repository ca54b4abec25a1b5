"""Docker naming rules used by the release API (pure functions, no database)."""

import pytest

from api.validation import FieldError, container_name, docker_image, docker_tag, list_of, string


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
    assert string(max_length=5)("  ab  ") == "ab"
    for bad in ("", "   ", "toolong", "a\x00", 3):
        with pytest.raises(FieldError):
            string(max_length=5)(bad)
    assert string(max_length=5, allow_blank=True)("") == ""
