"""SSRF guard: connections made for untrusted URLs (feeds, redirects, webhooks, chat targets,
WebSub hubs) only reach public addresses.

The authority is one check where every socket is opened, whatever library opens it (aiohttp,
httpx, requests inside Apprise, smtplib for Apprise's mailto): a Python audit hook (PEP 578)
sees each `socket.connect` with the address actually being connected, after every spelling,
IDNA mapping, redirect and DNS answer, and refuses it inside an `outbound(guard=True)` scope
when the address is not public. There is no window between a check and a connection (DNS
rebinding), and no client's private attributes are patched. Checks before that point
(`url_problem`, the feed resolver) only give clearer errors earlier, `newswatch check`
included. Outside a scope (Redis, the broker, the operator's SMTP server) nothing is checked.

A scope can also carry a deadline: when it passes, every socket the scope opened is shut
down, so a receiver trickling its answer cannot hold a delivery attempt past it, in whatever
library the attempt is blocked.
`settings.allow_private_networks: true` turns the guard off (tests, a feed server on the LAN).
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import re
import socket
import sys
import threading
import time
import unicodedata
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# RFC 6052 NAT64 prefixes: the IPv4 address sits in the last 32 bits.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")          # deprecated (RFC 3879), never public
_LOCAL_NAMES = re.compile(r"^(?:(?:.+\.)?localhost|localhost\.localdomain|ip6-localhost|"
                          r"ip6-loopback|.+\.local|.+\.internal)$")
_LEGACY_IPV4 = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}$")
HINT = "(set allow_private_networks to allow it)"


class BlockedAddress(ConnectionRefusedError):
    """A connection the guard refused; the message names the address and the rule."""


def address_problem(ip: Address) -> str | None:
    """Why this address must not be reached from a server, or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and any(ip in net for net in _NAT64):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            problem = address_problem(embedded)
            return f"{problem} (inside IPv6 {ip})" if problem else None
        if ip in _SITE_LOCAL:
            return "site-local (deprecated)"
    for rule, name in ((ip.is_loopback, "loopback"), (ip.is_unspecified, "unspecified"),
                       (ip.is_link_local, "link-local (e.g. cloud metadata)"),
                       (ip.is_multicast, "multicast"), (ip.is_reserved, "reserved"),
                       (ip.is_private, "private")):
        if rule:
            return name
    return None if ip.is_global else "not a public address"


def literal_address(host: str) -> Address | None:
    """The IP address a URL's host spells, as HTTP clients read it (IDNA/NFKC-mapped:
    `１２７。０。０。１`; legacy IPv4 forms: `2130706433`, `0x7f.1`, `0177.0.0.1`; brackets,
    zone and trailing dots dropped), or None when the host is a name."""
    host = unicodedata.normalize("NFKC", host).strip().strip("[]").rstrip(".").lower()
    host = host.replace("。", ".").replace("｡", ".")
    host = host.split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def host_problem(host: str) -> str | None:
    """Why a URL's host is refused before any lookup (a non-public address however spelled,
    or a name that only ever means this machine or its LAN), else None."""
    ip = literal_address(host)
    if ip is not None:
        problem = address_problem(ip)
        return f"refused {host}: {ip} is {problem} {HINT}" if problem else None
    name = unicodedata.normalize("NFKC", host).strip().rstrip(".").lower()
    if _LOCAL_NAMES.match(name):
        return f"refused {host}: a local name {HINT}"
    return None


def url_problem(url: str) -> str | None:
    """`host_problem` for every host a URL names: its own, and the hosts some notification
    URLs carry in their query (Apprise's `mailto://...?smtp=host`, `?host=`, `?to=`)."""
    try:
        parts = urlsplit(url.strip())
        hosts = [parts.hostname or ""]
        hosts += [value.rsplit("@", 1)[-1].split(":")[0]
                  for key, value in parse_qsl(parts.query)
                  if key.lower() in ("smtp", "host", "server", "hostname")]
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    for host in hosts:
        if host and (problem := host_problem(host)):
            return problem
    return None


def sockaddr_problem(family: int, address: Any) -> str | None:
    """Why a socket must not connect to this address (a name is resolved and each of its
    addresses checked), else None."""
    if family not in (socket.AF_INET, socket.AF_INET6):
        return f"refused {address!r}: not an IP connection"
    host = str(address[0])
    try:
        ips = [ipaddress.ip_address(host.split("%")[0])]
    except ValueError:                       # a name handed straight to connect()
        try:
            infos = socket.getaddrinfo(host, address[1], type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            return f"cannot resolve {host}: {exc}"
        ips = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for ip in ips:
        problem = address_problem(ip)
        if problem:
            return f"refused {host}: {ip} is {problem} {HINT}"
    return None


@dataclass
class Outbound:
    """Outgoing work for one untrusted target: what the guard refused, whether the deadline
    passed, and (for the deadline) the sockets the work opened."""

    guard: bool
    deadline: float | None = None            # time.monotonic() value
    refused: list[str] = field(default_factory=list)
    expired: bool = False                     # the deadline passed
    closed: bool = False                      # the work is over (late threads get nothing)
    _sockets: weakref.WeakSet[socket.socket] = field(default_factory=weakref.WeakSet)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def connecting(self, sock: socket.socket, address: Any) -> None:
        """Called (by the audit hook) before `sock` connects to `address`."""
        if self.expired or self.closed:
            raise TimeoutError("the attempt is over (its deadline passed)")
        if self.guard and (problem := sockaddr_problem(sock.family, address)):
            self.refused.append(problem)
            raise BlockedAddress(problem)
        if self.deadline is not None:
            with self._lock:
                self._sockets.add(sock)

    def expire(self) -> None:
        """The deadline passed: shut down every socket opened, so blocked reads return."""
        self.expired = True
        self._shut_all()

    def close(self) -> None:
        """The work is over: what a library left running (Apprise abandons a timed-out
        thread) cannot connect any more, nor keep a connection open."""
        self.closed = True
        self._shut_all()

    def _shut_all(self) -> None:
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):    # closed already
                sock.shutdown(socket.SHUT_RDWR)


_SCOPE: contextvars.ContextVar[Outbound | None] = contextvars.ContextVar("newswatch_outbound",
                                                                         default=None)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect":
        scope = _SCOPE.get()
        if scope is not None:
            scope.connecting(args[0], args[1])


_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Add the audit hook to this process (once; hooks cannot be removed)."""
    global _installed
    with _install_lock:
        if not _installed:
            sys.addaudithook(_audit)
            _installed = True


@contextmanager
def outbound(*, guard: bool, seconds: float | None = None) -> Iterator[Outbound]:
    """Connections opened in this block (this thread or task, and threads or tasks started
    from it with its context) are checked by the guard when `guard`; after `seconds`, every
    socket the block opened is shut down."""
    install()
    scope = Outbound(guard, None if seconds is None else time.monotonic() + seconds)
    token = _SCOPE.set(scope)
    timer = None
    if seconds is not None:
        timer = threading.Timer(seconds, scope.expire)
        timer.daemon = True
        timer.start()
    try:
        yield scope
    finally:
        _SCOPE.reset(token)
        if timer is not None:
            timer.cancel()
            scope.close()


def current() -> Outbound | None:
    """The scope in force here, if any."""
    return _SCOPE.get()
