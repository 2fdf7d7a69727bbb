"""SSRF guard: outgoing HTTP (feeds, webhooks) only reaches public addresses.

The check runs where the socket is opened: the host name is resolved once, every address is
checked, and the connection goes to an address that passed. Redirects open new connections and
are checked the same way, so there is no window between checking a name and using it (DNS
rebinding). Decimal, octal and IPv4-mapped IPv6 spellings are caught because the *resolved*
address is what is checked. `settings.allow_private_networks: true` turns the guard off for
local use (tests, a feed server on the LAN).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_problem(ip: Address) -> str | None:
    """Why this address must not be reached from a server, or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            problem = address_problem(embedded)
            return f"{problem} (inside IPv6 {ip})" if problem else None
    for rule, name in ((ip.is_loopback, "loopback"), (ip.is_unspecified, "unspecified"),
                       (ip.is_link_local, "link-local (e.g. cloud metadata)"),
                       (ip.is_multicast, "multicast"), (ip.is_reserved, "reserved"),
                       (ip.is_private, "private")):
        if rule:
            return name
    return None if ip.is_global else "not a public address"


def host_problem(host: str, port: int) -> str | None:
    """Why a host must not be reached (any of its addresses is not public), else None. For
    clients we cannot give the guarded backend (Apprise uses requests): a name could still
    resolve differently a moment later, so this narrows the hole rather than closing it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return f"cannot resolve {host}: {exc}"
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        problem = address_problem(ip)
        if problem:
            return f"refused {host}: {ip} is {problem} (set allow_private_networks to allow it)"
    return None


class BlockedAddress(httpcore.ConnectError):
    """A connection refused by the guard; the message names the host, address and rule."""


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to addresses that pass `address_problem`."""

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        refused, last_error = [], None
        for *_, sockaddr in infos:
            ip = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
            problem = address_problem(ip)
            if problem:
                refused.append(f"{ip} is {problem}")
                continue
            try:
                return super().connect_tcp(str(ip), port, timeout, local_address,
                                           socket_options)
            except httpcore.ConnectError as exc:
                last_error = exc
        if last_error is not None:
            raise last_error
        raise BlockedAddress(f"refused {host}: {'; '.join(dict.fromkeys(refused))} "
                             "(set allow_private_networks to allow it)")


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with the guarded socket backend (httpx has no public hook for it)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pool._network_backend = GuardedBackend()
