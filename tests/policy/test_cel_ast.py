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


@pytest.mark.parametrize(
    ("text", "node"),
    [
        ("a", Ident("a")),
        ("a.b", Select(Ident("a"), "b")),
        ("a[1]", Index(Ident("a"), Lit(1))),
        ("has(a.b)", Has(Ident("a"), "b")),
        ("f(1)", Call("f", None, (Lit(1),))),
        ("f()", Call("f", None, ())),
        ("a.f(1, 2)", Call("f", Ident("a"), (Lit(1), Lit(2)))),
        ("a.f()", Call("f", Ident("a"), ())),
        ("[]", ListLit(())),
        ("[1, 'x']", ListLit((Lit(1), Lit("x")))),
        ("{}", MapLit(())),
        ("{'k': 1}", MapLit(((Lit("k"), Lit(1)),))),
        ("!a", Unary("!", Ident("a"))),
        ("-a", Unary("-", Ident("a"))),
        ("-1.5", Lit(-1.5)),
        ("--1", Lit(1)),
        ("a && b", Logic("&&", Ident("a"), Ident("b"))),
        ("a || b", Logic("||", Ident("a"), Ident("b"))),
        ("a ? b : c", Ternary(Ident("a"), Ident("b"), Ident("c"))),
        ("(a)", Ident("a")),
        ("1.5e3", Lit(1500.0)),
        ("true", Lit(True)),
        ("false", Lit(False)),
        ("null", Lit(None)),
        ("'a\\tb'", Lit("a\tb")),
        ('"\\u00e9\\x41\\101\\U0001F600\\?\\`"', Lit("éAA\U0001f600?`")),
        ("r'\\n'", Lit("\\n")),
        ("'''a'b'''", Lit("a'b")),
        ("a.all(x, x)", Comprehension("all", Ident("a"), "x", Ident("x"), None)),
        ("a.exists_one(x, x)", Comprehension("exists_one", Ident("a"), "x", Ident("x"), None)),
        ("a.map(x, 1)", Comprehension("map", Ident("a"), "x", None, Lit(1))),
        ("a.map(x, x, 1)", Comprehension("map", Ident("a"), "x", Ident("x"), Lit(1))),
        ("a.filter(x, x)", Comprehension("filter", Ident("a"), "x", Ident("x"), None)),
    ],
)
def test_node_shapes(text: str, node: object) -> None:
    assert parse(text) == node


@pytest.mark.parametrize(
    ("text", "op"),
    [(f"a {op} b", op) for op in ("<", "<=", ">", ">=", "==", "!=", "in", "+", "-", "*", "/", "%")],
)
def test_binary_operators(text: str, op: str) -> None:
    assert parse(text) == Binary(op, Ident("a"), Ident("b"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("has(a)", "has() takes one field selection"),
        ("has(a.b, c)", "has() takes one field selection"),
        ("has()", "has() takes one field selection"),
        ("a.all(1, true)", "`all` takes a variable name first"),
        ("a.exists()", "`exists` takes a variable name first"),
        ("a.map(x)", "`map` takes two arguments"),
        ("a.all(x, y, z)", "`all` takes two arguments"),
        ("Foo{a: 1}", "message construction is not supported"),
        (".a", "leading-dot names are not supported"),
        (".f(1)", "leading-dot names are not supported"),
        ("'\\q'", "invalid escape `\\q`"),
        ("'\\ud800'", "invalid code point"),
        ("'\\U00110000'", "invalid code point"),
        ("1 ? 2", "invalid CEL: unexpected `2` at line 1 column 5"),
        ("a\n+", "invalid CEL: unexpected `+` at line 2 column 1"),
        ("", "invalid CEL: unexpected end of condition"),
        ("--9223372036854775808", "integer literal is out of range"),
    ],
)
def test_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(CelSyntaxError) as info:
        parse(text)
    assert info.value.code == "policy.cel.syntax"
    assert message in info.value.message


def test_syntax_error_position() -> None:
    with pytest.raises(CelSyntaxError) as info:
        parse("a &&\n  b +")
    assert (info.value.line, info.value.column) == (2, 5)


def test_parser_failures_it_does_not_document_are_syntax_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Broken:
        def parse(self, text: str) -> None:
            raise IndexError

    monkeypatch.setattr(cel_ast, "CELParser", Broken)
    with pytest.raises(CelSyntaxError, match="invalid CEL: IndexError"):
        parse("a")


@pytest.mark.parametrize(
    "text",
    [
        "a" * (cel_ast.MAX_LENGTH + 1),
        "(" * (cel_ast.MAX_DEPTH // 2 + 1) + "a" + ")" * (cel_ast.MAX_DEPTH // 2 + 1),
        "-" * 60 + "a",
        " + ".join(["a"] * 60),
    ],
)
def test_limits(text: str) -> None:
    with pytest.raises(CelSyntaxError) as info:
        parse(text)
    assert info.value.code == "policy.cel.too_complex"


def test_recursion_while_building_is_too_complex(monkeypatch: pytest.MonkeyPatch) -> None:
    def deep(self: object, tree: object) -> None:
        raise RecursionError

    monkeypatch.setattr(cel_ast._Builder, "build", deep)
    with pytest.raises(CelSyntaxError) as info:
        parse("a")
    assert info.value.code == "policy.cel.too_complex"


def test_depth_and_children() -> None:
    node = parse("a.b[c] + f(d, e.g(h)) > 0 && [i, {j: k}].all(x, x) ? l : m")
    assert depth(parse("a")) == 1
    assert depth(node) == 7
    assert children(parse("a.all(x, x)")) == (Ident("a"), Ident("x"))
    assert children(parse("a.map(x, x, 1)")) == (Ident("a"), Ident("x"), Lit(1))
    assert children(parse("{1: 2}")) == (Lit(1), Lit(2))
    assert children(parse("f(1)")) == (Lit(1),)
    assert children(parse("has(a.b)")) == (Ident("a"),)
    assert children(Lit(1)) == ()
