"""Small helpers the fleet benchmarks share (run as ``python bench/NAME.py``, so ``bench/`` is
on ``sys.path``)."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout, what, interval=0.5):
    """Poll ``predicate`` until it returns something true (returned), or exit after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"{Path(sys.argv[0]).stem}: timed out after {timeout}s waiting for {what}")
