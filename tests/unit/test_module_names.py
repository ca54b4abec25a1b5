"""A product module's name says its job: a name repeats across packages only for the same job
(docs/architecture.md "Module names"); any other repeated name fails here."""

from __future__ import annotations

import collections
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_DIRS = ("api", "berth", "_modules", "_states", "_runners", "_engines", "pillar")
ROLES = {"__init__", "views", "cli", "models", "schemas", "service", "common", "auth"}
RESOURCES = {
    "releases",
    "devices",
    "execute",
    "enrollment",
}
LAYERS = {
    "api/policies",
    "api/security",
    "api/console",
}


def _product_modules():
    for top in PRODUCT_DIRS:
        for path in (ROOT / top).rglob("*.py"):
            rel = path.relative_to(ROOT)
            if "migrations" in rel.parts:
                continue
            yield rel


def repeated_names(modules) -> dict[str, list[str]]:
    by_name = collections.defaultdict(list)
    for rel in modules:
        by_name[rel.stem].append(rel.parent.as_posix())
    return {name: sorted(dirs) for name, dirs in by_name.items() if len(dirs) > 1}


def unexplained(repeats: dict[str, list[str]]) -> dict[str, list[str]]:
    bad = {}
    for name, dirs in repeats.items():
        if name in ROLES:
            continue
        if name in RESOURCES and all(d in LAYERS for d in dirs):
            continue
        bad[name] = dirs
    return bad


def test_no_module_name_means_two_jobs():
    assert unexplained(repeated_names(_product_modules())) == {}


def test_the_check_catches_a_name_with_two_jobs():
    modules = [Path("api/rollouts/policy.py"), Path("berth/release/policy.py")]
    assert unexplained(repeated_names(modules)) == {"policy": ["api/rollouts", "berth/release"]}
    layered = [Path("api/policies/devices.py"), Path("berth/devices.py")]
    assert "devices" in unexplained(repeated_names(layered))
