"""Subject identifiers of security events: parse, compare, and the keys that find sessions.

The formats are those of RFC 9493 (``account``, ``email``, ``iss_sub``, ``opaque``,
``phone_number``, ``did``, ``uri``, ``aliases``) and the ones SSF 1.0 adds (``jwt_id``,
``saml_assertion_id``, ``ip-addresses``, ``complex``). `parse_subject` turns a JSON object
into one of the typed identifiers below, in **canonical form**, or raises `SubjectError`
(err ``invalid_request``). Canonical form means two identifiers that denote the same thing
compare equal as values:

- ``email``: the whole address is lowercased. The domain is case-insensitive by RFC 5321
  §2.4. The local part may in theory be case-sensitive, but no common mailbox provider
  treats it so and transmitters differ in the case they send; Juncture treats addresses that
  differ only in case as one subject, so a revocation is never missed over capitalisation.
- ``phone_number``: spaces, dots, hyphens and parentheses are removed (the SSF spec's own
  example is ``+1 206 555 0123``); what is left must be E.164 (``+`` and 2 to 15 digits).
- ``account``: the ``acct:`` scheme and the host are lowercased (RFC 7565).
- ``uri``: the scheme is lowercased. ``did``: kept as sent (DID methods are lowercase).
- ``ip-addresses``: each address in its RFC 5952 text form; the list sorted, duplicates removed.
- ``iss_sub``, ``opaque``, ``jwt_id``, ``saml_assertion_id``: exact strings.
- ``complex``: members ``user``, ``device``, ``session``, ``application``, ``tenant``,
  ``org_unit``, ``group``; other member names are kept when their value is an identifier
  object and ignored otherwise (receivers ignore what they do not understand, SSF "Additional
  fields"). A member is a simple identifier or ``aliases``, never ``complex``.
- ``aliases``: one to 32 identifiers, none of them ``aliases`` or ``complex`` (RFC 9493, "Aliases").

Legacy spellings are read, never written: ``phone`` for ``phone_number`` (the SSF spec's
remove-subject example), ``jwt-id`` for ``jwt_id`` (SSF drafts), ``subject_type`` for
``format`` (Google's RISC transmitter, RISC 1.0 "Compatibility"), and a complex subject without
``format`` (SSF drafts). A format Juncture does not know is a `Proprietary` identifier
("agreed between the parties", SSF "Subject Identifiers in SSF Events"): it compares by its
exact members and yields no lookup key.

**Matching** (SSF "Subject Matching", `matches`): two complex subjects match when, for every member,
either side leaves it out or both are identical; simple subjects match when identical; an
``aliases`` identifier matches when any of its identifiers does. A simple and a complex
subject never match.

**Lookup keys** (`keys`): tuples of strings the service indexes sessions by. A session is a
*candidate* for an event when one of its keys is among the event subject's keys; it is a
*match* when `matches` also holds between the event subject and the session's own subject.

============================  =============================================================
key                           comes from
============================  =============================================================
``("email", address)``        ``email``, at the top level or as the ``user`` member
``("iss_sub", iss, sub)``     ``iss_sub``
``("opaque", id)``            ``opaque`` (at the top level it may name a user or a session:
                              the CAEP session-revoked example uses one for a session id)
``("phone", "+1555…")``       ``phone_number`` / ``phone``
``("account", uri)``          ``account``
``("did", url)``              ``did``
``("uri", uri)``              ``uri``
``("jwt_id", iss, jti)``      ``jwt_id`` (one token, e.g. an access token)
``("saml_assertion_id",       ``saml_assertion_id``
issuer, assertion_id)``
``("ip", address)``           each address of ``ip-addresses``
``("session", id)``           the ``session`` member when it is ``opaque``; any other format
                              gives ``("session", *its key)``, e.g.
                              ``("session", "iss_sub", iss, sub)``
``("device", id)``            the ``device`` member, likewise
``(member, id)``              ``application``, ``tenant``, ``org_unit``, ``group`` and other
                              members, likewise
============================  =============================================================

The ``user`` member of a complex subject gives the plain keys of its identifier (the user is
the principal); an ``aliases`` identifier gives the keys of every identifier in it; a
`Proprietary` identifier gives none.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Collection, Mapping
from typing import Any

import msgspec

from juncture.errors import RequestError

__all__ = [
    "MEMBERS",
    "Account",
    "Aliases",
    "Complex",
    "Did",
    "Email",
    "IpAddresses",
    "IssSub",
    "JwtId",
    "Key",
    "Member",
    "Opaque",
    "PhoneNumber",
    "Proprietary",
    "SamlAssertionId",
    "Simple",
    "Subject",
    "SubjectError",
    "Uri",
    "dump",
    "keys",
    "matches",
    "parse_subject",
]

#: The complex-subject members SSF 1.0 names; Juncture understands each of them.
MEMBERS: tuple[str, ...] = (
    "user",
    "device",
    "session",
    "application",
    "tenant",
    "org_unit",
    "group",
)
MAX_STRING = 2048
MAX_ALIASES = 32
MAX_ADDRESSES = 64
MAX_MEMBERS = 16

#: A lookup key: a kind, then one or more strings (see the module docstring).
Key = tuple[str, ...]

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_PHONE_PUNCTUATION = str.maketrans("", "", " .-()")
_DID = re.compile(r"did:[a-z0-9]+:\S+")
_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):\S+")
_FORMAT = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


class SubjectError(RequestError, ValueError):
    """A subject identifier that is malformed; ``err`` is the RFC 8935 code for it."""

    err = "invalid_request"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class _Id(msgspec.Struct, frozen=True, kw_only=True, tag_field="format"):
    """A subject identifier in canonical form; `dump` gives its wire form."""


class Account(_Id, frozen=True, kw_only=True, tag="account"):
    uri: str


class Email(_Id, frozen=True, kw_only=True, tag="email"):
    email: str


class IssSub(_Id, frozen=True, kw_only=True, tag="iss_sub"):
    iss: str
    sub: str


class Opaque(_Id, frozen=True, kw_only=True, tag="opaque"):
    id: str


class PhoneNumber(_Id, frozen=True, kw_only=True, tag="phone_number"):
    phone_number: str


class Did(_Id, frozen=True, kw_only=True, tag="did"):
    url: str


class Uri(_Id, frozen=True, kw_only=True, tag="uri"):
    uri: str


class JwtId(_Id, frozen=True, kw_only=True, tag="jwt_id"):
    iss: str
    jti: str


class SamlAssertionId(_Id, frozen=True, kw_only=True, tag="saml_assertion_id"):
    issuer: str
    assertion_id: str


class IpAddresses(_Id, frozen=True, kw_only=True, tag="ip-addresses"):
    addresses: tuple[str, ...] = msgspec.field(name="ip-addresses")


class Proprietary(msgspec.Struct, frozen=True, kw_only=True):
    """An identifier in a format Juncture does not know; ``members`` as sent, minus ``format``."""

    format: str
    members: dict[str, Any]

    def __hash__(self) -> int:
        return hash((self.format, _json(self.members)))


Simple = (
    Account
    | Email
    | IssSub
    | Opaque
    | PhoneNumber
    | Did
    | Uri
    | JwtId
    | SamlAssertionId
    | IpAddresses
    | Proprietary
)


class Aliases(_Id, frozen=True, kw_only=True, tag="aliases"):
    """Several identifiers of one subject (RFC 9493), in canonical order."""

    identifiers: tuple[Simple, ...]


Member = Simple | Aliases


class Complex(_Id, frozen=True, kw_only=True, tag="complex"):
    """Several aspects of one principal (SSF "Complex Subject Members"); never empty."""

    user: Member | None = None
    device: Member | None = None
    session: Member | None = None
    application: Member | None = None
    tenant: Member | None = None
    org_unit: Member | None = None
    group: Member | None = None
    #: Members SSF does not name, sorted by name.
    others: tuple[tuple[str, Member], ...] = ()

    def members(self) -> dict[str, Member]:
        """Every member present, by name."""
        found: dict[str, Member] = {}
        for name in MEMBERS:
            value = getattr(self, name)
            if value is not None:
                found[name] = value
        found.update(self.others)
        return found


Subject = Member | Complex


# -- parsing -------------------------------------------------------------------------------


def parse_subject(value: object, *, critical: Collection[str] = ()) -> Subject:
    """Parse a subject identifier object into its canonical typed form.

    ``critical`` is the transmitter's ``critical_subject_members`` (SSF metadata): a complex
    subject holding one of them that Juncture does not understand is refused, as SSF
    "Receiver Subject Processing" requires the event be discarded.

    Raises:
        SubjectError: the identifier is malformed (err ``invalid_request``).
    """
    if not isinstance(value, Mapping):
        raise SubjectError("a subject identifier must be a JSON object")
    fmt = _format_of(value)
    if fmt == "complex":
        return _complex(value, critical)
    return _member(value, fmt, where="subject")


def _format_of(value: Mapping[str, Any]) -> str:
    fmt = value.get("format", value.get("subject_type"))
    if fmt is None and any(name in value for name in MEMBERS):
        return "complex"  # SSF drafts wrote complex subjects without a format
    if not isinstance(fmt, str) or not fmt:
        raise SubjectError("a subject identifier needs a `format` string")
    return fmt


def _complex(value: Mapping[str, Any], critical: Collection[str]) -> Complex:
    known: dict[str, Member] = {}
    others: list[tuple[str, Member]] = []
    for name, member in value.items():
        if name in ("format", "subject_type"):
            continue
        if name in MEMBERS:
            if not isinstance(member, Mapping):
                raise SubjectError(f"complex subject member `{name}` must be an identifier object")
            known[name] = _member(member, _format_of(member), where=f"member `{name}`")
        elif name in critical:
            raise SubjectError(f"critical subject member `{_clip(name)}` is not understood")
        elif isinstance(member, Mapping):
            others.append((name, _member(member, _format_of(member), where=f"member `{name}`")))
        # anything else is an extension field: ignored (SSF "Additional fields")
    if not known and not others:
        raise SubjectError("a complex subject needs at least one member")
    if len(known) + len(others) > MAX_MEMBERS:
        raise SubjectError(f"a complex subject has at most {MAX_MEMBERS} members")
    return Complex(**known, others=tuple(sorted(others, key=lambda item: item[0])))


def _member(value: Mapping[str, Any], fmt: str, *, where: str) -> Member:
    if fmt == "complex":
        raise SubjectError(f"{where}: a complex subject cannot be nested")
    if fmt != "aliases":
        return _simple(value, fmt, where=where)
    listed = value.get("identifiers")
    if not isinstance(listed, list) or not listed:
        raise SubjectError(f"{where}: `aliases` needs a non-empty `identifiers` array")
    if len(listed) > MAX_ALIASES:
        raise SubjectError(f"{where}: `aliases` holds at most {MAX_ALIASES} identifiers")
    identifiers: list[Simple] = []
    for item in listed:
        if not isinstance(item, Mapping):
            raise SubjectError(f"{where}: each of `identifiers` must be an identifier object")
        inner = _format_of(item)
        if inner in ("aliases", "complex"):
            raise SubjectError(f"{where}: `aliases` cannot hold `{inner}` identifiers")
        identifiers.append(_simple(item, inner, where=where))
    unique = {_identity(i): i for i in identifiers}
    return Aliases(identifiers=tuple(unique[k] for k in sorted(unique)))


def _simple(value: Mapping[str, Any], fmt: str, *, where: str) -> Simple:
    at = f"{where} (format `{_clip(fmt)}`)"
    match fmt:
        case "email":
            return Email(email=_email(_string(value, "email", at), at))
        case "iss_sub":
            return IssSub(iss=_string(value, "iss", at), sub=_string(value, "sub", at))
        case "opaque":
            return Opaque(id=_string(value, "id", at))
        case "phone_number" | "phone":
            number = _string(value, "phone_number", at).translate(_PHONE_PUNCTUATION)
            if not _E164.fullmatch(number):
                raise SubjectError(f"{at}: `phone_number` must be an E.164 number")
            return PhoneNumber(phone_number=number)
        case "account":
            return Account(uri=_account(_string(value, "uri", at), at))
        case "did":
            url = _string(value, "url", at)
            if not _DID.fullmatch(url):
                raise SubjectError(f"{at}: `url` must be a DID (`did:<method>:<id>`)")
            return Did(url=url)
        case "uri":
            uri = _string(value, "uri", at)
            found = _URI.fullmatch(uri)
            if found is None:
                raise SubjectError(f"{at}: `uri` must be an absolute URI")
            return Uri(uri=found.group(1).lower() + uri[len(found.group(1)) :])
        case "jwt_id" | "jwt-id":
            return JwtId(iss=_string(value, "iss", at), jti=_string(value, "jti", at))
        case "saml_assertion_id":
            return SamlAssertionId(
                issuer=_string(value, "issuer", at),
                assertion_id=_string(value, "assertion_id", at),
            )
        case "ip-addresses":
            return IpAddresses(addresses=_addresses(value.get("ip-addresses"), at))
        case _:
            if not _FORMAT.fullmatch(fmt):
                raise SubjectError(f"{where}: `format` must be a short identifier format name")
            members = {k: v for k, v in value.items() if k not in ("format", "subject_type")}
            return Proprietary(format=fmt, members=members)


def _string(value: Mapping[str, Any], name: str, at: str) -> str:
    text = value.get(name)
    if not isinstance(text, str) or not text:
        raise SubjectError(f"{at}: `{name}` must be a non-empty string")
    if len(text) > MAX_STRING or not text.isprintable():
        raise SubjectError(f"{at}: `{name}` is too long or holds control characters")
    return text


def _email(address: str, at: str) -> str:
    local, sep, domain = address.rpartition("@")
    if not sep or not local or not domain or any(c.isspace() for c in address):
        raise SubjectError(f"{at}: `email` must be an address `local@domain`")
    return address.lower()


def _account(uri: str, at: str) -> str:
    scheme, colon, rest = uri.partition(":")
    user, sep, host = rest.rpartition("@")
    if scheme.lower() != "acct" or not colon or not sep or not user or not host:
        raise SubjectError(f"{at}: `uri` must be an `acct:user@host` URI")
    return f"acct:{user}@{host.lower()}"


def _addresses(value: object, at: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise SubjectError(f"{at}: `ip-addresses` must be a non-empty array of strings")
    if len(value) > MAX_ADDRESSES:
        raise SubjectError(f"{at}: `ip-addresses` holds at most {MAX_ADDRESSES} addresses")
    found: set[str] = set()
    for item in value:
        try:
            if not isinstance(item, str):
                raise ValueError(item)
            found.add(str(ipaddress.ip_address(item)))
        except ValueError:
            raise SubjectError(f"{at}: `{_clip(str(item))}` is not an IP address") from None
    return tuple(sorted(found))


def _clip(text: str) -> str:
    return text if len(text) <= 64 else text[:61] + "..."


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _identity(identifier: Simple) -> tuple[str, ...]:
    """A total, comparable identity of a canonical simple identifier (orders aliases)."""
    if isinstance(identifier, Proprietary):
        return ("~" + identifier.format, _json(identifier.members))
    return (str(type(identifier).__struct_config__.tag), *_values(identifier))


def _values(identifier: msgspec.Struct) -> tuple[str, ...]:
    values: list[str] = []
    for name in identifier.__struct_fields__:
        value = getattr(identifier, name)
        values.extend(value if isinstance(value, tuple) else (value,))
    return tuple(values)


# -- matching and keys ---------------------------------------------------------------------


def matches(a: Subject, b: Subject) -> bool:
    """Whether two canonical subjects match under the SSF rules (module docstring)."""
    if isinstance(a, Complex) and isinstance(b, Complex):
        ma, mb = a.members(), b.members()
        return all(_same(ma[name], mb[name]) for name in ma.keys() & mb.keys())
    if isinstance(a, Complex) or isinstance(b, Complex):
        return False
    return _same(a, b)


def _same(a: Member, b: Member) -> bool:
    xs = a.identifiers if isinstance(a, Aliases) else (a,)
    ys = b.identifiers if isinstance(b, Aliases) else (b,)
    return any(x == y for x in xs for y in ys)


def keys(subject: Subject) -> set[Key]:
    """The lookup keys of a subject (the table in the module docstring)."""
    if not isinstance(subject, Complex):
        return _member_keys(subject)
    found: set[Key] = set()
    for name, member in subject.members().items():
        if name == "user":
            found |= _member_keys(member)
            continue
        for key in _member_keys(member):
            found.add((name, key[1]) if key[0] == "opaque" else (name, *key))
    return found


def _member_keys(member: Member) -> set[Key]:
    if isinstance(member, Aliases):
        return {key for identifier in member.identifiers for key in _simple_keys(identifier)}
    return _simple_keys(member)


def _simple_keys(identifier: Simple) -> set[Key]:
    match identifier:
        case Email(email=email):
            return {("email", email)}
        case IssSub(iss=iss, sub=sub):
            return {("iss_sub", iss, sub)}
        case Opaque(id=ident):
            return {("opaque", ident)}
        case PhoneNumber(phone_number=number):
            return {("phone", number)}
        case Account(uri=uri):
            return {("account", uri)}
        case Did(url=url):
            return {("did", url)}
        case Uri(uri=uri):
            return {("uri", uri)}
        case JwtId(iss=iss, jti=jti):
            return {("jwt_id", iss, jti)}
        case SamlAssertionId(issuer=issuer, assertion_id=assertion_id):
            return {("saml_assertion_id", issuer, assertion_id)}
        case IpAddresses(addresses=addresses):
            return {("ip", address) for address in addresses}
        case _:
            return set()  # a proprietary format: compared by `matches` only


def dump(subject: Subject) -> dict[str, Any]:
    """The wire form (a JSON object) of a subject, as ``sub_id`` carries it."""
    if isinstance(subject, Complex):
        out: dict[str, Any] = {"format": "complex"}
        for name, member in subject.members().items():
            out[name] = dump(member)
        return out
    if isinstance(subject, Aliases):
        return {"format": "aliases", "identifiers": [dump(i) for i in subject.identifiers]}
    if isinstance(subject, Proprietary):
        return {"format": subject.format, **subject.members}
    if isinstance(subject, IpAddresses):
        return {"format": "ip-addresses", "ip-addresses": list(subject.addresses)}
    out = msgspec.to_builtins(subject)
    assert isinstance(out, dict)
    return out
