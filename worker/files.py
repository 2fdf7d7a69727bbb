"""Files replaced whole: a crash, or a reader at the wrong moment, sees the old file or the new
one, never half of either."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write `data` to a temporary file beside `path` and rename it over `path`. The file gets
    `mode`, else the mode of the file it replaces, else what a plain open() would give (0666
    less the umask; a temporary file alone would be 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        if mode is None:
            mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)         # the only way to read it is to set it: set it back at once
    os.umask(mask)
    return mask
