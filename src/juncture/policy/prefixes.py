"""PrefixTable: longest-prefix match of IPv4 and IPv6 ranges to values, built once.

A journey's `networks:` and an operator's reputation lists are hundreds or thousands of
CIDRs, and every decision looks an address up in them. The table keeps, for each prefix
length present (longest first), a dict from the masked address to the values of that range:
a lookup costs at most one dict probe per distinct length, whatever the number of ranges.

IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``, what a dual-stack socket reports for an
IPv4 client) match IPv4 ranges, and an IPv4 address matches IPv6 ranges written inside
``::ffff:0:0/96``: one address, one answer, whichever way it was written.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any, Generic, TypeVar

V = TypeVar("V")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_MAPPED_BASE = int(ipaddress.IPv6Address("::ffff:0:0"))
_BITS = {4: 32, 6: 128}

#: One level of a table: (shift that masks an address down to this length, masked -> values).
_Level = tuple[int, dict[int, tuple[Any, ...]]]


def parse_network(cidr: str | IPNetwork) -> IPNetwork:
    """A CIDR as a network; host bits are dropped (``10.1.2.3/8`` is ``10.0.0.0/8``).

    Raises:
        ValueError: when the text is not an IPv4 or IPv6 network.
    """
    if isinstance(cidr, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return cidr
    if not isinstance(cidr, str):
        raise ValueError(f"`{cidr!r}` is not a network range")
    return ipaddress.ip_network(cidr.strip(), strict=False)


def parse_address(ip: str | IPAddress) -> IPAddress | None:
    """An address, or None when the text is not a plain IPv4 or IPv6 address."""
    if isinstance(ip, str):
        return parse_ip_text(ip)
    return ip


@lru_cache(maxsize=8192)
def parse_ip_text(text: str) -> IPAddress | None:
    """A plain IPv4 or IPv6 address (no spaces, no prefix), or None; exactly what
    `ipaddress.ip_address` accepts.

    Shared and cached: one request's address is read by the enricher, the facts and the
    network tables, and parsing it costs more than a whole table lookup. Dotted quads, the
    common case, take a short path.
    """
    if ":" not in text:
        return _parse_v4(text)
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        return None


def _parse_v4(text: str) -> ipaddress.IPv4Address | None:
    """Four decimal octets, none above 255 and none with a leading zero (which some parsers
    read as octal): the rules of `ipaddress.IPv4Address`."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if not (0 < len(part) <= 3 and part.isascii() and part.isdigit()):
            return None
        if part[0] == "0" and len(part) > 1:
            return None
        octet = int(part)
        if octet > 255:
            return None
        value = value << 8 | octet
    return ipaddress.IPv4Address(value)


def _levels(rows: dict[tuple[int, int], list[Any]], bits: int) -> tuple[_Level, ...]:
    by_length: dict[int, dict[int, tuple[Any, ...]]] = {}
    for (length, masked), values in rows.items():
        by_length.setdefault(length, {})[masked] = tuple(values)
    return tuple((bits - length, by_length[length]) for length in sorted(by_length, reverse=True))


class PrefixTable(Generic[V]):
    """Longest-prefix match of addresses to values. Immutable once built; safe to share.

    Several values may share one range: they are kept in the order given, and the first one
    is the range's value for `longest`.
    """

    __slots__ = ("_entries", "_v4", "_v6")

    _entries: tuple[tuple[IPNetwork, V], ...]
    _v4: tuple[_Level, ...]
    _v6: tuple[_Level, ...]

    def __init__(self, entries: Iterable[tuple[IPNetwork, V]] = ()) -> None:
        """Index parsed networks; `build` is the usual way in (it also parses text)."""
        kept = tuple(entries)
        rows: dict[int, dict[tuple[int, int], list[Any]]] = {4: {}, 6: {}}
        for network, value in kept:
            self._add(rows, network, value)
        object.__setattr__(self, "_entries", kept)
        object.__setattr__(self, "_v4", _levels(rows[4], 32))
        object.__setattr__(self, "_v6", _levels(rows[6], 128))

    @staticmethod
    def _add(
        rows: dict[int, dict[tuple[int, int], list[Any]]], network: IPNetwork, value: Any
    ) -> None:
        version, length = network.version, network.prefixlen
        address = int(network.network_address)
        _append(rows[version], (length, address >> (_BITS[version] - length)), value)
        if version == 4:  # the same range as IPv4-mapped IPv6 addresses see it
            _append(rows[6], (96 + length, (_MAPPED_BASE | address) >> (32 - length)), value)
        elif length >= 96 and address >> 32 == _MAPPED_BASE >> 32:  # an IPv4 range, mapped
            _append(rows[4], (length - 96, (address & 0xFFFFFFFF) >> (128 - length)), value)

    @classmethod
    def build(cls, items: Iterable[tuple[str | IPNetwork, V]]) -> PrefixTable[V]:
        """A table of ``(cidr, value)`` pairs; CIDRs as text or `ipaddress` networks.

        Raises:
            ValueError: naming the first range that is not a valid IPv4 or IPv6 CIDR.
        """
        return cls((parse_network(cidr), value) for cidr, value in items)

    def longest(self, ip: str | IPAddress) -> V | None:
        """The value of the longest range holding ``ip``; None when none does (or not an IP)."""
        address = parse_address(ip)
        if address is None:
            return None
        value = int(address)
        for shift, table in self._v4 if address.version == 4 else self._v6:
            found = table.get(value >> shift)
            if found is not None:
                return found[0]  # type: ignore[no-any-return]
        return None

    def all(self, ip: str | IPAddress) -> list[V]:
        """Every value of every range holding ``ip``: longest range first, each value once."""
        address = parse_address(ip)
        if address is None:
            return []
        value = int(address)
        out: list[V] = []
        for shift, table in self._v4 if address.version == 4 else self._v6:
            found = table.get(value >> shift)
            if found is not None:
                for item in found:
                    if item not in out:
                        out.append(item)
        return out

    def __contains__(self, ip: object) -> bool:
        if not isinstance(ip, str | ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        address = parse_address(ip)
        if address is None:
            return False
        value = int(address)
        for shift, table in self._v4 if address.version == 4 else self._v6:
            if value >> shift in table:
                return True
        return False

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[tuple[IPNetwork, V]]:
        return iter(self._entries)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrefixTable) and self._entries == other._entries

    def __hash__(self) -> int:
        return hash(self._entries)

    def __repr__(self) -> str:
        return f"PrefixTable({len(self._entries)} ranges)"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a PrefixTable is immutable")


def _append(rows: dict[tuple[int, int], list[Any]], key: tuple[int, int], value: Any) -> None:
    values = rows.setdefault(key, [])
    if value not in values:
        values.append(value)
