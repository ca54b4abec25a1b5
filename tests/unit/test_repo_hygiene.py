"""Product code cites no document outside the repository and carries no pylint pragmas
(the project lints with ruff; a ruff noqa must name an enabled rule: RUF100)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("api", "berth", "_modules", "_states", "_runners", "_engines", "pillar")
SUFFIXES = {".py", ".sls", ".conf", ".html", ".js"}
CITATION = re.compile(r"\bSPEC\s*§")


def _files():
    for top in (*PRODUCT, "salt", "conf"):
        for path in sorted((ROOT / top).rglob("*")):
            rel = path.relative_to(ROOT)
            if path.is_file() and path.suffix in SUFFIXES and "static/swagger-ui" not in str(rel):
                yield rel


def test_no_citations_of_a_document_outside_the_repository():
    citing = [
        str(rel) for rel in _files() if CITATION.search((ROOT / rel).read_text(errors="replace"))
    ]
    assert citing == [], "cite docs/*.md instead of SPEC §n"


def test_no_pylint_pragmas():
    pragmas = [
        f"{rel}:{n}"
        for rel in _files()
        for n, line in enumerate((ROOT / rel).read_text(errors="replace").splitlines(), 1)
        if "pylint:" in line
    ]
    assert pragmas == []
