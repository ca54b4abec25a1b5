"""``salt.loader`` entry point: tells Salt where Berth's loader modules live.

Salt (``salt.loader._module_dirs``) calls :func:`get_loader_dirs` for every loader
type and adds the directories listed under that type's key. In a source checkout
(``pip install -e .``) they are the repository's ``_modules/``, ``_states/``, ...;
a built wheel carries copies of them inside this package under ``berth/salt_ext/``
(see ``setup.py``).
"""

from __future__ import annotations

from pathlib import Path

# Salt loader type -> directory name in the repository (and in berth/salt_ext/)
LOADER_DIRS = {
    "modules": "_modules",
    "states": "_states",
    "runners": "_runners",
    "pillar": "pillar",
    "engines": "_engines",
}

_PACKAGED = Path(__file__).resolve().parent / "salt_ext"
_SOURCE = Path(__file__).resolve().parent.parent


def _root() -> Path:
    return _PACKAGED if _PACKAGED.is_dir() else _SOURCE


def get_loader_dirs() -> dict[str, list[str]]:
    root = _root()
    dirs = {}
    for loader_type, name in LOADER_DIRS.items():
        path = root / name
        dirs[loader_type] = [str(path)] if path.is_dir() else []
    return dirs
