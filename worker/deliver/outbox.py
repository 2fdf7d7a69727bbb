"""The outbox channel: each alert as `<id>.json` (webhook body) and `<id>.eml` (the email)."""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path

from .. import files
from ..bodies import Body
from ..errors import DeliveryError


def write_outbox(folder: Path, body: Body, message: EmailMessage) -> Path:
    """Write both files atomically (temp file + rename), so readers never see half an alert;
    readable by their owner only, as mail in a spool is (they carry the alert's signed
    feedback links)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        files.replace(folder / f"{body['id']}.eml", message.as_bytes(), 0o600)
        target = folder / f"{body['id']}.json"
        files.replace(target, json.dumps(body, ensure_ascii=False, indent=2).encode() + b"\n",
                      0o600)
    except OSError as exc:
        raise DeliveryError(str(folder), f"cannot write outbox: {exc}", retryable=True) from None
    return target


