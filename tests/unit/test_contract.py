"""berth/contract.py is the one place the shared contract words are spelled.

Walks the product code (not tests, docs or frozen migrations) and fails on a string
literal that is a deployment state, a report or release outcome, an execute job state, a
login outcome or a container label, or that contains an event tag. Docstrings may
mention them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from berth import contract

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_DIRS = (
    "api",
    "berth",
    "_modules",
    "_states",
    "_runners",
    "_engines",
    "pillar",
)
SKIPPED = {
    # the contract itself
    Path("berth/contract.py"),
}
SKIPPED_DIRS = (
    # migrations are history: they must keep the words as they were when written
    Path("api/migrations/versions"),
)
# Files that may still spell the words, and why.
TOLERATED = {
    # run by path as a standalone script with the standard library only; its words are
    # a human-readable summary line, not a contract
    Path("berth/sleephook.py"),
}

EXACT = {
    *(s.value for s in contract.DeploymentState),
    *(s.value for s in contract.ReportOutcome),
    *(s.value for s in contract.ReleaseOutcome),
    *(s.value for s in contract.ExecuteJobState),
    *(s.value for s in contract.LoginOutcome),
    *(s.value for s in contract.Label),
    *(s.value for s in contract.DerivedDeploymentState),
    *(s.value for s in contract.RolloutAction),
    *(s.value for s in contract.RolloutEvent),
}
CONTAINED = (*(t.value for t in contract.EventTag), contract.RESERVED_LABEL_PREFIX)


def _product_files():
    for top in PRODUCT_DIRS:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if rel in SKIPPED or any(d in rel.parents for d in SKIPPED_DIRS):
                continue
            yield rel


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def spelled_words(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse((ROOT / path).read_text(), str(path))
    docstrings = _docstring_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        if id(node) in docstrings:
            continue
        if node.value in EXACT or any(tag in node.value for tag in CONTAINED):
            found.append((node.lineno, node.value))
    return found


def test_product_code_is_walked():
    files = set(_product_files())
    assert Path("api/deployments/reports.py") in files
    assert Path("berth/master/config.py") in files
    assert Path("api/migrations/versions/0001_core.py") not in files
    assert len(files) > 50


def test_contract_words_are_spelled_only_in_the_contract_module():
    offenders = {
        str(path): words
        for path in _product_files()
        if path not in TOLERATED and (words := spelled_words(path))
    }
    assert offenders == {}, f"spell these with berth.contract: {offenders}"


@pytest.mark.parametrize("path", sorted(TOLERATED))
def test_tolerated_files_exist(path):
    assert (ROOT / path).exists(), f"{path} is gone: drop it from TOLERATED"


def test_words_compare_and_serialise_as_plain_strings():
    import json

    assert contract.DeploymentState.SUCCEEDED == "succeeded"
    assert json.dumps({"s": contract.DeploymentState.QUEUED}) == '{"s": "queued"}'
    assert f"{contract.EventTag.RELEASE_RESULT}" == "berth/release/result"
    assert contract.fully_qualified_name("curveball", 7) == "deployment-curveball-7"
    assert contract.LoginOutcome.succeeded("already logged in")
    assert not contract.LoginOutcome.succeeded("login to registry x failed: denied")
