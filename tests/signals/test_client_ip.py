"""The client IP: peer, X-Forwarded-For and Forwarded, believed through trusted proxies only."""

from __future__ import annotations

import ipaddress

import pytest

from juncture.signals.client_ip import (
    MAX_HOPS,
    ClientIP,
    canonical,
    parse_forwarded,
    parse_ip,
    parse_node,
    parse_x_forwarded_for,
    reported_ip,
)

ip = ipaddress.ip_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", "192.0.2.1"),
        (" 192.0.2.1 ", "192.0.2.1"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("::ffff:192.0.2.1", "192.0.2.1"),  # a dual-stack socket's IPv4 client
        ("::1", "::1"),
        ("192.0.2.300", None),
        ("192.0.2.1:80", None),
        ("[2001:db8::1]", None),
        ("fe80::1%eth0", None),  # a zone names the sender's interface, not an address
        ("unknown", None),
        ("", None),
        ("1" * 65, None),
    ],
)
def test_parse_ip(text, expected):
    parsed = parse_ip(text)
    assert (str(parsed) if parsed is not None else None) == expected


def test_canonical_keeps_plain_addresses():
    assert canonical(ip("2001:db8::1")) == ip("2001:db8::1")
    assert canonical(ip("10.0.0.1")) == ip("10.0.0.1")
    assert canonical(ip("::ffff:10.0.0.1")) == ip("10.0.0.1")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8::7", "2001:db8::7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("203.0.113.7:443", None),
        ("203.0.113.7, 10.0.0.1", None),
        ("[2001:db8::7]", None),
        ("not an ip", None),
        ("", None),
        (None, None),
        (3405803783, None),  # an int is not a reported address
        (["203.0.113.7"], None),
    ],
)
def test_reported_ip_is_validated_and_canonical(value, expected):
    parsed = reported_ip(value)
    assert (str(parsed) if parsed is not None else None) == expected


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ("192.0.2.43", "192.0.2.43"),
        ('"192.0.2.43:47011"', "192.0.2.43"),
        ("192.0.2.43:47011", "192.0.2.43"),
        ('"[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
        ('"[2001:db8:cafe::17]"', "2001:db8:cafe::17"),
        ("[2001:db8::1]:_port", "2001:db8::1"),  # an obfuscated port is still a port
        ("2001:db8::1", "2001:db8::1"),  # unbracketed, as some proxies write it
        (' " 192.0.2.1 " ', "192.0.2.1"),
        ("unknown", None),
        ('"unknown"', None),
        ("_hidden", None),
        ('"_SEVKISEK"', None),
        ("[2001:db8::1", None),
        ("[2001:db8::1]x", None),
        ("[2001:db8::1]:", None),
        ("[192.0.2.1]", None),  # brackets are for IPv6
        ("192.0.2.1:http", None),
        ("192.0.2.1:123456", None),
        ("2001:db8::1:123456", None),
        ("::ffff:192.0.2.1:80", None),
        ('""', None),
        ("", None),
        ("x" * 80, None),
    ],
)
def test_parse_node(node, expected):
    parsed = parse_node(node)
    assert (str(parsed) if parsed is not None else None) == expected


def test_parse_forwarded():
    assert parse_forwarded(
        [
            'for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711"',
            "for=unknown",
        ]
    ) == ["192.0.2.60", '"[2001:db8:cafe::17]:4711"', "unknown"]
    # a comma or semicolon inside a quoted value does not split
    assert parse_forwarded(['for="198.51.100.1";host="a,b;c", for=198.51.100.2']) == [
        '"198.51.100.1"',
        "198.51.100.2",
    ]
    assert parse_forwarded([r'for="198.51.100.1";x="a\"b,c"']) == ['"198.51.100.1"']
    # an element with no `for`, two of them, or a malformed parameter is an unknown hop
    assert parse_forwarded(["proto=https", "for=1.1.1.1;for=2.2.2.2", "for=1.1.1.1;junk"]) == [
        None,
        None,
        None,
    ]
    assert parse_forwarded(["for=1.1.1.1;;", " , ,for=2.2.2.2", ""]) == ["1.1.1.1", "2.2.2.2"]
    assert parse_forwarded(['"for"=1.1.1.1']) == [None]


def test_parse_x_forwarded_for():
    assert parse_x_forwarded_for(["203.0.113.1, 10.0.0.2", " ,10.0.0.3,"]) == [
        "203.0.113.1",
        " 10.0.0.2",
        "10.0.0.3",
    ]


PROXIES = ("10.0.0.0/8", "2001:db8:ffff::/48")


@pytest.fixture
def client() -> ClientIP:
    return ClientIP(PROXIES)


def resolved(client: ClientIP, peer, **headers):
    found = client.resolve(peer, **headers)
    return str(found) if found is not None else None


def test_without_trusted_proxies_the_peer_is_the_client():
    client = ClientIP()
    assert resolved(client, "198.51.100.9", x_forwarded_for=["203.0.113.1"]) == "198.51.100.9"


def test_forged_x_forwarded_for_from_an_untrusted_peer_is_ignored(client):
    forged = {"x_forwarded_for": ["10.0.0.1"], "forwarded": ["for=10.0.0.1"]}
    assert resolved(client, "198.51.100.9", **forged) == "198.51.100.9"


def test_a_trusted_proxy_forwards_the_client(client):
    assert resolved(client, "10.0.0.5", x_forwarded_for=["203.0.113.1"]) == "203.0.113.1"
    assert (
        resolved(client, "10.0.0.5", x_forwarded_for=["203.0.113.1, 10.1.1.1", "10.2.2.2"])
        == "203.0.113.1"
    )


def test_what_the_client_wrote_left_of_its_own_address_is_not_believed(client):
    # the client sent `X-Forwarded-For: 1.1.1.1`; the proxy appended the real address
    assert resolved(client, "10.0.0.5", x_forwarded_for=["1.1.1.1, 203.0.113.1"]) == ("203.0.113.1")
    # even a forged trusted-looking address on the left is never reached
    assert resolved(client, "10.0.0.5", x_forwarded_for=["10.9.9.9, 203.0.113.1"]) == (
        "203.0.113.1"
    )


@pytest.mark.parametrize("hop", ["unknown", "_hidden", "garbage", "203.0.113.300", '"[::1'])
def test_an_unparsable_hop_makes_the_client_unknown(client, hop):
    # the proxy could not tell who its client was: never fall back to the proxy or a guess
    assert resolved(client, "10.0.0.5", x_forwarded_for=[f"203.0.113.1, {hop}"]) is None
    assert resolved(client, "10.0.0.5", x_forwarded_for=[f"{hop}, 10.1.1.1"]) is None
    # left of a good untrusted hop it does not matter: it is never reached
    assert resolved(client, "10.0.0.5", x_forwarded_for=[f"{hop}, 203.0.113.1"]) == "203.0.113.1"


def test_empty_items_of_x_forwarded_for_are_skipped(client):
    assert resolved(client, "10.0.0.5", x_forwarded_for=["203.0.113.1, ", ""]) == "203.0.113.1"


def test_a_request_from_the_proxy_itself_is_the_proxy(client):
    assert resolved(client, "10.0.0.5") == "10.0.0.5"
    assert resolved(client, "10.0.0.5", x_forwarded_for=[]) == "10.0.0.5"
    # every hop a trusted proxy: the left-most is where the request came from
    assert resolved(client, "10.0.0.5", x_forwarded_for=["10.3.3.3, 10.4.4.4"]) == "10.3.3.3"


def test_too_many_hops_make_the_client_unknown(client):
    hops = ", ".join(f"10.0.0.{i}" for i in range(MAX_HOPS + 1))
    assert resolved(client, "10.0.0.5", x_forwarded_for=[hops]) is None
    hops = ", ".join(["203.0.113.1"] + [f"10.0.0.{i}" for i in range(MAX_HOPS - 1)])
    assert resolved(client, "10.0.0.5", x_forwarded_for=[hops]) == "203.0.113.1"


@pytest.mark.parametrize("peer", [None, "", "unix:/run/juncture.sock", "10.0.0.5:8080"])
def test_no_peer_address_means_no_client_ip(client, peer):
    assert resolved(client, peer, x_forwarded_for=["203.0.113.1"]) is None


def test_ipv6_peer_proxies_and_clients(client):
    assert (
        resolved(client, "2001:db8:ffff::1", x_forwarded_for=["2001:db8:1::7, 2001:db8:ffff::2"])
        == "2001:db8:1::7"
    )
    assert resolved(client, "2001:db8:1::1", x_forwarded_for=["203.0.113.1"]) == "2001:db8:1::1"


def test_a_mapped_peer_is_the_ipv4_proxy(client):
    assert resolved(client, "::ffff:10.0.0.5", x_forwarded_for=["203.0.113.1"]) == "203.0.113.1"
    assert resolved(client, "::ffff:198.51.100.9") == "198.51.100.9"


def test_forwarded_is_read_only_when_configured(client):
    both = {
        "forwarded": ['for="[2001:db8:cafe::17]:4711"'],
        "x_forwarded_for": ["203.0.113.1"],
    }
    assert resolved(client, "10.0.0.5", forwarded=both["forwarded"]) == "10.0.0.5"
    assert resolved(client, "10.0.0.5", **both) == "203.0.113.1"
    rfc = ClientIP(PROXIES, headers=("forwarded",))
    assert resolved(rfc, "10.0.0.5", **both) == "2001:db8:cafe::17"
    assert resolved(rfc, "10.0.0.5", x_forwarded_for=["203.0.113.1"]) == "10.0.0.5"
    either = ClientIP(PROXIES, headers=("forwarded", "x-forwarded-for"))
    assert resolved(either, "10.0.0.5", **both) == "2001:db8:cafe::17"
    assert resolved(either, "10.0.0.5", x_forwarded_for=["203.0.113.1"]) == "203.0.113.1"


def test_forwarded_hops_right_to_left():
    rfc = ClientIP(PROXIES, headers=("forwarded",))
    header = ['for=198.51.100.1, for="203.0.113.1:1234";proto=https', "for=10.1.1.1;by=10.0.0.5"]
    assert resolved(rfc, "10.0.0.5", forwarded=header) == "203.0.113.1"
    assert resolved(rfc, "10.0.0.5", forwarded=["for=_gazonk"]) is None
    assert resolved(rfc, "10.0.0.5", forwarded=["for=203.0.113.1, proto=https"]) is None


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match=r"trusted proxy `10\.0\.0\.0/33` is not a valid"):
        ClientIP(["10.0.0.0/33"])
    with pytest.raises(ValueError, match="unknown forwarding header `x-real-ip`"):
        ClientIP(headers=("x-real-ip",))  # type: ignore[arg-type]
