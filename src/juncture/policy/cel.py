"""Compile CEL conditions into plain Python callables, with a reference interpreter beside them.

A condition is compiled once per policy version into Python source, typed by the
fact schema (`schema.py`) so that comparisons of known facts become bare Python
operators, and dynamic values go through the checked operators of
`cel_runtime`. The compiled function is the fast path. It never returns a
result that CEL would not; when anything unusual happens (a missing fact, a
type error, an error that CEL's commutative ``&&``/``||`` would absorb) it
raises, and the condition is evaluated again by `interpret`, the reference
interpreter, which applies CEL's error semantics exactly and names the missing
fact. The differential tests hold the two to the same answers.
"""

from __future__ import annotations

import ipaddress
import warnings
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from juncture.errors import Location, PolicyError
from juncture.policy import cel_runtime as rt
from juncture.policy import schema
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
    children,
    parse,
)

__all__ = ["CompiledCondition", "compile_condition"]

Activation = Mapping[str, Any]
#: Comprehension macros (all, exists, map, ...) may nest this deep: a cost limit, since each
#: level multiplies the work by the size of the list it ranges over.
MAX_COMPREHENSION_NESTING = 2
_COMPARE = {"<": "<", "<=": "<=", ">": ">", ">=": ">="}
_ARITH = {"+": rt.add, "-": rt.sub, "*": rt.mul, "/": rt.div, "%": rt.mod}
_CMP_FN = {"==": rt.eq, "!=": rt.ne, "<": rt.lt, "<=": rt.le, ">": rt.gt, ">=": rt.ge}
_NUMERIC = {"int", "double"}
_CMP_HELPER = {"<": "_lt", "<=": "_le", ">": "_gt", ">=": "_ge"}
_ARITH_HELPER = {"+": "_add", "-": "_sub", "*": "_mul", "/": "_div", "%": "_mod"}
_INLINE_EQ = {"int", "double", "string", "bool", "timestamp", "duration", "bytes"}
_RUNTIME: dict[str, Any] = {
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
    "_has": None,
    "_has_path": None,
    "_map": None,
    "_in_networks": rt.in_networks,
}


class CompiledCondition:
    """A condition ready to run: ``condition(activation) -> bool``.

    Raises `rt.CelEvalError` when CEL says the condition is an error (for example a
    missing fact it reads without testing `has()` first).
    """

    __slots__ = ("_fast", "location", "networks", "node", "text", "variables")

    def __init__(
        self,
        text: str,
        location: Location,
        node: Node,
        fast: Callable[[Activation], bool],
        variables: frozenset[str],
        networks: Mapping[str, tuple[Any, ...]],
    ) -> None:
        self.text = text
        self.location = location
        self.node = node
        self._fast = fast
        self.variables = variables
        self.networks = networks

    def __call__(self, activation: Activation) -> bool:
        try:
            result = self._fast(activation)
        except Exception:  # any surprise: let the reference interpreter decide exactly
            return self.reference(activation)
        if result is True or result is False:
            return result
        # INVARIANT: a condition answers a bool or is an error. The fast path relies on facts
        # having their schema types; if one did not, the reference interpreter decides.
        return self.reference(activation)

    def reference(self, activation: Activation) -> bool:
        """Evaluate with the reference interpreter only (exact CEL semantics)."""
        try:
            return rt.as_bool(_Interpreter(activation, self.networks).run(self.node, {}))
        except rt.CelEvalError:
            raise
        except RecursionError:
            raise rt.CelEvalError("condition is too deep to evaluate") from None
        except Exception as exc:
            raise rt.CelEvalError(f"internal error: {type(exc).__name__}") from None


# -- static analysis --------------------------------------------------------------------------


def _static_type(node: Node, scope: frozenset[str]) -> str | None:
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
            inner = _static_type(operand, scope)
            return inner if inner in ("int", "double", "duration") else None
        case Binary(op, _, _) if op in ("==", "!=", "<", "<=", ">", ">=", "in"):
            return "bool"
        case Binary(op, left, right):
            lt, rt_ = _static_type(left, scope), _static_type(right, scope)
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
            a, b = _static_type(then, scope), _static_type(otherwise, scope)
            return a if a == b else None
        case ListLit():
            return "list"
        case MapLit():
            return "map"
    return None


class _Checker:
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
        a, b = _static_type(left, scope), _static_type(right, scope)
        if a is None or b is None or a == b or {a, b} <= _NUMERIC:
            return
        if op in ("==", "!=") and "null" not in (a, b):
            self.error(f"`{op}` compares {a} with {b}: it is never true", "policy.cel.type")
        elif op in ("<", "<=", ">", ">=", "*", "/", "%"):
            self.error(f"`{op}` is not defined on {a} and {b}", "policy.cel.type")
        elif op in ("+", "-") and {a, b} != {"timestamp", "duration"}:
            self.error(f"`{op}` is not defined on {a} and {b}", "policy.cel.type")


# -- code generation --------------------------------------------------------------------------


class _Generator:
    def __init__(self, networks: Mapping[str, tuple[Any, ...]]) -> None:
        self.constants: dict[str, Any] = {}
        self.networks = networks

    def const(self, value: Any) -> str:
        name = f"_k{len(self.constants)}"
        self.constants[name] = value
        return name

    def boolean(self, node: Node, scope: frozenset[str]) -> str:
        code = self.gen(node, scope)
        return code if _static_type(node, scope) == "bool" else f"_bool({code})"

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
                if _static_type(operand, scope) == "bool":
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
        a, b = _static_type(left, scope), _static_type(right, scope)
        lc, rc = self.gen(left, scope), self.gen(right, scope)
        same = a is not None and a == b
        numeric = a in _NUMERIC and b in _NUMERIC
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


def _has(operand: Any, field: str) -> bool:
    if type(operand) is dict:
        return field in operand
    raise rt.CelEvalError(f"has() needs a map, got {rt.type_name(operand)}")


def _has_path(activation: Activation, path: tuple[str, ...], field: str) -> bool:
    current: Any = activation
    for part in path:
        if type(current) is not dict and current is not activation:
            raise rt.CelEvalError(f"has() needs a map, got {rt.type_name(current)}")
        if part not in current:
            return False
        current = current[part]
    return _has(current, field)


def _map(entries: tuple[tuple[Any, Any], ...]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for key, value in entries:
        if type(key) not in (str, int, bool):
            raise rt.CelEvalError(f"unsupported map key type {rt.type_name(key)}")
        if rt.map_find(out, key) is not rt._ABSENT:
            raise rt.CelEvalError(f"duplicate map key `{key}`")
        if key in out:  # 1 and true are different CEL keys but one Python key
            raise rt.CelEvalError(f"map key `{key}` collides with a key of another type")
        out[key] = value
    return out


_RUNTIME.update({"_has": _has, "_has_path": _has_path, "_map": _map})


# -- the reference interpreter ----------------------------------------------------------------


class _Interpreter:
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
                return _has(value, field)
            case Index(operand, key):
                value = self.run(operand, local)
                return rt.index(value, self.run(key, local), _fact_path(operand, local))
            case Call(function, target, args):
                return self.call(function, target, args, local)
            case ListLit(items):
                return [self.run(i, local) for i in items]
            case MapLit(entries):
                return _map(tuple((self.run(k, local), self.run(v, local)) for k, v in entries))
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


# -- entry point --------------------------------------------------------------------------------


def parse_networks(networks: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[Any, ...]]:
    return {
        name: tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        for name, cidrs in networks.items()
    }


def compile_condition(
    text: str,
    location: Location,
    networks: Mapping[str, tuple[Any, ...]] | None = None,
    *,
    forbid: frozenset[str] = frozenset(),
) -> tuple[CompiledCondition | None, list[PolicyError]]:
    """Parse, check and compile one condition.

    ``networks`` maps the journey's network names to parsed networks (for
    ``in_network``); ``forbid`` names variables this condition may not read (risk
    rules may not read ``risk``). Returns the compiled condition, or None with the
    errors that prevent it.
    """
    nets = networks or {}
    try:
        node = parse(text)
    except CelSyntaxError as exc:
        # The location is where the condition starts; the message says where in it, since
        # folded and quoted YAML scalars do not map columns one to one.
        loc = location
        return None, [
            PolicyError(
                f"{exc.message} in `{text}`" if exc.code == "policy.cel.syntax" else exc.message,
                code=exc.code,
                location=loc,
            )
        ]
    checker = _Checker(text, location, nets)
    checker.check(node)
    for name in sorted(checker.variables & forbid):
        checker.error(f"this condition may not read `{name}`", "policy.cel.unknown_variable")
    result_type = _static_type(node, frozenset())
    if result_type not in (None, "bool"):
        checker.error(f"condition produces {result_type}, not bool", "policy.cel.type")
    if checker.errors:
        return None, checker.errors
    generator = _Generator(nets)
    try:
        body = generator.boolean(node, frozenset())
        source = f"def _condition(v):\n    return {body}\n"
        namespace: dict[str, Any] = {
            **_RUNTIME,
            **generator.constants,
            "__builtins__": {"all": all, "any": any, "sum": sum},
        }
        with warnings.catch_warnings():
            # `null.a` compiles to `None['a']`: an evaluation error, not a warning to print
            warnings.simplefilter("ignore", SyntaxWarning)
            code = compile(source, f"<condition {location}>", "exec")
        exec(code, namespace)  # noqa: S102
    except (RecursionError, SyntaxError, MemoryError):
        return None, [
            PolicyError(
                "condition is too complex", code="policy.cel.too_complex", location=location
            )
        ]
    fast = namespace["_condition"]
    return CompiledCondition(text, location, node, fast, frozenset(checker.variables), nets), []


# Types re-exported for callers that assemble activations.
Timestamp = datetime
Duration = timedelta
