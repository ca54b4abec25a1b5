"""docs/architecture.md "Where to change what" points at code that exists.

Every row's "change" column names at least one file that exists and at least one function (or
class, or constant) defined in one of the files it names; every file it names exists (a
``<placeholder>`` path must match at least one file); every ``name()`` it calls and every dotted
``api.x.y`` / ``berth.x.y`` name is defined where it says.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
CODE = re.compile(r"`([^`]+)`")
PATH = re.compile(r"^[\w./<>-]+\.py$")
IDENT = re.compile(r"^@?([A-Za-z_][A-Za-z0-9_]*)(\(.*\))?$")
DOTTED = re.compile(r"^((?:api|berth)(?:\.[A-Za-z_]\w*)+)(\(.*\))?$")


def table_rows() -> list[tuple[str, str]]:
    lines = DOC.read_text().splitlines()
    start = lines.index("## Where to change what")
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        if not line.startswith("|") or line.startswith("|---") or line.startswith("| to add"):
            continue
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows.append((cells[0], cells[1]))
    return rows


@cache
def defined(path: Path) -> frozenset[str]:
    """Functions, classes, assigned names and module-level imports (re-exports) of a module."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom) and node.col_offset == 0:  # a re-export
            names.update(alias.asname or alias.name for alias in node.names)
    return frozenset(names)


def files_of(token: str) -> list[Path]:
    if "<" in token:
        pattern = re.sub(r"<[^>]+>", "*", token)
        return sorted(ROOT.glob(pattern))
    path = ROOT / token
    return [path] if path.is_file() else []


def resolve_dotted(name: str) -> bool:
    """``api.releases.service.validate_release``: a module and a name defined in it."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:cut])
        for module in (base.with_suffix(".py"), base / "__init__.py"):
            if module.is_file():
                rest = parts[cut:]
                return not rest or rest[0] in defined(module)
    return False


ROWS = table_rows()


def test_the_table_is_found():
    assert len(ROWS) >= 10


@pytest.mark.parametrize(("what", "change"), ROWS, ids=[r[0][:40] for r in ROWS])
def test_row_names_files_and_functions_that_exist(what, change):
    tokens = CODE.findall(change)
    paths = [t for t in tokens if PATH.match(t)]
    assert paths, f"{what!r}: names no file"
    files: list[Path] = []
    for token in paths:
        found = files_of(token)
        assert found, f"{what!r}: {token} does not exist"
        files += found
    known = set().union(*(defined(f) for f in files))
    named = []
    for token in tokens:
        if PATH.match(token):
            continue
        if m := DOTTED.match(token):
            assert resolve_dotted(m[1]), f"{what!r}: {m[1]} is not defined"
            named.append(m[1])
        elif (m := IDENT.match(token)) and m[2] is not None:
            # a call, `name()` or `name(arg)`: defined in one of the row's files
            assert m[1] in known, f"{what!r}: {m[1]}() is not defined in {paths}"
            named.append(m[1])
        elif (m := IDENT.match(token)) and m[1] in known:
            named.append(m[1])
    assert named, f"{what!r}: names no function, class or constant of {paths}"
