"""Wheel builds carry the Salt loader directories, the state tree and the config snippets
inside the ``berth`` package.

Everything else (metadata, dependencies, extras, entry point, package data, tool settings) is in
pyproject.toml. This file stays only for the ``build_py`` hook below, which pyproject.toml
cannot declare: ``_modules/``, ``_states/``, ... live at the repository root (not inside a
package) so that ``module_dirs: [<repo>]`` and ``saltutil.sync_*`` work from a checkout, and a
wheel copies them to ``berth/salt_ext/`` where ``berth.loader`` finds them.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SALT_DIRS = ("_modules", "_states", "_runners", "pillar", "_engines")


# Copied whole: the state tree and reactor files (the master's file_roots, found with
# ``python3 -m berth.paths state_tree``) and the config snippets (``... conf``).
DATA_DIRS = {"salt": ("*.sls",), "conf": ("*.conf",)}


class BuildPyWithSaltDirs(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install serves them from the checkout
        for name in SALT_DIRS:
            dest = Path(self.build_lib, "berth", "salt_ext", name)
            self.mkpath(str(dest))
            for src in sorted((ROOT / name).glob("*.py")):
                self.copy_file(str(src), str(dest / src.name), preserve_mode=False)
        for name, patterns in DATA_DIRS.items():
            for pattern in patterns:
                for src in sorted((ROOT / name).rglob(pattern)):
                    dest = Path(self.build_lib, "berth", "salt_ext", src.relative_to(ROOT))
                    self.mkpath(str(dest.parent))
                    self.copy_file(str(src), str(dest), preserve_mode=False)


setup(cmdclass={"build_py": BuildPyWithSaltDirs})
