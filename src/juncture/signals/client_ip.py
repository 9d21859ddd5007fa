"""The client IP of a request: the peer, forwarding headers read through trusted proxies only.

A forwarding header is a claim written by whoever sent it. Juncture believes one only
when the connection comes from a proxy the operator listed as trusted, and then walks its
hops right to left (the order proxies append them), skipping trusted proxies: the first
address that is not one is the client. Anything the client wrote itself sits further left
and is never reached while an untrusted hop stands in the way. An address that cannot be
parsed (``unknown``, an obfuscated ``_hidden`` identifier, garbage) is a missing fact:
the result is None, never a guess and never the proxy's own address.

- ``X-Forwarded-For``: the de facto header, a comma-separated list of addresses.
- ``Forwarded``: RFC 7239 (https://www.rfc-editor.org/rfc/rfc7239#section-4), elements
  separated by commas, each ``for=node`` with a node as defined in section 6
  (``192.0.2.43``, ``"192.0.2.43:47011"``, ``"[2001:db8::17]:4711"``, ``unknown``, ``_x``).

Addresses come back canonical: IPv6 compressed and lower case, and an IPv4-mapped IPv6
address (what a dual-stack socket reports for an IPv4 client) as the IPv4 address.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Literal

from juncture.policy.prefixes import IPAddress, PrefixTable, parse_ip_text, parse_network

ForwardedHeader = Literal["forwarded", "x-forwarded-for"]

#: The most hops read from the right of a forwarding header; past it the client is unknown.
MAX_HOPS = 32
#: The longest text taken as one address (with port and brackets); longer is unparsable.
MAX_ADDRESS_CHARS = 64

_PORT = re.compile(r"^([0-9]{1,5}|_[A-Za-z0-9._-]+)$")
#: RFC 7230 token characters, for Forwarded parameter names and unquoted values.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def canonical(address: IPAddress) -> IPAddress:
    """The address as Juncture records it: an IPv4-mapped IPv6 address becomes IPv4."""
    if address.version == 6:
        mapped = address.ipv4_mapped
        if mapped is not None:
            return mapped
    return address


@lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPAddress | None:
    """A bare IPv4 or IPv6 address (surrounding spaces allowed), canonical; None otherwise.

    Zone identifiers (``fe80::1%eth0``) are refused: they name an interface of the sender.
    Cached (bounded): the same proxies and clients come again and again; a miss parses
    through the shared cache of `parse_ip_text` (the facts read the same address).
    """
    text = text.strip()
    if not text or len(text) > MAX_ADDRESS_CHARS or "%" in text:
        return None
    address = parse_ip_text(text)
    return canonical(address) if address is not None else None


def reported_ip(value: object) -> IPAddress | None:
    """Validate the end user's IP as the calling app reported it; None when it is not one.

    The app is the enforcement point and sees the user's connection, so it tells Juncture
    the address in its request context. It must be a bare address: no port, no brackets,
    no list. Anything else is a missing fact (conditions reading it fail closed).
    """
    if not isinstance(value, str):
        return None
    return parse_ip(value)


@lru_cache(maxsize=4096)
def parse_node(text: str) -> IPAddress | None:
    """One hop of a forwarding header: an address with an optional port; None if unparsable.

    Accepts ``192.0.2.1``, ``192.0.2.1:8080``, ``[2001:db8::1]``, ``[2001:db8::1]:4711``,
    a bare ``2001:db8::1`` and any of them in double quotes (RFC 7239 section 6).
    """
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1].replace("\\", "").strip()
    if not text or len(text) > MAX_ADDRESS_CHARS:
        return None
    if text[0] == "[":
        close = text.find("]")
        if close < 0:
            return None
        host, rest = text[1:close], text[close + 1 :]
        if rest and not (rest[0] == ":" and _PORT.match(rest[1:])):
            return None
        address = parse_ip(host)
        return address if address is not None and address.version == 6 else None
    if text.count(":") == 1:  # IPv4 with a port
        host, port = text.split(":")
        if not _PORT.match(port):
            return None
        address = parse_ip(host)
        return address if address is not None and address.version == 4 else None
    return parse_ip(text)


def _split_quoted(text: str, sep: str) -> list[str]:
    """Split at ``sep`` outside double-quoted strings (backslash escapes honoured)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def parse_forwarded(values: Iterable[str]) -> list[str | None]:
    """The ``for=`` node of each element of RFC 7239 ``Forwarded`` header values, in order.

    An element without exactly one ``for`` parameter, or with a malformed parameter, gives
    None: that hop is unknown. Several header lines make one list, in the order they came.
    """
    nodes: list[str | None] = []
    for value in values:
        for element in _split_quoted(value, ","):
            if not element.strip():
                continue
            found: list[str] = []
            malformed = False
            for pair in _split_quoted(element, ";"):
                if not pair.strip():
                    continue
                name, eq, node = pair.partition("=")
                name = name.strip()
                if not eq or not _TOKEN.match(name):
                    malformed = True
                elif name.lower() == "for":
                    found.append(node.strip())
            nodes.append(found[0] if len(found) == 1 and not malformed else None)
    return nodes


def parse_x_forwarded_for(values: Iterable[str]) -> list[str | None]:
    """The addresses of ``X-Forwarded-For`` header values, in order (empty items skipped)."""
    return [item for value in values for item in value.split(",") if item.strip()]


class ClientIP:
    """Resolve the client IP of requests, given the trusted proxies (built once)."""

    __slots__ = ("headers", "trusted")

    def __init__(
        self,
        trusted_proxies: Iterable[str] = (),
        headers: Sequence[ForwardedHeader] = ("x-forwarded-for",),
    ) -> None:
        """``trusted_proxies``: CIDRs of the proxies in front of Juncture. ``headers``: the
        forwarding headers those proxies write, in order of preference (the first one that
        is present is read). List only headers your proxies set or overwrite: a header they
        pass through untouched is the client's to forge.

        Raises:
            ValueError: a trusted proxy that is not a CIDR, or an unknown header name.
        """
        for header in headers:
            if header not in ("forwarded", "x-forwarded-for"):
                raise ValueError(f"unknown forwarding header `{header}`")
        ranges = []
        for cidr in trusted_proxies:
            try:
                ranges.append((parse_network(cidr), True))
            except ValueError:
                raise ValueError(
                    f"trusted proxy `{cidr}` is not a valid IPv4 or IPv6 CIDR"
                ) from None
        self.trusted: PrefixTable[bool] = PrefixTable(ranges)
        self.headers: tuple[ForwardedHeader, ...] = tuple(headers)

    def resolve(
        self,
        peer: str | None,
        *,
        forwarded: Sequence[str] = (),
        x_forwarded_for: Sequence[str] = (),
    ) -> IPAddress | None:
        """The client IP: the peer, or when the peer is a trusted proxy the right-most hop
        of its forwarding header that is not a trusted proxy. None when it cannot be told.

        ``forwarded`` and ``x_forwarded_for`` are the header's values (one per header line).
        """
        address = parse_ip(peer) if peer is not None else None
        if address is None or address not in self.trusted:
            return address
        hops: list[str | None] = []
        for header in self.headers:
            if header == "forwarded" and forwarded:
                hops = parse_forwarded(forwarded)
                break
            if header == "x-forwarded-for" and x_forwarded_for:
                hops = parse_x_forwarded_for(x_forwarded_for)
                break
        for count, hop in enumerate(reversed(hops)):
            if count >= MAX_HOPS:
                return None
            address = parse_node(hop) if hop is not None else None
            if address is None:
                return None  # an unknown hop: whatever is left of it cannot be believed
            if address not in self.trusted:
                return address
        # Every hop is a trusted proxy: the left-most one is where the request came from.
        return address
