"""``berth.secretfile.read_private``: the one reader of token files (device local API, master)."""

from __future__ import annotations

import pytest

from berth import localapi, secretfile


def _file(tmp_path, text, mode=0o600):
    path = tmp_path / "token"
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def test_reads_a_private_file_stripped(tmp_path):
    assert secretfile.read_private(_file(tmp_path, " s3cret\n")) == "s3cret"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_refuses_a_file_others_may_read(tmp_path, mode):
    with pytest.raises(ValueError, match=f"accessible by group or others \\(mode {mode:04o}\\)"):
        secretfile.read_private(_file(tmp_path, "s3cret", mode))


def test_refuses_missing_and_empty(tmp_path):
    with pytest.raises(ValueError, match="cannot read token_file .*/nope: No such file"):
        secretfile.read_private(str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="token_file .* is empty"):
        secretfile.read_private(_file(tmp_path, "\n"))


def test_the_local_api_uses_it(tmp_path):
    # the engine always has a token file (default: next to the minion config); no path is an error
    with pytest.raises(ValueError, match="cannot create token_file"):
        localapi.read_local_token("")
    assert localapi.read_local_token(_file(tmp_path, "tok")) == "tok"
    with pytest.raises(ValueError, match="accessible by group or others"):
        localapi.read_local_token(_file(tmp_path, "tok", 0o644))
