"""CEL source -> the small syntax tree: node shapes, literals, limits and syntax errors."""

from __future__ import annotations

import pytest

from juncture.policy import cel_ast
from juncture.policy.cel_ast import (
    Binary,
    Call,
    CelSyntaxError,
    Comprehension,
    Has,
    Ident,
    Index,
    ListLit,
    Lit,
    Logic,
    MapLit,
    Select,
    Ternary,
    Unary,
    children,
    depth,
    parse,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12", 12),
        ("012", 12),
        ("-012", -12),
        ("0x1F", 31),
        ("0x1f", 31),
        ("-0x1F", -31),
        ("012u", 12),
        ("0x1Fu", 31),
        ("7U", 7),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        ("18446744073709551615u", 2**64 - 1),
    ],
)
def test_integer_literals(text: str, value: int) -> None:
    node = parse(text)
    assert node == Lit(value)
    assert type(node.value) is int  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "text", ["9223372036854775808", "-9223372036854775809", "18446744073709551616u", "-1u"]
)
def test_integer_literals_out_of_range(text: str) -> None:
    with pytest.raises(CelSyntaxError) as info:
        parse(text)
    assert info.value.code == "policy.cel.syntax"
    assert "out of range" in info.value.message


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (r"b'\xff'", b"\xff"),
        (r"b'\377'", b"\xff"),
        (r"b'\x00a'", b"\x00a"),
        ("b'é'", "é".encode()),
        (r"b'\u00e9'", "é".encode()),
        (r"b'a\nb'", b"a\nb"),
        (r"br'\xff'", b"\\xff"),
        ("Br'é'", "é".encode()),
        (r"b'''x\x01'''", b"x\x01"),
    ],
)
def test_bytes_literals_escape_octets(text: str, value: bytes) -> None:
    # CEL: in bytes literals, \x and octal escapes are octets, other text is UTF-8
    assert parse(text) == Lit(value)
