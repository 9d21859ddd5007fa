"""Compiling a checked CEL condition to Python source: the fast path.

Comparisons of facts whose schema type is known become bare Python operators; dynamic
values go through the checked operators of `cel_runtime` (named in `RUNTIME`, the
namespace the generated function runs in). A surprise at run time raises, and the
reference interpreter (`cel_interpret`) decides instead."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from juncture.policy import cel_runtime as rt
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
    Node,
    Select,
    Ternary,
    Unary,
)
from juncture.policy.cel_check import NUMERIC, static_type
from juncture.policy.cel_runtime import Activation

_COMPARE = {"<": "<", "<=": "<=", ">": ">", ">=": ">="}
_CMP_HELPER = {"<": "_lt", "<=": "_le", ">": "_gt", ">=": "_ge"}
_ARITH_HELPER = {"+": "_add", "-": "_sub", "*": "_mul", "/": "_div", "%": "_mod"}
_INLINE_EQ = {"int", "double", "string", "bool", "timestamp", "duration", "bytes"}


class Generator:
    def __init__(self, networks: Mapping[str, tuple[Any, ...]]) -> None:
        self.constants: dict[str, Any] = {}
        self.networks = networks

    def const(self, value: Any) -> str:
        name = f"_k{len(self.constants)}"
        self.constants[name] = value
        return name

    def boolean(self, node: Node, scope: frozenset[str]) -> str:
        code = self.gen(node, scope)
        return code if static_type(node, scope) == "bool" else f"_bool({code})"

    def gen(self, node: Node, scope: frozenset[str]) -> str:
        match node:
            case Lit(value):
                if type(value) is float or type(value) is bytes:
                    return self.const(value)
                return repr(value)
            case Ident(name):
                return f"_l_{name}" if name in scope else f"v[{name!r}]"
            case Select(operand, field):
                return f"{self.gen(operand, scope)}[{field!r}]"
            case Has(operand, field):
                path = _ident_path(operand, scope)
                if path is not None:
                    return f"_has_path(v, {tuple(path)!r}, {field!r})"
                return f"_has({self.gen(operand, scope)}, {field!r})"
            case Index(operand, key):
                return f"_index({self.gen(operand, scope)}, {self.gen(key, scope)})"
            case Call(function, target, args):
                return self.call(function, target, args, scope)
            case ListLit(items):
                return "[" + ", ".join(self.gen(i, scope) for i in items) + "]"
            case MapLit(entries):
                pairs = ", ".join(
                    f"({self.gen(k, scope)}, {self.gen(v, scope)})" for k, v in entries
                )
                return f"_map(({pairs},))" if entries else "{}"
            case Unary("!", operand):
                if static_type(operand, scope) == "bool":
                    return f"(not {self.gen(operand, scope)})"
                return f"_not({self.gen(operand, scope)})"
            case Unary(_, operand):
                return f"_neg({self.gen(operand, scope)})"
            case Logic(op, left, right):
                word = "and" if op == "&&" else "or"
                return f"({self.boolean(left, scope)} {word} {self.boolean(right, scope)})"
            case Ternary(condition, then, otherwise):
                return (
                    f"({self.gen(then, scope)} if {self.boolean(condition, scope)} "
                    f"else {self.gen(otherwise, scope)})"
                )
            case Binary(op, left, right):
                return self.binary(op, left, right, scope)
            case Comprehension(macro, rng, var, predicate, transform):
                return self.comprehension(macro, rng, var, predicate, transform, scope)
        raise CelSyntaxError(f"cannot compile {type(node).__name__}")  # pragma: no cover

    def binary(self, op: str, left: Node, right: Node, scope: frozenset[str]) -> str:
        a, b = static_type(left, scope), static_type(right, scope)
        lc, rc = self.gen(left, scope), self.gen(right, scope)
        same = a is not None and a == b
        numeric = a in NUMERIC and b in NUMERIC
        if op in ("==", "!="):
            string_literal = (isinstance(left, Lit) and type(left.value) is str) or (
                isinstance(right, Lit) and type(right.value) is str
            )
            if string_literal or (same and a in _INLINE_EQ) or numeric:
                return f"({lc} {op} {rc})"
            return f"{'_eq' if op == '==' else '_ne'}({lc}, {rc})"
        if op in _COMPARE:
            if numeric or (same and a in ("string", "timestamp", "duration")):
                return f"({lc} {op} {rc})"
            return f"{_CMP_HELPER[op]}({lc}, {rc})"
        if op == "in":
            if (
                isinstance(right, ListLit)
                and right.items
                and all(isinstance(i, Lit) and type(i.value) is str for i in right.items)
            ):
                values = frozenset(i.value for i in right.items if isinstance(i, Lit))
                return f"({lc} in {self.const(values)})"
            return f"_in({lc}, {rc})"
        if same and a == "int" and op in ("+", "-", "*"):
            return f"_ck({lc} {op} {rc})"
        return f"{_ARITH_HELPER[op]}({lc}, {rc})"

    def call(
        self, function: str, target: Node | None, args: tuple[Node, ...], scope: frozenset[str]
    ) -> str:
        if function == "in_network" and target is None:
            first, second = args
            assert isinstance(second, Lit)
            nets = self.const(self.networks[second.value])
            return f"_in_networks({self.gen(first, scope)}, {nets})"
        if function in ("duration", "timestamp") and target is None and isinstance(args[0], Lit):
            convert = rt.to_duration if function == "duration" else rt.to_timestamp
            return self.const(convert(args[0].value))
        if target is None:
            fn = self.const(rt.FUNCTIONS[function][0])
            return f"{fn}({', '.join(self.gen(a, scope) for a in args)})"
        fn = self.const(rt.METHODS[function][0])
        parts = [self.gen(target, scope), *(self.gen(a, scope) for a in args)]
        return f"{fn}({', '.join(parts)})"

    def comprehension(
        self,
        macro: str,
        rng: Node,
        var: str,
        predicate: Node | None,
        transform: Node | None,
        scope: frozenset[str],
    ) -> str:
        source = f"_iter({self.gen(rng, scope)})"
        inner = scope | {var}
        loop = f"for _l_{var} in {source}"
        if macro == "all":
            assert predicate is not None
            return f"all({self.boolean(predicate, inner)} {loop})"
        if macro == "exists":
            assert predicate is not None
            return f"any({self.boolean(predicate, inner)} {loop})"
        if macro == "exists_one":
            assert predicate is not None
            return f"(sum(1 {loop} if {self.boolean(predicate, inner)}) == 1)"
        if macro == "filter":
            assert predicate is not None
            return f"[_l_{var} {loop} if {self.boolean(predicate, inner)}]"
        assert transform is not None  # map
        guard = f" if {self.boolean(predicate, inner)}" if predicate is not None else ""
        return f"[{self.gen(transform, inner)} {loop}{guard}]"


def _ident_path(node: Node, scope: frozenset[str]) -> list[str] | None:
    """``a.b.c`` rooted at a fact variable -> ['a', 'b', 'c']; anything else -> None."""
    path: list[str] = []
    while isinstance(node, Select):
        path.append(node.field)
        node = node.operand
    if isinstance(node, Ident) and node.name not in scope:
        path.append(node.name)
        return path[::-1]
    return None


def _has_path(activation: Activation, path: tuple[str, ...], field: str) -> bool:
    current: Any = activation
    for part in path:
        if type(current) is not dict and current is not activation:
            raise rt.CelEvalError(f"has() needs a map, got {rt.type_name(current)}")
        if part not in current:
            return False
        current = current[part]
    return rt.has_field(current, field)


#: The names the generated source calls, bound in the namespace it runs in.
RUNTIME: dict[str, Any] = {
    "_bool": rt.as_bool,
    "_eq": rt.eq,
    "_ne": rt.ne,
    "_lt": rt.lt,
    "_le": rt.le,
    "_gt": rt.gt,
    "_ge": rt.ge,
    "_in": rt.contains_in,
    "_add": rt.add,
    "_sub": rt.sub,
    "_mul": rt.mul,
    "_div": rt.div,
    "_mod": rt.mod,
    "_neg": rt.neg,
    "_not": rt.not_,
    "_index": rt.index,
    "_iter": rt.iterate,
    "_ck": rt.check_int,
    "_has": rt.has_field,
    "_has_path": _has_path,
    "_map": rt.build_map,
    "_in_networks": rt.in_networks,
}
