"""Reading a secret (a token) from a file only its owner may read; used on the device (the local
API's ``token_file``) and on the master (the fleet API's ``token_file``)."""

from __future__ import annotations

import os
import stat


def read_private(path: str) -> str:
    """The stripped contents of ``path``, or ValueError naming the file when it cannot be read,
    group or others may access it, or it is empty."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ValueError(f"cannot read token_file {path}: {exc.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValueError(
            f"token_file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); chmod 600 it"
        )
    with open(path, encoding="utf-8") as handle:
        token = handle.read().strip()
    if not token:
        raise ValueError(f"token_file {path} is empty")
    return token
