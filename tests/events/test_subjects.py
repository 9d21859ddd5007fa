"""Subject identifiers: every format parsed to its canonical form, matched, and indexed."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from juncture.events.subjects import (
    Account,
    Aliases,
    Complex,
    Did,
    Email,
    IpAddresses,
    IssSub,
    JwtId,
    Opaque,
    PhoneNumber,
    Proprietary,
    SamlAssertionId,
    SubjectError,
    Uri,
    dump,
    keys,
    matches,
    parse_subject,
)

ISS = "https://idp.example.com/"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def bad(value: Any, *, critical: tuple[str, ...] = ()) -> str:
    with pytest.raises(SubjectError) as caught:
        parse_subject(value, critical=critical)
    assert caught.value.err == "invalid_request"
    return caught.value.description


# -- each format ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "parsed"),
    [
        (
            {"format": "account", "uri": "acct:Alice@Example.COM"},
            Account(uri="acct:Alice@example.com"),
        ),
        ({"format": "account", "uri": "ACCT:bob@x.org"}, Account(uri="acct:bob@x.org")),
        ({"format": "email", "email": "Alice@Example.COM"}, Email(email="alice@example.com")),
        ({"format": "iss_sub", "iss": ISS, "sub": "Alice"}, IssSub(iss=ISS, sub="Alice")),
        ({"format": "opaque", "id": "11112222333344445555"}, Opaque(id="11112222333344445555")),
        (
            {"format": "phone_number", "phone_number": "+12065550100"},
            PhoneNumber(phone_number="+12065550100"),
        ),
        (
            {"format": "phone_number", "phone_number": "+1 (206) 555-0100"},
            PhoneNumber(phone_number="+12065550100"),
        ),
        (
            {"format": "phone", "phone_number": "+1 206.555.0100"},
            PhoneNumber(phone_number="+12065550100"),
        ),
        (
            {"format": "did", "url": "did:example:123456"},
            Did(url="did:example:123456"),
        ),
        (
            {"format": "did", "url": "did:example:123456/did/url/path?versionId=1"},
            Did(url="did:example:123456/did/url/path?versionId=1"),
        ),
        (
            {"format": "uri", "uri": "HTTPS://example.com/User/1"},
            Uri(uri="https://example.com/User/1"),
        ),
        (
            {"format": "jwt_id", "iss": ISS, "jti": "B70BA622"},
            JwtId(iss=ISS, jti="B70BA622"),
        ),
        ({"format": "jwt-id", "iss": ISS, "jti": "B70BA622"}, JwtId(iss=ISS, jti="B70BA622")),
        (
            {"format": "saml_assertion_id", "issuer": ISS, "assertion_id": "_8e8dc5f69a"},
            SamlAssertionId(issuer=ISS, assertion_id="_8e8dc5f69a"),
        ),
        (
            {
                "format": "ip-addresses",
                "ip-addresses": ["10.29.37.75", "2001:0db8:0000:0000:0000:8a2e:0370:7334"],
            },
            IpAddresses(addresses=("10.29.37.75", "2001:db8::8a2e:370:7334")),
        ),
        (
            {"format": "ip-addresses", "ip-addresses": ["10.0.0.2", "10.0.0.1", "10.0.0.2"]},
            IpAddresses(addresses=("10.0.0.1", "10.0.0.2")),
        ),
        ({"subject_type": "email", "email": "a@x.org"}, Email(email="a@x.org")),
        (
            {"format": "email", "email": "a@x.org", "unknown": "ignored"},
            Email(email="a@x.org"),
        ),
        (
            {"format": "catalog_item", "catalog_id": "c0384/winter/2354122"},
            Proprietary(format="catalog_item", members={"catalog_id": "c0384/winter/2354122"}),
        ),
    ],
)
def test_each_simple_format_parses_to_its_canonical_form(wire: dict[str, Any], parsed: Any):
    assert parse_subject(wire) == parsed


@pytest.mark.parametrize(
    "wire",
    [
        None,
        "alice@example.com",
        [],
        {},
        {"format": ""},
        {"format": 7},
        {"format": "no spaces please", "x": 1},
        {"format": "email"},
        {"format": "email", "email": ""},
        {"format": "email", "email": 7},
        {"format": "email", "email": "alice"},
        {"format": "email", "email": "@example.com"},
        {"format": "email", "email": "alice@"},
        {"format": "email", "email": "al ice@example.com"},
        {"format": "email", "email": "a@x.org\n"},
        {"format": "email", "email": "a" * 3000 + "@x.org"},
        {"format": "iss_sub", "iss": ISS},
        {"format": "iss_sub", "sub": "alice"},
        {"format": "opaque"},
        {"format": "opaque", "id": ["x"]},
        {"format": "phone_number", "phone_number": "12065550100"},
        {"format": "phone_number", "phone_number": "+0123"},
        {"format": "phone_number", "phone_number": "+1206555010012345"},
        {"format": "phone_number", "phone_number": "+1-206-CALL-NOW"},
        {"format": "phone", "phone": "+12065550100"},
        {"format": "account", "uri": "mailto:alice@example.com"},
        {"format": "account", "uri": "acct:alice"},
        {"format": "account", "uri": "acct:@example.com"},
        {"format": "did", "url": "https://example.com"},
        {"format": "did", "url": "did:Example:1"},
        {"format": "uri", "uri": "no-scheme"},
        {"format": "uri", "uri": "https://exa mple.com"},
        {"format": "jwt_id", "iss": ISS},
        {"format": "saml_assertion_id", "assertion_id": "_1"},
        {"format": "ip-addresses", "ip-addresses": []},
        {"format": "ip-addresses", "ip-addresses": "10.0.0.1"},
        {"format": "ip-addresses", "ip-addresses": ["10.0.0.300"]},
        {"format": "ip-addresses", "ip-addresses": [10]},
        {"format": "ip-addresses", "ip-addresses": ["10.0.0.1"] * 65},
    ],
)
def test_malformed_identifiers_are_refused(wire: Any):
    bad(wire)


# -- aliases and complex -------------------------------------------------------------------


def test_aliases_parse_each_identifier_in_a_canonical_order():
    wire = {
        "format": "aliases",
        "identifiers": [
            {"format": "email", "email": "User@Example.com"},
            {"format": "phone_number", "phone_number": "+12065550100"},
            {"format": "email", "email": "user@example.com"},
        ],
    }
    parsed = parse_subject(wire)
    assert parsed == Aliases(
        identifiers=(Email(email="user@example.com"), PhoneNumber(phone_number="+12065550100"))
    )
    reordered = {**wire, "identifiers": list(reversed(wire["identifiers"]))}
    assert parse_subject(reordered) == parsed


@pytest.mark.parametrize(
    "wire",
    [
        {"format": "aliases"},
        {"format": "aliases", "identifiers": []},
        {"format": "aliases", "identifiers": ["a@x.org"]},
        {"format": "aliases", "identifiers": [{"format": "aliases", "identifiers": []}]},
        {
            "format": "aliases",
            "identifiers": [{"format": "complex", "user": {"format": "opaque", "id": "1"}}],
        },
        {
            "format": "aliases",
            "identifiers": [{"format": "opaque", "id": str(i)} for i in range(33)],
        },
    ],
)
def test_malformed_aliases_are_refused(wire: Any):
    bad(wire)


def test_a_complex_subject_parses_every_member():
    wire = {
        "format": "complex",
        "user": {"format": "iss_sub", "iss": ISS, "sub": "alice"},
        "device": {"format": "iss_sub", "iss": ISS, "sub": "e9297990"},
        "session": {"format": "opaque", "id": "s-7f3"},
        "application": {"format": "opaque", "id": "app-1"},
        "tenant": {"format": "opaque", "id": "123456789"},
        "org_unit": {"format": "opaque", "id": "ou-9"},
        "group": {"format": "opaque", "id": "g-2"},
    }
    parsed = parse_subject(wire)
    assert isinstance(parsed, Complex)
    assert parsed.user == IssSub(iss=ISS, sub="alice")
    assert set(parsed.members()) == set(wire) - {"format"}
    assert dump(parsed) == wire


def test_other_members_are_kept_when_identifiers_and_ignored_otherwise():
    parsed = parse_subject(
        {
            "format": "complex",
            "user": {"format": "email", "email": "a@x.org"},
            "region": {"format": "opaque", "id": "eu"},
            "note": "an extension field",
        }
    )
    assert isinstance(parsed, Complex)
    assert parsed.others == (("region", Opaque(id="eu")),)
    assert set(parsed.members()) == {"user", "region"}


def test_a_complex_subject_without_format_is_read_as_sent_by_ssf_drafts():
    parsed = parse_subject(
        {
            "user": {"format": "iss_sub", "iss": ISS, "sub": "jane"},
            "device": {"format": "iss_sub", "iss": ISS, "sub": "d-1"},
        }
    )
    assert parsed == Complex(user=IssSub(iss=ISS, sub="jane"), device=IssSub(iss=ISS, sub="d-1"))


def test_a_complex_member_may_be_aliases():
    parsed = parse_subject(
        {
            "format": "complex",
            "user": {
                "format": "aliases",
                "identifiers": [{"format": "email", "email": "a@x.org"}],
            },
        }
    )
    assert isinstance(parsed, Complex)
    assert parsed.user == Aliases(identifiers=(Email(email="a@x.org"),))


@pytest.mark.parametrize(
    "wire",
    [
        {"format": "complex"},
        {"format": "complex", "note": "no identifiers at all"},
        {"format": "complex", "user": "alice"},
        {"format": "complex", "user": {"format": "email"}},
        {"format": "complex", "region": {"format": "email", "email": "x"}},
        {"format": "complex", "user": {"format": "complex", "session": {"format": "opaque"}}},
        {"format": "complex", "user": {"session": {"format": "opaque", "id": "s"}}},
    ],
)
def test_malformed_complex_subjects_are_refused(wire: Any):
    bad(wire)


def test_a_complex_subject_has_at_most_16_members():
    members = {f"m{i}": {"format": "opaque", "id": str(i)} for i in range(17)}
    assert "at most 16" in bad({"format": "complex", **members})


def test_proprietary_identifiers_inside_aliases_round_trip():
    wire = {
        "format": "aliases",
        "identifiers": [
            {"format": "catalog_item", "catalog_id": "c1"},
            {"format": "opaque", "id": "x"},
        ],
    }
    parsed = parse_subject(wire)
    assert parse_subject(dump(parsed)) == parsed
    assert keys(parsed) == {("opaque", "x")}


def test_a_critical_member_not_understood_is_refused():
    wire = {
        "format": "complex",
        "user": {"format": "email", "email": "a@x.org"},
        "region": {"format": "opaque", "id": "eu"},
    }
    assert "region" in bad(wire, critical=("region",))
    assert "region" in bad({**wire, "region": "eu"}, critical=("region",))
    parse_subject(wire, critical=("user", "tenant"))  # understood, or absent


# -- matching ------------------------------------------------------------------------------

ALICE = {"format": "iss_sub", "iss": ISS, "sub": "alice"}
BOB = {"format": "iss_sub", "iss": ISS, "sub": "bob"}
S1 = {"format": "opaque", "id": "s-1"}
S2 = {"format": "opaque", "id": "s-2"}
T1 = {"format": "opaque", "id": "tenant-1"}


def c(**members: Any) -> Any:
    return parse_subject({"format": "complex", **members})


def p(wire: dict[str, Any]) -> Any:
    return parse_subject(wire)


def test_simple_subjects_match_when_identical():
    assert matches(p(ALICE), p(ALICE))
    assert not matches(p(ALICE), p(BOB))
    assert matches(
        p({"format": "email", "email": "Alice@Example.com"}),
        p({"format": "email", "email": "alice@example.COM"}),
    )
    assert not matches(p({"format": "opaque", "id": "alice"}), p(ALICE))
    assert matches(
        p({"format": "phone", "phone_number": "+1 206 555 0100"}),
        p({"format": "phone_number", "phone_number": "+12065550100"}),
    )


def test_aliases_match_when_any_identifier_does():
    aliases = p(
        {"format": "aliases", "identifiers": [BOB, {"format": "email", "email": "a@x.org"}]}
    )
    assert matches(aliases, p({"format": "email", "email": "A@x.org"}))
    assert matches(p(BOB), aliases)
    assert not matches(aliases, p(ALICE))
    other = p({"format": "aliases", "identifiers": [ALICE, BOB]})
    assert matches(aliases, other)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"user": ALICE}, {"user": ALICE}, True),
        ({"user": ALICE}, {"user": BOB}, False),
        ({"user": ALICE}, {"user": ALICE, "session": S1}, True),  # a leaves session out
        ({"user": ALICE, "session": S1}, {"user": ALICE}, True),  # b leaves it out
        ({"user": ALICE, "session": S1}, {"user": ALICE, "session": S2}, False),
        ({"user": ALICE, "session": S1}, {"user": BOB, "session": S1}, False),
        ({"tenant": T1}, {"user": ALICE}, True),  # nothing in common: SSF says match
        ({"user": ALICE, "tenant": T1}, {"user": ALICE, "session": S1}, True),
        ({"session": S1}, {"session": S1, "device": BOB}, True),
        ({"user": ALICE, "region": T1}, {"user": ALICE, "region": S1}, False),  # others count
    ],
)
def test_complex_subjects_match_member_by_member(
    a: dict[str, Any], b: dict[str, Any], expected: bool
):
    assert matches(c(**a), c(**b)) is expected
    assert matches(c(**b), c(**a)) is expected


def test_a_simple_and_a_complex_subject_never_match():
    assert not matches(p(ALICE), c(user=ALICE))
    assert not matches(c(user=ALICE), p(ALICE))


def test_a_complex_member_matches_through_aliases():
    aliases = {"format": "aliases", "identifiers": [ALICE, {"format": "email", "email": "a@x.org"}]}
    assert matches(c(user=aliases), c(user={"format": "email", "email": "A@X.org"}))


def test_proprietary_identifiers_match_by_exact_members():
    a = p({"format": "catalog_item", "catalog_id": "c1", "extra": [1]})
    assert matches(a, p({"format": "catalog_item", "extra": [1], "catalog_id": "c1"}))
    assert not matches(a, p({"format": "catalog_item", "catalog_id": "c2", "extra": [1]}))
    assert not matches(a, p({"format": "other_item", "catalog_id": "c1", "extra": [1]}))
    assert hash(a) == hash(p({"format": "catalog_item", "extra": [1], "catalog_id": "c1"}))


# -- keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ({"format": "email", "email": "Alice@Example.com"}, {("email", "alice@example.com")}),
        (ALICE, {("iss_sub", ISS, "alice")}),
        (S1, {("opaque", "s-1")}),
        ({"format": "phone", "phone_number": "+1 555 0100"}, {("phone", "+15550100")}),
        ({"format": "account", "uri": "acct:a@X.org"}, {("account", "acct:a@x.org")}),
        ({"format": "did", "url": "did:web:x.org"}, {("did", "did:web:x.org")}),
        ({"format": "uri", "uri": "urn:x:1"}, {("uri", "urn:x:1")}),
        ({"format": "jwt_id", "iss": ISS, "jti": "j1"}, {("jwt_id", ISS, "j1")}),
        (
            {"format": "saml_assertion_id", "issuer": ISS, "assertion_id": "_1"},
            {("saml_assertion_id", ISS, "_1")},
        ),
        (
            {"format": "ip-addresses", "ip-addresses": ["10.0.0.1", "::1"]},
            {("ip", "10.0.0.1"), ("ip", "::1")},
        ),
        (
            {"format": "aliases", "identifiers": [ALICE, {"format": "email", "email": "a@x.org"}]},
            {("iss_sub", ISS, "alice"), ("email", "a@x.org")},
        ),
        ({"format": "catalog_item", "catalog_id": "c1"}, set()),
        (
            {
                "format": "complex",
                "user": {"format": "email", "email": "a@x.org"},
                "session": S1,
                "device": {"format": "opaque", "id": "d-1"},
                "tenant": T1,
            },
            {
                ("email", "a@x.org"),
                ("session", "s-1"),
                ("device", "d-1"),
                ("tenant", "tenant-1"),
            },
        ),
        (
            {"format": "complex", "user": ALICE, "device": BOB, "group": S2},
            {("iss_sub", ISS, "alice"), ("device", "iss_sub", ISS, "bob"), ("group", "s-2")},
        ),
        (
            {"format": "complex", "session": {"format": "aliases", "identifiers": [S1, S2]}},
            {("session", "s-1"), ("session", "s-2")},
        ),
        (
            {"format": "complex", "region": T1},
            {("region", "tenant-1")},
        ),
    ],
)
def test_keys_follow_the_table(wire: dict[str, Any], expected: set[tuple[str, ...]]):
    assert keys(parse_subject(wire)) == expected


# -- round trip ----------------------------------------------------------------------------

_text = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12
)
_simple = st.one_of(
    st.builds(lambda t: {"format": "opaque", "id": t}, _text),
    st.builds(lambda a, b: {"format": "iss_sub", "iss": a, "sub": b}, _text, _text),
    st.builds(
        lambda a, b: {"format": "email", "email": f"{a}@{b}".replace(" ", "")},
        st.from_regex(r"[A-Za-z0-9._%+-]{1,10}", fullmatch=True),
        st.from_regex(r"[A-Za-z0-9-]{1,10}\.[a-z]{2,4}", fullmatch=True),
    ),
    st.builds(
        lambda n: {"format": "phone_number", "phone_number": f"+{n}"},
        st.integers(10, 10**14),
    ),
    st.builds(lambda a, b: {"format": "jwt_id", "iss": a, "jti": b}, _text, _text),
    st.builds(
        lambda ips: {"format": "ip-addresses", "ip-addresses": ips},
        st.lists(st.ip_addresses().map(str), min_size=1, max_size=4),
    ),
)
_member = st.one_of(
    _simple,
    st.builds(
        lambda ids: {"format": "aliases", "identifiers": ids},
        st.lists(_simple, min_size=1, max_size=3),
    ),
)
_subject = st.one_of(
    _member,
    st.dictionaries(
        st.sampled_from(["user", "device", "session", "tenant", "group", "extra"]),
        _member,
        min_size=1,
    ).map(lambda members: {"format": "complex", **members}),
)


@SETTINGS
@given(_subject)
def test_dump_then_parse_is_the_identity_on_canonical_subjects(wire: dict[str, Any]):
    subject = parse_subject(wire)
    assert parse_subject(dump(subject)) == subject
    assert matches(subject, subject)
    assert keys(parse_subject(dump(subject))) == keys(subject)


@SETTINGS
@given(_subject, _subject)
def test_matching_is_symmetric(a: dict[str, Any], b: dict[str, Any]):
    assert matches(parse_subject(a), parse_subject(b)) is matches(
        parse_subject(b), parse_subject(a)
    )
