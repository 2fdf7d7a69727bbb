"""One delivery attempt: bounded in time, and guarded when its target is untrusted."""

from __future__ import annotations

from collections.abc import Callable

from .. import netguard
from ..errors import DeliveryError


def redact(url: str) -> str:
    """A URL without what may be a secret (tokens live in the path, user and query)."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}/…"


def attempt(send: Callable[[], object], *, target: str, guarded: bool, seconds: float) -> None:
    """Run `send` (one channel's delivery to `target`) within `seconds` in all: after that
    every socket it opened is shut down, whatever library holds it. With `guarded`, the
    target's URL must not name a non-public host, and every connection `send` opens
    (redirects, threads the library starts) must reach a public address. A refusal or the
    deadline replaces the channel's own error with the reason, the guard's being final."""
    if guarded and (problem := netguard.url_problem(target)):
        raise DeliveryError(redact(target), problem, retryable=False)
    with netguard.outbound(guard=guarded, seconds=seconds) as scope:
        try:
            send()
        except DeliveryError as exc:
            if scope.refused:
                raise DeliveryError(exc.target, scope.refused[-1], retryable=False) from None
            if scope.expired:
                raise DeliveryError(exc.target, f"no complete answer within {seconds:g} s "
                                                "(delivery_timeout)", retryable=True) from None
            raise
