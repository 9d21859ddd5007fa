"""PrefixTable: longest-prefix match, checked against a brute-force scan of every range."""

from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from juncture.policy.prefixes import PrefixTable, parse_address, parse_ip_text, parse_network

MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def brute_all(entries, ip):
    """Every value of every range holding ip (mapped addresses as IPv4), longest first."""
    address = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    hits = []  # (effective length in the address's own family, order, value)
    for order, (net, value) in enumerate(entries):
        net = ipaddress.ip_network(net, strict=False) if isinstance(net, str) else net
        if net.version == address.version:
            if address in net:
                hits.append((net.prefixlen, order, value))
        elif address.version == 6 and address.ipv4_mapped is not None:
            if address.ipv4_mapped in net:
                hits.append((net.prefixlen + 96, order, value))
        elif address.version == 4 and net.prefixlen >= 96 and net.subnet_of(MAPPED):
            if ipaddress.IPv6Address(f"::ffff:{address}") in net:
                hits.append((net.prefixlen - 96, order, value))
    hits.sort(key=lambda h: (-h[0], h[1]))
    out = []
    for _, _, value in hits:
        if value not in out:
            out.append(value)
    return out


NETWORKS = [
    ("10.0.0.0/8", "corp"),
    ("10.1.0.0/16", "lab"),
    ("10.1.2.0/24", "bench"),
    ("10.1.0.0/16", "shared"),  # a second name for the same range
    ("192.168.0.0/16", "home"),
    ("2001:db8::/32", "v6"),
    ("2001:db8:1::/48", "v6lab"),
    ("::ffff:172.16.0.0/108", "mapped"),  # an IPv4 range written as IPv6
]


@pytest.fixture
def table():
    return PrefixTable.build(NETWORKS)


@pytest.mark.parametrize(
    ("ip", "longest", "every"),
    [
        ("10.1.2.3", "bench", ["bench", "lab", "shared", "corp"]),
        ("10.1.9.9", "lab", ["lab", "shared", "corp"]),
        ("10.200.0.1", "corp", ["corp"]),
        ("8.8.8.8", None, []),
        ("2001:db8:1::5", "v6lab", ["v6lab", "v6"]),
        ("2001:db8:2::5", "v6", ["v6"]),
        ("2001:db9::1", None, []),
        ("::ffff:10.1.2.3", "bench", ["bench", "lab", "shared", "corp"]),
        ("172.16.4.4", "mapped", ["mapped"]),
        ("::ffff:172.16.4.4", "mapped", ["mapped"]),
        ("172.32.0.1", None, []),
    ],
)
def test_longest_and_all(table, ip, longest, every):
    assert table.longest(ip) == longest
    assert table.all(ip) == every
    assert table.longest(ipaddress.ip_address(ip)) == longest
    assert table.all(ipaddress.ip_address(ip)) == every
    assert (ip in table) is (longest is not None)


@pytest.mark.parametrize("ip", ["nope", "10.1.2.300", "", "10.0.0.0/8"])
def test_an_unparsable_address_matches_nothing(table, ip):
    assert table.longest(ip) is None
    assert table.all(ip) == []
    assert ip not in table


def test_only_addresses_are_in_a_table(table):
    assert 167837955 not in table  # an int is not an address
    assert None not in table


def test_the_default_route_and_host_routes():
    t = PrefixTable.build([("0.0.0.0/0", "any4"), ("::/0", "any6"), ("10.0.0.1/32", "host")])
    assert t.all("10.0.0.1") == ["host", "any4"]
    assert t.all("1.2.3.4") == ["any4"]
    assert t.all("2001:db8::1") == ["any6"]
    # a mapped address is both an IPv6 address and an IPv4 one
    assert t.all("::ffff:10.0.0.1") == ["host", "any4", "any6"]


def test_host_bits_are_dropped():
    t = PrefixTable.build([("10.1.2.3/8", "corp")])
    assert t.longest("10.200.0.1") == "corp"
    assert next(iter(t))[0] == ipaddress.ip_network("10.0.0.0/8")


def test_networks_may_be_given_parsed():
    t = PrefixTable.build([(ipaddress.ip_network("10.0.0.0/8"), 1), (" 10.1.0.0/16 ", 2)])
    assert t.all("10.1.0.1") == [2, 1]


@pytest.mark.parametrize("cidr", ["10.0.0.0/33", "nope", "", 42, None])
def test_a_bad_range_is_refused(cidr):
    with pytest.raises(ValueError):
        PrefixTable.build([(cidr, "x")])


def test_a_value_given_twice_for_one_range_is_kept_once():
    t = PrefixTable.build([("10.0.0.0/8", "a"), ("10.0.0.0/8", "a")])
    assert t.all("10.0.0.1") == ["a"]
    assert len(t) == 2


def test_the_table_is_immutable_comparable_and_hashable(table):
    with pytest.raises(AttributeError):
        table._v4 = ()
    again = PrefixTable.build(NETWORKS)
    assert again == table
    assert hash(again) == hash(table)
    assert again != PrefixTable.build(NETWORKS[:-1])
    assert table != "not a table"
    assert repr(table) == "PrefixTable(8 ranges)"
    assert next(iter(table)) == (ipaddress.ip_network("10.0.0.0/8"), "corp")


def test_an_empty_table_matches_nothing():
    t: PrefixTable[str] = PrefixTable()
    assert t.longest("10.0.0.1") is None
    assert t.all("::1") == []
    assert len(t) == 0


def test_all_returns_a_fresh_list(table):
    first = table.all("10.1.2.3")
    first.append("mutated")
    assert table.all("10.1.2.3") == ["bench", "lab", "shared", "corp"]


def test_parse_helpers():
    assert parse_address("2001:DB8::1") == ipaddress.ip_address("2001:db8::1")
    assert parse_address("x") is None
    address = ipaddress.ip_address("10.0.0.1")
    assert parse_address(address) is address
    network = ipaddress.ip_network("10.0.0.0/8")
    assert parse_network(network) is network


def test_thousands_of_ranges_against_a_brute_force_scan():
    rng = random.Random(7)
    entries = []
    for i in range(3000):
        if i % 3:
            length = rng.choice([8, 12, 16, 20, 24, 28, 32])
            address = rng.getrandbits(32)
            net = ipaddress.IPv4Network((address, length), strict=False)
        else:
            length = rng.choice([16, 32, 48, 64, 128])
            address = (0x2001_0DB8 << 96) | rng.getrandbits(96)
            net = ipaddress.IPv6Network((address, length), strict=False)
        entries.append((net, f"n{i % 500}"))
    table = PrefixTable.build(entries)
    probes = [ipaddress.ip_address(rng.getrandbits(32)) for _ in range(300)]
    probes += [net.network_address for net, _ in entries[:300]]
    probes += [net.broadcast_address for net, _ in entries[300:600]]
    probes += [ipaddress.IPv6Address(f"::ffff:{p}") for p in probes[:100] if p.version == 4]
    matched = 0
    for ip in probes:
        expected = brute_all(entries, ip)
        assert table.all(ip) == expected
        assert table.longest(ip) == (expected[0] if expected else None)
        matched += bool(expected)
    assert matched >= 600  # the probes did hit ranges


v4_nets = st.builds(
    lambda a, n: ipaddress.IPv4Network((a, n), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(0, 32),
)
v6_nets = st.builds(
    lambda a, n: ipaddress.IPv6Network((a, n), strict=False),
    st.one_of(
        st.integers(0, 2**128 - 1), st.integers(0, 2**32 - 1).map(lambda x: 0xFFFF << 32 | x)
    ),
    st.integers(0, 128),
)
addresses = st.one_of(
    st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address),
    st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
    st.integers(0, 2**32 - 1).map(lambda x: ipaddress.IPv6Address(0xFFFF << 32 | x)),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.one_of(v4_nets, v6_nets), st.sampled_from("abcde")), max_size=30),
    st.lists(addresses, min_size=1, max_size=10),
)
def test_prefix_table_agrees_with_a_linear_scan(entries, probes):
    table = PrefixTable.build(entries)
    # probe inside the ranges too, not only at random
    probes = probes + [net.network_address for net, _ in entries]
    for ip in probes:
        expected = brute_all(entries, ip)
        assert table.all(ip) == expected
        assert table.longest(ip) == (expected[0] if expected else None)


def _reference(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@pytest.mark.parametrize(
    "text",
    ["10.0.0.1", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5",
     "1..3.4", " 1.2.3.4", "1.2.3.4 ", "١.2.3.4", "1.2.3.4/8", "+1.2.3.4", "-1.2.3.4", "",
     "1.2.3.0x4", "::1", "::ffff:1.2.3.4", "2001:db8::1", "fe80::1%eth0", "2001:db8:::1",
     "[::1]", "1.2.3.4:80", "0000.1.2.3", "1.2.3.²"],
)  # fmt: skip
def test_parse_ip_text_accepts_exactly_what_ipaddress_accepts(text: str) -> None:
    assert parse_ip_text(text) == _reference(text)


@settings(max_examples=400)
@given(
    st.one_of(
        st.text(alphabet="0123456789.", max_size=17),
        st.lists(st.integers(0, 999).map(str), min_size=1, max_size=5).map(".".join),
        st.ip_addresses().map(str),
    )
)
def test_parse_ip_text_agrees_with_ipaddress(text: str) -> None:
    assert parse_ip_text(text) == _reference(text)
