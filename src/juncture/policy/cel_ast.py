"""CEL source -> a small immutable syntax tree.

Parsing uses the grammar of `cel-python` (Lark, LALR); this module turns its
parse tree into the few node kinds the compiler and the reference interpreter
share. https://github.com/google/cel-spec/blob/master/doc/langdef.md
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from celpy.celparser import CELParseError, CELParser
from lark import Token, Tree

MAX_LENGTH = 4096
MAX_DEPTH = 48


class Node(msgspec.Struct, frozen=True):
    """Base of the syntax tree."""


class Lit(Node, frozen=True):
    value: Any


class Ident(Node, frozen=True):
    name: str


class Select(Node, frozen=True):
    operand: Node
    field: str


class Has(Node, frozen=True):
    operand: Node
    field: str


class Index(Node, frozen=True):
    operand: Node
    index: Node


class Call(Node, frozen=True):
    function: str
    target: Node | None
    args: tuple[Node, ...]


class ListLit(Node, frozen=True):
    items: tuple[Node, ...]


class MapLit(Node, frozen=True):
    entries: tuple[tuple[Node, Node], ...]


class Unary(Node, frozen=True):
    op: str  # "!" or "-"
    operand: Node


class Binary(Node, frozen=True):
    op: str  # == != < <= > >= in + - * / %
    left: Node
    right: Node


class Logic(Node, frozen=True):
    op: str  # && or ||
    left: Node
    right: Node


class Ternary(Node, frozen=True):
    condition: Node
    then: Node
    otherwise: Node


class Comprehension(Node, frozen=True):
    macro: str  # all exists exists_one map filter
    range: Node
    var: str
    predicate: Node | None  # filter of map/3, the predicate of all/exists/exists_one/filter
    transform: Node | None  # the result expression of map


class CelSyntaxError(Exception):
    """A condition that is not valid CEL; carries a 1-based line and column when known."""

    def __init__(
        self, message: str, line: int = 0, column: int = 0, code: str = "policy.cel.syntax"
    ):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.code = code


_MACROS = {"all", "exists", "exists_one", "map", "filter"}
_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "`": "`",
    "?": "?",
}
_ESCAPE = re.compile(
    r"\\(?:([abfnrtv\\'\"`?])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([0-3][0-7]{2})|(.))",
    re.S,
)


def _unescape(body: str, octets: bool = False) -> str:
    """Resolve escapes; with ``octets`` (bytes literals) ``\\xNN`` and octal escapes are bytes,
    returned as the code points U+0000..U+00FF for the caller to encode as latin-1."""

    def repl(match: re.Match[str]) -> str:
        simple, hex2, hex4, hex8, octal, bad = match.groups()
        if simple is not None:
            return _ESCAPES[simple]
        if bad is not None:
            raise CelSyntaxError(f"invalid escape `\\{bad}` in string literal")
        number = int(hex2 or hex4 or hex8 or "0", 16) if octal is None else int(octal, 8)
        if number > 0x10FFFF or 0xD800 <= number <= 0xDFFF:
            raise CelSyntaxError("invalid code point in string literal")
        if octets and (hex4 or hex8):
            return chr(number).encode("utf-8").decode("latin-1")
        return chr(number)

    if not octets:
        return _ESCAPE.sub(repl, body)
    # outside escapes, a bytes literal holds the UTF-8 encoding of its text
    parts, pos = [], 0
    for match in _ESCAPE.finditer(body):
        parts.append(body[pos : match.start()].encode("utf-8").decode("latin-1"))
        parts.append(repl(match))
        pos = match.end()
    parts.append(body[pos:].encode("utf-8").decode("latin-1"))
    return "".join(parts)


def _string(text: str, octets: bool = False) -> str:
    raw = text[:1] in "rR"
    if raw:
        text = text[1:]
    quote = 3 if text[:3] in ('"""', "'''") else 1
    body = text[quote:-quote]
    if raw:
        return body.encode("utf-8").decode("latin-1") if octets else body
    return _unescape(body, octets)


def _literal(token: Token) -> Any:
    kind, text = token.type, str(token)
    if kind == "INT_LIT":
        value = int(text, 16) if "x" in text else int(text, 10)
        if not -(2**63) <= value < 2**63:
            raise CelSyntaxError(f"integer literal `{text}` is out of range")
        return value
    if kind == "UINT_LIT":
        digits = text[:-1]
        value = int(digits, 16) if "x" in digits else int(digits, 10)
        if not 0 <= value < 2**64:
            raise CelSyntaxError(f"unsigned literal `{text}` is out of range")
        return value
    if kind == "FLOAT_LIT":
        return float(text)
    if kind in ("STRING_LIT", "MLSTRING_LIT"):
        return _string(text)
    if kind == "BYTES_LIT":
        return _string(text[1:], octets=True).encode("latin-1")
    if kind == "BOOL_LIT":
        return text == "true"
    if kind == "NULL_LIT":
        return None
    raise CelSyntaxError(f"unsupported literal `{text}`")  # pragma: no cover


class _Builder:
    def build(self, tree: Tree[Any] | Token) -> Node:
        if isinstance(tree, Token):  # pragma: no cover - tokens are consumed by their parents
            raise CelSyntaxError(f"unexpected token `{tree}`")
        rule, kids = tree.data, tree.children
        if rule in ("expr",):
            if len(kids) == 1:
                return self.build(kids[0])
            return Ternary(self.build(kids[0]), self.build(kids[1]), self.build(kids[2]))
        if rule in ("conditionalor", "conditionaland"):
            if len(kids) == 1:
                return self.build(kids[0])
            op = "||" if rule == "conditionalor" else "&&"
            return Logic(op, self.build(kids[0]), self.build(kids[1]))
        if rule in ("relation", "addition", "multiplication"):
            if len(kids) == 1:
                return self.build(kids[0])
            op_tree = kids[0]
            op = {
                "relation_lt": "<",
                "relation_le": "<=",
                "relation_gt": ">",
                "relation_ge": ">=",
                "relation_eq": "==",
                "relation_ne": "!=",
                "relation_in": "in",
                "addition_add": "+",
                "addition_sub": "-",
                "multiplication_mul": "*",
                "multiplication_div": "/",
                "multiplication_mod": "%",
            }[op_tree.data]
            return Binary(op, self.build(op_tree.children[0]), self.build(kids[1]))
        if rule == "unary":
            if len(kids) == 1:
                return self.build(kids[0])
            op = "!" if kids[0].data == "unary_not" else "-"
            operand = self.build(kids[1])
            if op == "-" and isinstance(operand, Lit) and type(operand.value) in (int, float):
                value = -operand.value
                if type(value) is int and not -(2**63) <= value < 2**63:
                    raise CelSyntaxError("integer literal is out of range")
                return Lit(value)
            return Unary(op, operand)
        if rule in ("member", "primary", "paren_expr"):
            return self.build(kids[0])
        if rule == "member_dot":
            return Select(self.build(kids[0]), str(kids[1]))
        if rule == "member_index":
            return Index(self.build(kids[0]), self.build(kids[1]))
        if rule == "member_dot_arg":
            target = self.build(kids[0])
            name = str(kids[1])
            args = self.exprlist(kids[2]) if len(kids) > 2 else ()
            if name in _MACROS:
                return self.macro(name, target, args, kids[2] if len(kids) > 2 else None)
            return Call(name, target, args)
        if rule == "member_object":
            raise CelSyntaxError("message construction is not supported in journey conditions")
        if rule == "ident_arg":
            name = str(kids[0])
            args = self.exprlist(kids[1]) if len(kids) > 1 else ()
            if name == "has":
                if len(args) != 1 or not isinstance(args[0], Select):
                    raise CelSyntaxError(
                        "has() takes one field selection, such as `has(geo.country)`"
                    )
                return Has(args[0].operand, args[0].field)
            return Call(name, None, args)
        if rule in ("dot_ident", "dot_ident_arg"):
            raise CelSyntaxError("leading-dot names are not supported in journey conditions")
        if rule == "ident":
            return Ident(str(kids[0]))
        if rule == "literal":
            token = kids[0]
            assert isinstance(token, Token)
            return Lit(_literal(token))
        if rule == "list_lit":
            return ListLit(self.exprlist(kids[0]) if kids else ())
        if rule == "map_lit":
            if not kids:
                return MapLit(())
            items = [self.build(k) for k in kids[0].children]
            return MapLit(tuple(zip(items[0::2], items[1::2], strict=True)))
        raise CelSyntaxError(f"unsupported expression `{rule}`")  # pragma: no cover

    def exprlist(self, tree: Tree[Any]) -> tuple[Node, ...]:
        return tuple(self.build(k) for k in tree.children)

    def macro(self, name: str, target: Node, args: tuple[Node, ...], tree: Any) -> Node:
        if not args or not isinstance(args[0], Ident):
            raise CelSyntaxError(f"`{name}` takes a variable name first, such as `{name}(x, ...)`")
        var = args[0].name
        if name == "map" and len(args) == 3:
            return Comprehension("map", target, var, args[1], args[2])
        if len(args) != 2:
            raise CelSyntaxError(f"`{name}` takes two arguments")
        if name == "map":
            return Comprehension("map", target, var, None, args[1])
        return Comprehension(name, target, var, args[1], None)


def depth(node: Node) -> int:
    """The nesting depth of a tree (iterative)."""
    deepest = 0
    stack: list[tuple[Node, int]] = [(node, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        for child in children(item):
            stack.append((child, level + 1))
    return deepest


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-expressions of a node."""
    match node:
        case Select(operand) | Has(operand) | Unary(_, operand):
            return (operand,)
        case Index(operand, index):
            return (operand, index)
        case Call(_, target, args):
            return ((target,) if target is not None else ()) + args
        case ListLit(items):
            return items
        case MapLit(entries):
            return tuple(part for entry in entries for part in entry)
        case Binary(_, left, right) | Logic(_, left, right):
            return (left, right)
        case Ternary(c, t, o):
            return (c, t, o)
        case Comprehension(_, rng, _, predicate, transform):
            return (rng, *(n for n in (predicate, transform) if n is not None))
    return ()


def parse(text: str) -> Node:
    """Parse a CEL expression.

    Raises:
        CelSyntaxError: ``policy.cel.syntax`` or ``policy.cel.too_complex``.
    """
    if len(text) > MAX_LENGTH:
        raise CelSyntaxError(
            f"condition is {len(text)} characters, more than {MAX_LENGTH}",
            code="policy.cel.too_complex",
        )
    nesting = 0
    for ch in text:
        nesting += ch in "([{"
        nesting -= ch in ")]}"
        if nesting > MAX_DEPTH // 2:
            raise CelSyntaxError("condition nests too deeply", code="policy.cel.too_complex")
    try:
        tree = CELParser().parse(text)
    except CELParseError as exc:
        line, column = exc.line or 0, exc.column or 0
        lines = text.splitlines() or [""]
        rest = lines[line - 1][column - 1 :] if 0 < line <= len(lines) and column > 0 else ""
        if rest.strip():
            message = f"unexpected `{rest.split()[0][:20]}` at line {line} column {column}"
        else:
            message = "unexpected end of condition"
        raise CelSyntaxError(f"invalid CEL: {message}", line, column) from None
    except Exception as exc:  # the parser has more ways to refuse input than it documents
        raise CelSyntaxError(f"invalid CEL: {type(exc).__name__}") from None
    try:
        node = _Builder().build(tree)
    except RecursionError:
        raise CelSyntaxError("condition is too complex", code="policy.cel.too_complex") from None
    if depth(node) > MAX_DEPTH:
        raise CelSyntaxError("condition nests too deeply", code="policy.cel.too_complex")
    return node
