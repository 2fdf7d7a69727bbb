"""Files replaced whole: a crash, or a reader at the wrong moment, sees the old file or the new
one, never half of either."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def replace(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write `data` to a temporary file beside `path` and rename it over `path`. The file gets
    `mode`, else the mode of the file it replaces, else what a plain open() would give (0666
    less the umask, which the system applies as it creates the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    keep = path.stat().st_mode & 0o777 if mode is None and path.exists() else None
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        if keep is not None:
            os.chmod(tmp, keep)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
