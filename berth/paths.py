"""Where Berth's non-Python files are: the Salt state tree (``salt/``: ``docker/*.sls`` and
``reactor/*.sls``) and the config snippets (``conf/``), in a checkout or where pip installed
them (a wheel carries both under ``berth/salt_ext/``, see ``setup.py``).

    python3 -m berth.paths state_tree     # the master's file_roots entry (docs/fleet.md)
    python3 -m berth.paths conf           # conf/master.d/*.conf, conf/minion.d/*.conf
"""

from __future__ import annotations

import sys
from pathlib import Path

from berth.loader import _root

KINDS = ("state_tree", "conf")


def state_tree() -> Path:
    """The directory to list under the master's ``file_roots: base:``."""
    return _root() / "salt"


def conf() -> Path:
    return _root() / "conf"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in KINDS:
        print(f"usage: python3 -m berth.paths {'|'.join(KINDS)}", file=sys.stderr)
        return 2
    print(state_tree() if argv[0] == "state_tree" else conf())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
