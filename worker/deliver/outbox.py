"""The outbox channel: each alert as `<id>.json` (webhook body) and `<id>.eml` (the email)."""

from __future__ import annotations

import json
import os
import tempfile
from email.message import EmailMessage
from pathlib import Path

from ..bodies import Body
from ..errors import DeliveryError


def write_outbox(folder: Path, body: Body, message: EmailMessage) -> Path:
    """Write both files atomically (temp file + rename), so readers never see half an alert."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(folder / f"{body['id']}.eml", message.as_bytes())
        target = folder / f"{body['id']}.json"
        _atomic_write(target, json.dumps(body, ensure_ascii=False, indent=2).encode() + b"\n")
    except OSError as exc:
        raise DeliveryError(str(folder), f"cannot write outbox: {exc}", retryable=True) from None
    return target


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
