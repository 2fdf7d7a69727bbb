"""Files replaced whole (worker/files.py): models, OPML lists, configs, outbox alerts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from worker import files


def test_a_new_file_gets_the_umask_an_old_one_keeps_its_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        files.replace(tmp_path / "new" / "a.json", b"one")      # the folder is made too
        assert (tmp_path / "new" / "a.json").stat().st_mode & 0o777 == 0o640
        (tmp_path / "new" / "a.json").chmod(0o604)
        files.replace(tmp_path / "new" / "a.json", b"two")
        assert (tmp_path / "new" / "a.json").stat().st_mode & 0o777 == 0o604
        files.replace(tmp_path / "new" / "a.json", b"three", 0o600)
        assert (tmp_path / "new" / "a.json").stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "new" / "a.json").read_bytes() == b"three"
        assert os.umask(0o027) == 0o027                         # left as it was
    finally:
        os.umask(old)


def test_a_failed_write_leaves_the_old_file_and_no_debris(tmp_path: Path) -> None:
    target = tmp_path / "model.json"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        files.replace(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]
