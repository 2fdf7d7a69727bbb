"""Email delivery over SMTP: smtp://[user:pass@]host[:port][?starttls=1] or smtps://..."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import DeliveryError


def send_email(smtp_url: str, message: EmailMessage, *, timeout: float = 30.0) -> None:
    parts = urlsplit(smtp_url)
    host = parts.hostname or "localhost"
    query = parse_qs(parts.query)
    starttls = query.get("starttls", ["0"])[0].lower() in ("1", "true", "yes")
    target = f"{parts.scheme}://{host}:{parts.port or ''}"
    try:
        if parts.scheme == "smtps":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, parts.port or 465, timeout=timeout,
                                                  context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(host, parts.port or 25, timeout=timeout)
        with smtp:
            if starttls:
                smtp.starttls(context=ssl.create_default_context())
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        raise DeliveryError(f"{target} to {message['To']}", f"recipient refused: {codes}",
                            retryable=all(400 <= c < 500 for c in codes)) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(target, f"SMTP {exc.smtp_code} {exc.smtp_error!r}",
                            retryable=400 <= exc.smtp_code < 500) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(target, f"{type(exc).__name__}: {exc}", retryable=True) from None
