"""The release pillar's shape is declared once (``berth.release.pillar``): the API writes it through
those types (mypy checks its dict literals) and the device reads only keys they declare (here:
mypy does not check ``TypedDict.get``, so every key the reader names is checked against them)."""

from __future__ import annotations

import ast
from pathlib import Path

from berth.release.pillar import PillarContainer, ReleasePillar

ROOT = Path(__file__).resolve().parents[2]
# variable name in the reader -> the type it holds
READERS = {
    "berth/release/model.py": {"release": ReleasePillar, "raw": PillarContainer},
    "berth/release/images.py": {"container": PillarContainer},
}


def keys_read(path: Path, names: set[str]) -> set[tuple[str, str]]:
    """``(variable, key)`` for ``var.get("key")``, ``var["key"]`` and ``_require(var, "key", ...)``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in names
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.add((node.func.value.id, node.args[0].value))
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id in names
            and isinstance(node.slice, ast.Constant)
        ):
            found.add((node.value.id, node.slice.value))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "_require"
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id in names
            and isinstance(node.args[1], ast.Constant)
        ):
            found.add((node.args[0].id, node.args[1].value))
    return found


def test_the_device_reads_only_keys_the_pillar_declares():
    for rel, types in READERS.items():
        read = keys_read(ROOT / rel, set(types))
        assert read, rel  # the reader is still found
        unknown = {(var, key) for var, key in read if key not in types[var].__annotations__}
        assert unknown == set(), rel


def test_the_check_catches_an_undeclared_key(tmp_path):
    reader = tmp_path / "reader.py"
    reader.write_text('def f(release):\n    return release.get("bind_prefixs")\n')
    assert keys_read(reader, {"release"}) == {("release", "bind_prefixs")}
    assert "bind_prefixs" not in ReleasePillar.__annotations__
