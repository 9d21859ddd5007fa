"""The reference CEL interpreter: evaluates the syntax tree with CEL's exact semantics (errors
absorbed by a commutative ``&&``/``||``, missing facts named), where the compiled fast path
only guarantees never to answer what CEL would not."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from juncture.policy import cel_runtime as rt
from juncture.policy.cel_ast import (
    Binary,
    Call,
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
from juncture.policy.cel_runtime import Activation

_ARITH = {"+": rt.add, "-": rt.sub, "*": rt.mul, "/": rt.div, "%": rt.mod}
_CMP_FN = {"==": rt.eq, "!=": rt.ne, "<": rt.lt, "<=": rt.le, ">": rt.gt, ">=": rt.ge}


class Interpreter:
    """Evaluates the syntax tree with CEL's exact semantics, naming missing facts."""

    def __init__(self, activation: Activation, networks: Mapping[str, tuple[Any, ...]]) -> None:
        self.activation = activation
        self.networks = networks

    def run(self, node: Node, local: dict[str, Any]) -> Any:
        match node:
            case Lit(value):
                return value
            case Ident(name):
                if name in local:
                    return local[name]
                if name in self.activation:
                    return self.activation[name]
                raise rt.CelEvalError(f"missing fact `{name}`", missing=name)
            case Select(operand, field):
                value = self.run(operand, local)
                path = _fact_path(operand, local)
                try:
                    return rt.select(value, field, path)
                except rt.CelEvalError as exc:
                    if exc.missing:
                        raise rt.CelEvalError(
                            f"missing fact `{exc.missing}`", exc.missing
                        ) from None
                    raise
            case Has(operand, field):
                try:
                    value = self.run(operand, local)
                except rt.CelEvalError as exc:
                    if exc.missing:
                        return False
                    raise
                return rt.has_field(value, field)
            case Index(operand, key):
                value = self.run(operand, local)
                return rt.index(value, self.run(key, local), _fact_path(operand, local))
            case Call(function, target, args):
                return self.call(function, target, args, local)
            case ListLit(items):
                return [self.run(i, local) for i in items]
            case MapLit(entries):
                pairs = tuple((self.run(k, local), self.run(v, local)) for k, v in entries)
                return rt.build_map(pairs)
            case Unary("!", operand):
                return rt.not_(self.run(operand, local))
            case Unary(_, operand):
                return rt.neg(self.run(operand, local))
            case Logic(op, left, right):
                return self.logic(op, left, right, local)
            case Ternary(condition, then, otherwise):
                chosen = then if rt.as_bool(self.run(condition, local)) else otherwise
                return self.run(chosen, local)
            case Binary(op, left, right):
                a, b = self.run(left, local), self.run(right, local)
                if op == "in":
                    return rt.contains_in(a, b)
                if op in _CMP_FN:
                    return _CMP_FN[op](a, b)
                return _ARITH[op](a, b)
            case Comprehension(macro, rng, var, predicate, transform):
                return self.comprehension(macro, rng, var, predicate, transform, local)
        raise rt.CelEvalError(f"cannot evaluate {type(node).__name__}")  # pragma: no cover

    def logic(self, op: str, left: Node, right: Node, local: dict[str, Any]) -> bool:
        # CEL's && and || are commutative over errors:
        # false && error == false, true || error == true.
        decisive = op == "||"
        error: rt.CelEvalError | None = None
        for side in (left, right):
            try:
                value = rt.as_bool(self.run(side, local))
            except rt.CelEvalError as exc:
                error = error or exc
                continue
            if value is decisive:
                return decisive
        if error is not None:
            raise error
        return not decisive

    def call(
        self, function: str, target: Node | None, args: tuple[Node, ...], local: dict[str, Any]
    ) -> Any:
        values = [self.run(a, local) for a in args]
        if function == "in_network" and target is None:
            second = args[1]
            assert isinstance(second, Lit)
            return rt.in_networks(values[0], self.networks[second.value])
        if target is None:
            return rt.FUNCTIONS[function][0](*values)
        return rt.METHODS[function][0](self.run(target, local), *values)

    def comprehension(
        self,
        macro: str,
        rng: Node,
        var: str,
        predicate: Node | None,
        transform: Node | None,
        local: dict[str, Any],
    ) -> Any:
        items = rt.iterate(self.run(rng, local))
        scope = dict(local)
        if macro in ("all", "exists"):
            assert predicate is not None
            decisive = macro == "exists"
            error: rt.CelEvalError | None = None
            for item in items:
                scope[var] = item
                try:
                    value = rt.as_bool(self.run(predicate, scope))
                except rt.CelEvalError as exc:
                    error = error or exc
                    continue
                if value is decisive:
                    return decisive
            if error is not None:
                raise error
            return not decisive
        out = []
        for item in items:
            scope[var] = item
            keep = predicate is None or rt.as_bool(self.run(predicate, scope))
            if macro == "exists_one":
                out.append(keep)
            elif keep:
                out.append(item if macro == "filter" else self.run(transform, scope))  # type: ignore[arg-type]
        return sum(out) == 1 if macro == "exists_one" else out


def _fact_path(node: Node, local: Mapping[str, Any]) -> str | None:
    path: list[str] = []
    while True:
        match node:
            case Select(operand, field):
                path.append(field)
                node = operand
            case Index(operand, Lit(value)) if type(value) in (str, int):
                path.append(f"[{value!r}]")
                node = operand
            case Ident(name) if name not in local:
                path.append(name)
                return ".".join(reversed(path)).replace(".[", "[")
            case _:
                return None
