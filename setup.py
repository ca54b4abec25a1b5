"""Wheel builds carry the Salt loader directories inside the ``berth`` package.

``_modules/``, ``_states/``, ... live at the repository root so that
``module_dirs: [<repo>]`` and ``saltutil.sync_*`` work from a checkout; a wheel
copies them to ``berth/salt_ext/`` where ``berth.loader`` finds them.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SALT_DIRS = ("_modules", "_states", "_runners", "pillar", "_engines", "_returners")


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


setup(cmdclass={"build_py": BuildPyWithSaltDirs})
