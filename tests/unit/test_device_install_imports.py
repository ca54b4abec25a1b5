"""What a device (and the master) loads never imports the API or its server stack, not even
lazily inside a function: a device has them not (``pip install berth`` without the ``api``
extra; tests/integration/test_device_install.py installs it for real)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEVICE_DIRS = ("berth", "_modules", "_states", "_engines", "_runners", "pillar")


def api_extra_imports() -> set[str]:
    """The import names of the `api` extra's packages (pyproject.toml), e.g. ``flask_sqlalchemy``."""
    with open(ROOT / "pyproject.toml", "rb") as fh:
        reqs = tomllib.load(fh)["project"]["optional-dependencies"]["api"]
    return {re.split(r"[\[<>=!~;]", r, maxsplit=1)[0].lower().replace("-", "_") for r in reqs}


# the API package itself and what its extra brings; but salt itself requires cryptography, so
# every device has it (tests/integration/test_device_install.py SALT_BRINGS) and berth/signing.py
# verifies image signatures with it there
API_ONLY = {"api", "pydantic_core", *api_extra_imports()} - {"cryptography"}


def imported_tops(source: str) -> set[str]:
    tops = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            tops |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops.add(node.module.split(".")[0])
    return tops


def api_only_imports(paths) -> dict[str, list[str]]:
    bad = {}
    for path in paths:
        found = sorted(imported_tops(path.read_text()) & API_ONLY)
        if found:
            bad[str(path.relative_to(ROOT))] = found
    return bad


def test_device_and_master_modules_import_nothing_of_the_api():
    assert {"flask", "flask_sqlalchemy", "sqlalchemy", "psycopg", "gunicorn"} <= API_ONLY
    paths = [p for d in DEVICE_DIRS for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(paths) > 20
    assert api_only_imports(paths) == {}


def test_the_check_sees_a_lazy_import():
    source = "def f():\n    from api.models import Device\n    import sqlalchemy.orm\n"
    assert imported_tops(source) & API_ONLY == {"api", "sqlalchemy"}
