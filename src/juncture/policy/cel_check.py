"""Static analysis of a parsed CEL condition: the type each node surely has, and the errors
a policy author must see before anything runs (unknown names, misspelt fields, wrong
arities, obvious type errors, macros nested too deep)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from juncture.errors import Location, PolicyError
from juncture.policy import cel_runtime as rt
from juncture.policy import schema
from juncture.policy.cel_ast import (
    Binary,
    Call,
    Comprehension,
    Has,
    Ident,
    ListLit,
    Lit,
    Logic,
    MapLit,
    Node,
    Select,
    Ternary,
    Unary,
    children,
)

#: Comprehension macros (all, exists, map, ...) may nest this deep: a cost limit, since each
#: level multiplies the work by the size of the list it ranges over.
MAX_COMPREHENSION_NESTING = 2
NUMERIC = {"int", "double"}


def static_type(node: Node, scope: frozenset[str]) -> str | None:
    """The CEL type a node surely has, or None when only run time can tell."""
    match node:
        case Lit(value):
            return rt.type_name(value) if value is not None else "null"
        case Ident(name):
            if name in scope:
                return None
            return schema.SCALAR_VARIABLES.get(name)
        case Select(Ident(name), field) if name not in scope:
            return schema.field_type(name, field)
        case Has() | Logic():
            return "bool"
        case Unary("!", _):
            return "bool"
        case Unary("-", operand):
            inner = static_type(operand, scope)
            return inner if inner in ("int", "double", "duration") else None
        case Binary(op, _, _) if op in ("==", "!=", "<", "<=", ">", ">=", "in"):
            return "bool"
        case Binary(op, left, right):
            lt, rt_ = static_type(left, scope), static_type(right, scope)
            if lt is not None and lt == rt_ and lt in ("int", "double", "string"):
                return (
                    lt
                    if op in ("+", "-", "*", "/", "%") and (lt != "string" or op == "+")
                    else None
                )
            if op == "-" and lt == rt_ == "timestamp":
                return "duration"
            return None
        case Comprehension(macro):
            return "bool" if macro in ("all", "exists", "exists_one") else "list"
        case Call(function):
            return rt.RESULT_TYPES.get(function)
        case Ternary(_, then, otherwise):
            a, b = static_type(then, scope), static_type(otherwise, scope)
            return a if a == b else None
        case ListLit():
            return "list"
        case MapLit():
            return "map"
    return None


class Checker:
    """Finds unknown names, misspelt fields, wrong arities and obvious type errors."""

    def __init__(self, text: str, location: Location, networks: Mapping[str, Any]) -> None:
        self.text = text
        self.location = location
        self.networks = networks
        self.errors: list[PolicyError] = []
        self.variables: set[str] = set()

    def error(self, message: str, code: str, suggestion: str | None = None) -> None:
        self.errors.append(
            PolicyError(message, code=code, location=self.location, suggestion=suggestion)
        )

    def check(self, root: Node) -> None:
        from juncture.policy.loader import suggest

        stack: list[tuple[Node, frozenset[str], int]] = [(root, frozenset(), 0)]
        too_nested = False
        while stack:
            node, scope, nesting = stack.pop()
            match node:
                case Ident(name) if name not in scope:
                    if name not in schema.VARIABLES:
                        self.error(
                            f"unknown variable `{name}` in condition `{self.text}`",
                            "policy.cel.unknown_variable",
                            suggest(name, schema.VARIABLES),
                        )
                    self.variables.add(name)
                case Select(Ident(name), field) | Has(Ident(name), field) if (
                    name not in scope and name in schema.CLOSED
                ):
                    fields = schema.CLOSED[name]
                    if field not in fields:
                        self.error(
                            f"`{name}` has no field `{field}`",
                            "policy.cel.unknown_field",
                            suggest(field, fields),
                        )
                case Call(function, target, args):
                    self.call(function, target, args)
                case Binary(op, left, right):
                    self.binary(op, left, right, scope)
                case Comprehension(_, rng, var, predicate, transform):
                    if nesting + 1 > MAX_COMPREHENSION_NESTING and not too_nested:
                        too_nested = True
                        self.error(
                            f"macros nest more than {MAX_COMPREHENSION_NESTING} deep: "
                            "the condition's cost would grow with the data it reads",
                            "policy.cel.too_complex",
                        )
                    stack.append((rng, scope, nesting))
                    inner = scope | {var}
                    stack.extend(
                        (n, inner, nesting + 1) for n in (predicate, transform) if n is not None
                    )
                    continue
            stack.extend((child, scope, nesting) for child in children(node))

    def call(self, function: str, target: Node | None, args: tuple[Node, ...]) -> None:
        from juncture.policy.loader import suggest

        if function == "in_network" and target is None:
            if len(args) != 2 or not isinstance(args[1], Lit) or type(args[1].value) is not str:
                self.error(
                    "in_network() takes an IP and a network name: "
                    "`in_network(network.ip, 'corporate')`",
                    "policy.cel.type",
                )
            elif args[1].value not in self.networks:
                self.error(
                    f"unknown network `{args[1].value}`",
                    "policy.ref.unknown_network",
                    suggest(args[1].value, self.networks),
                )
            return
        table = rt.METHODS if target is not None else rt.FUNCTIONS
        if function not in table:
            known = list(table) + ([] if target is not None else ["in_network", "has"])
            self.error(
                f"unknown function `{function}`",
                "policy.cel.unknown_function",
                suggest(function, known),
            )
            return
        arities = table[function][1]
        if len(args) not in arities:
            self.error(
                f"`{function}` takes {' or '.join(map(str, arities))} argument(s), not {len(args)}",
                "policy.cel.type",
            )
        if function in ("duration", "timestamp") and args and isinstance(args[0], Lit):
            try:
                (rt.to_duration if function == "duration" else rt.to_timestamp)(args[0].value)
            except rt.CelEvalError as exc:
                self.error(f"`{function}({args[0].value!r})`: {exc.message}", "policy.cel.type")

    def binary(self, op: str, left: Node, right: Node, scope: frozenset[str]) -> None:
        a, b = static_type(left, scope), static_type(right, scope)
        if a is None or b is None or a == b or {a, b} <= NUMERIC:
            return
        if op in ("==", "!=") and "null" not in (a, b):
            self.error(f"`{op}` compares {a} with {b}: it is never true", "policy.cel.type")
        elif op in ("<", "<=", ">", ">=", "*", "/", "%"):
            self.error(f"`{op}` is not defined on {a} and {b}", "policy.cel.type")
        elif op in ("+", "-") and {a, b} != {"timestamp", "duration"}:
            self.error(f"`{op}` is not defined on {a} and {b}", "policy.cel.type")

