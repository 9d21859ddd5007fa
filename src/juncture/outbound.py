"""Every outbound HTTP request Juncture makes, made safe: the SSRF guard, timeouts, size caps.

Juncture sends requests to URLs it did not choose: a receiver's push endpoint (SSF 1.0 stream
configuration, ``delivery.endpoint_url``), a transmitter an operator configured for polling,
the ``jwks_uri`` of a journey's token issuer or of a Shared Signals transmitter. Such a URL
could name the metadata service at ``169.254.169.254``, a database on ``10.0.0.5`` or the
server's own admin port, so every one of these requests goes through this module:

- SSF push delivery (`juncture.events.delivery`) and SSF polling (`juncture.events.poll`) pin
  the URL with `pin_url` and send with `post`, on a client from `new_client`;
- key sets (`juncture.jose.KeySource`, for methods and for SSF receiving) are fetched with a
  `Fetcher` made by `guarded_fetcher`.

(Mail goes out by SMTP to the operator's own server, `juncture.methods.delivery`; the CLI's
requests go to the Juncture server the operator names. Neither is a URL from elsewhere.)

The rules. `pin_url` allows only ``https`` (plain ``http`` too when ``allow_private``), no
userinfo, a host; it resolves the host and refuses the URL when **any** address is not public:
loopback, private, link-local, multicast, reserved, unspecified, shared (CGNAT
``100.64.0.0/10``), documentation, benchmarking, unique-local and site-local IPv6, and those
same addresses inside IPv4-mapped, NAT64 and 6to4 IPv6 forms. ``allow_private`` (development
and tests: ``juncture serve --ssf-allow-private``) lifts the address rule and allows ``http``;
the other rules still hold. A request follows no redirect (a 3xx is returned as it is, so a
redirect to a private address is never followed), asks for no compression, reads at most
``max_bytes`` of the answer, and gives up with ``httpx.TimeoutException`` when one step (connect,
a read) takes longer than ``timeout`` seconds or the whole answer takes longer than
``timeout`` times `DEADLINE_FACTOR` (a server dripping a byte at a time cannot hold it).

DNS rebinding: a name may resolve to a public address when checked and to ``127.0.0.1`` a
moment later when connected. `Pinned` defeats it: the request is sent to the *checked* address
(`Pinned.connect_url`) with the original ``Host`` header and, for https, the original host name
as TLS SNI (`Pinned.extensions`), so the certificate is still verified against the name. Check
and pin right before each connection.

Residual risks, documented rather than handled: only the first resolved address is tried (no
fallback to the others); the resolver has no timeout of its own (getaddrinfo blocks as long as
the system resolver does); and a caller-supplied ``httpx.Client`` that uses a proxy sends the
request to that proxy, which then does its own resolution (`new_client` uses none).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec

from juncture.errors import RequestError

__all__ = [
    "DEADLINE_FACTOR",
    "MAX_URL_LENGTH",
    "Fetcher",
    "Pinned",
    "Reply",
    "Resolver",
    "UnsafeUrl",
    "address_problem",
    "check_push_url",
    "get",
    "guarded_fetcher",
    "new_client",
    "pin_url",
    "post",
    "resolve_host",
]

MAX_URL_LENGTH = 2048
#: A whole answer must arrive within ``timeout`` times this (each step within ``timeout``).
DEADLINE_FACTOR = 3

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: ``resolve(host)``: the IP addresses (as text) a host name resolves to.
Resolver = Callable[[str], Sequence[str]]
#: ``fetch(url, timeout, max_bytes)`` -> (HTTP status, at most ``max_bytes`` of the body): a
#: guarded GET (`guarded_fetcher`). Raises ValueError (`UnsafeUrl`) when the URL is refused
#: (not https, a private or loopback address), httpx.HTTPError when the request fails.
Fetcher = Callable[[str, float, int], tuple[int, bytes]]


class UnsafeUrl(RequestError, ValueError):
    """A URL Juncture will not send to; the message (``reason``) says why, in lowercase."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Pinned(msgspec.Struct, frozen=True, kw_only=True):
    """A checked URL, pinned to the address that was checked.

    Send to ``connect_url`` with ``headers`` (the original ``Host``) and ``extensions`` (TLS
    SNI = the original host name): the connection goes to ``address`` and nowhere else, and
    the certificate is verified against the original host name.
    """

    url: str  # as given
    host: str  # the original host (IDNA-encoded), what the certificate must name
    address: str  # the checked address connected to
    connect_url: str  # the URL with its host replaced by ``address``
    host_header: str  # the original ``host[:port]``

    @property
    def headers(self) -> dict[str, str]:
        return {"Host": self.host_header}

    @property
    def extensions(self) -> dict[str, Any]:
        if self.connect_url.startswith("https:") and self.host != self.address:
            return {"sni_hostname": self.host}
        return {}


def resolve_host(host: str) -> Sequence[str]:
    """The addresses ``host`` resolves to (getaddrinfo, TCP), in the resolver's order.

    Raises:
        OSError: (``socket.gaierror``) when it does not resolve.
    """
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


# Refused ranges with the word a message uses for them, checked in order. Python's own
# ``is_global`` is the backstop (its tables differ between patch releases, so they are
# spelled out here).
_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), label)
    for net, label in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared (CGNAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
    )
)
_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), label)
    for net, label in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "private"),  # local-use IPv4/IPv6 translation
        ("::/8", "reserved"),  # includes the deprecated IPv4-compatible ::a.b.c.d
        ("100::/64", "discard-only"),
        ("2001::/23", "IETF protocol"),  # Teredo 2001::/32 among them
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "reserved"),  # SRv6 SIDs
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, NAT64 (well-known prefix) or 6to4 address reaches."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def address_problem(ip: IPAddress) -> str | None:
    """What makes ``ip`` non-public (``"loopback"``, ``"IPv4-mapped private"``…), or None
    when it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            problem = address_problem(inner)
            if problem is None:
                return None
            kind = "IPv4-mapped" if ip.ipv4_mapped is not None else "embedded IPv4"
            return f"{kind} {problem}"
        for net6, label in _V6:
            if ip in net6:
                return label
        if ip not in _GLOBAL_UNICAST:
            return "reserved"
    else:
        for net4, label in _V4:
            if ip in net4:
                return label
    if ip.is_multicast:
        return "multicast"
    if not ip.is_global:
        return "non-global"
    return None


def pin_url(url: str, *, allow_private: bool, resolve: Resolver = resolve_host) -> Pinned:
    """Check ``url`` and pin it to the first address its host resolves to.

    Raises:
        UnsafeUrl: not https (or http with ``allow_private``), userinfo, no host, too long,
            the host does not resolve, or (without ``allow_private``) any address it resolves
            to is not public.
    """
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise UnsafeUrl(f"the URL is malformed: {error}") from None
    allowed = ("https", "http") if allow_private else ("https",)
    if parsed.scheme not in allowed:
        raise UnsafeUrl(f"the URL must be https, not `{parsed.scheme or '(none)'}`")
    if parsed.userinfo:
        raise UnsafeUrl("the URL must not carry a user name or password")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise UnsafeUrl("the URL has no host")
    literal = True
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        literal = False
        try:
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolve(host)]
        except (OSError, UnicodeError, ValueError):
            raise UnsafeUrl(f"the host `{host}` does not resolve") from None
    if not addresses:
        raise UnsafeUrl(f"the host `{host}` does not resolve")
    if not allow_private:
        for address in addresses:
            problem = address_problem(address)
            if problem is not None:
                shown = "is" if literal else f"resolves to {address},"
                raise UnsafeUrl(f"the host `{host}` {shown} not a public address ({problem})")
    first = addresses[0]
    if isinstance(first, ipaddress.IPv6Address) and first.ipv4_mapped is not None:
        first = first.ipv4_mapped  # connect over IPv4 to what it maps
    return Pinned(
        url=url,
        host=host,
        address=str(first),
        connect_url=str(parsed.copy_with(host=str(first))),
        host_header=parsed.netloc.decode("ascii"),
    )


def check_push_url(url: str, *, allow_private: bool, resolve: Resolver = resolve_host) -> None:
    """Check that Juncture may push to ``url`` (see the module docstring for the rules).

    Raises:
        UnsafeUrl: with the reason, as `pin_url`.
    """
    pin_url(url, allow_private=allow_private, resolve=resolve)


@dataclass(frozen=True, slots=True)
class Reply:
    """What a `post` got back: the status, the headers and (at most ``max_bytes`` of) the body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def post(
    client: httpx.Client,
    pinned: Pinned,
    *,
    content: bytes,
    headers: Mapping[str, str],
    timeout: float,
    max_bytes: int,
) -> Reply:
    """POST ``content`` to the pinned address; no redirect is followed (a 3xx is returned as
    it is) and no more than ``max_bytes`` of the body is read.

    Raises:
        httpx.HTTPError: the request could not be made or answered (``httpx.TimeoutException``
            when it took longer than ``timeout`` seconds for a step).
    """
    return _request(client, "POST", pinned, content, headers, timeout, max_bytes)


def get(
    client: httpx.Client,
    pinned: Pinned,
    *,
    headers: Mapping[str, str],
    timeout: float,
    max_bytes: int,
) -> Reply:
    """GET the pinned address, as `post` sends: no redirect followed, at most ``max_bytes``
    of the body read.

    Raises:
        httpx.HTTPError: the request could not be made or answered.
    """
    return _request(client, "GET", pinned, None, headers, timeout, max_bytes)


def _request(
    client: httpx.Client,
    method: str,
    pinned: Pinned,
    content: bytes | None,
    headers: Mapping[str, str],
    timeout: float,
    max_bytes: int,
) -> Reply:
    sent = {**headers, **pinned.headers, "Accept-Encoding": "identity"}
    deadline = time.monotonic() + timeout * DEADLINE_FACTOR
    with client.stream(
        method,
        pinned.connect_url,
        content=content,
        headers=sent,
        timeout=timeout,
        follow_redirects=False,
        extensions=pinned.extensions,
    ) as response:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_raw():
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout("the answer took too long", request=response.request)
            chunks.append(chunk)
            size += len(chunk)
            if size >= max_bytes:
                break
        return Reply(
            status=response.status_code,
            headers=response.headers,
            body=b"".join(chunks)[:max_bytes],
        )


def guarded_fetcher(*, allow_private: bool, resolve: Resolver = resolve_host) -> Fetcher:
    """A GET through this guard (key sets: `juncture.jose.KeySource`, given to methods as
    `juncture.methods.base.Environment.fetch`): ``fetch(url, timeout, max_bytes)`` ->
    (status, at most ``max_bytes`` of the body). Raises UnsafeUrl (a ValueError) for a
    refused URL, httpx.HTTPError when the request fails or takes too long."""

    def fetch(url: str, timeout: float, max_bytes: int) -> tuple[int, bytes]:
        pinned = pin_url(url, allow_private=allow_private, resolve=resolve)
        with new_client(timeout=timeout) as client:
            reply = get(client, pinned, headers={"Accept": "application/json"},
                        timeout=timeout, max_bytes=max_bytes)  # fmt: skip
        return reply.status, reply.body

    return fetch


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def new_client(*, timeout: float) -> httpx.Client:
    """A client for `post`: no proxy or ``.netrc`` from the environment (a proxy would resolve
    the name itself, undoing the pin), no redirects, the default CA bundle (one SSL context
    shared by every client)."""
    return httpx.Client(
        verify=_ssl_context(), trust_env=False, follow_redirects=False, timeout=timeout
    )
