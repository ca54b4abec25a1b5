"""No import cycle between the packages of ``api/`` and ``berth/``.

A static import graph (ast, so imports inside functions count too): a node is a top-level module
or package of ``api`` or ``berth`` (``api.outbox``, ``api.rollouts``, ``berth.release``, ...;
``api`` itself is ``api/__init__.py``, the app factory). An edge A -> B is any import in A's files
of a module in B. Every strongly connected group of more than one node is a cycle; the ones that
exist today are listed in ``KNOWN`` with the reason, and no other may appear -- nor may a known
one grow. When a known cycle is broken, its entry goes (the last test fails on a stale entry).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOPS = ("api", "berth")
SKIPPED = (Path("api/migrations"),)

# cycles that exist today: {nodes}: why. Breaking them is issue 19 item 2 (one shape for api/);
# until then none may grow and no other may appear.
KNOWN: dict[frozenset[str], str] = {
    frozenset(
        {
            "api.accounts",
            "api.audit",
            "api.auth",
            "api.cli",
            "api.deployments",
            "api.devices",
            "api.execute",
            "api.policies",
            "api.registries",
            "api.releases",
            "api.rollouts",
            "api.security",
            "api.signing_keys",
            "api.tokens",
        }
    ): "the feature packages call each other both ways: their views need api.auth, api.audit "
    "and api.security, which read the accounts' and devices' tables; deployments, releases, "
    "devices and rollouts read each other's tables and services",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for top in TOPS:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if any(rel.is_relative_to(s) for s in SKIPPED):
                continue
            found[_module_name(path)] = path
    return found


def _node(module: str) -> str:
    """``api.rollouts.service`` -> ``api.rollouts``; ``api`` -> ``api``."""
    return ".".join(module.split(".")[:2])


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                found.add(candidate if candidate in modules else source)
    return {m for m in found if m.split(".")[0] in TOPS}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(_node(name), set())
        for target in _imports(name, path, modules):
            if _node(target) != _node(name):
                edges.add(_node(target))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected groups of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(frozenset(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_the_graph_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text("def f():\n    from api.rollouts import service\n")
    assert _imports("api.x.mod", source, _modules()) == {"api.rollouts.service"}
    assert "berth.contract" in import_graph()["berth.release"]


def test_no_new_import_cycle_between_packages():
    new = [
        sorted(group)
        for group in cycles(import_graph())
        if not any(group <= known for known in KNOWN)
    ]
    assert not new, f"import cycles between packages: {new}"


def test_every_known_cycle_still_exists():
    found = cycles(import_graph())
    stale = [sorted(k) for k in KNOWN if not any(k <= group for group in found)]
    assert not stale, f"broken cycles still listed in KNOWN (remove them): {stale}"


def test_the_outbox_imports_no_feature():
    # features build their messages on api.outbox and the worker registers itself (issue 19)
    assert import_graph()["api.outbox"] <= {"api.extensions", "api.types"}


def test_the_worker_imports_no_feature():
    # features register their jobs through api.worker_jobs from their init_app (issue 19 item 2);
    # api.audit only for the command's @not_audited declaration
    worker = import_graph()["api.worker"]
    assert worker <= {
        "api.audit",
        "api.extensions",
        "api.outbox",
        "api.salt_client",
        "api.types",
        "api.worker_jobs",
    }
    assert import_graph()["api.worker_jobs"] <= {"api.outbox", "api.salt_client"}


# Imports of api inside a function (issue 19 item 2): only where a package's views and commands
# are registered (``create_app``, a package's ``init_app``: importing a package for its models
# does not import its views), and these, each with its reason. A new one fails here: import at
# the top of the module, or move the code so no module cycle needs it.
LAZY: dict[tuple[str, str], str] = {
    ("api/deployments/targets.py", "add_targets"): "api.rollouts.service imports the targets' "
    "states from api.deployments.targets; a new rollout is evaluated through it",
    ("api/policies/release.py", "refusal"): "api.releases.schemas checks a body with this "
    "module's rules; a stored release is checked through api.releases.serializers",
}
REGISTRATION = {"create_app", "init_app"}


def in_function_imports() -> set[tuple[str, str]]:
    found = set()
    for path in sorted((ROOT / "api").rglob("*.py")):
        rel = path.relative_to(ROOT)
        if any(rel.is_relative_to(s) for s in SKIPPED):
            continue
        tree = ast.parse(path.read_text(), str(path))
        outer = []
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                outer.append((node.name, node))
            elif isinstance(node, ast.ClassDef):
                outer += [
                    (f"{node.name}.{f.name}", f)
                    for f in node.body
                    if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                ]
        for name, func in outer:
            if name in REGISTRATION:
                continue
            for node in ast.walk(func):
                api = (
                    isinstance(node, ast.ImportFrom)
                    and (node.level or (node.module or "").split(".")[0] == "api")
                ) or (
                    isinstance(node, ast.Import)
                    and any(a.name.split(".")[0] == "api" for a in node.names)
                )
                if api:
                    found.add((rel.as_posix(), name))
    return found


def test_imports_inside_functions_are_the_listed_ones():
    assert in_function_imports() == set(LAZY)
