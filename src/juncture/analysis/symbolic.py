"""CEL conditions as constraints over the facts, for the z3 SMT solver.

A condition becomes a pair of z3 formulas ``(defined, value)``: where ``defined`` is false the
condition is an error (a fact it reads is absent), else its result is ``value``. CEL's `&&`
and `||` absorb an error when the other side decides, and so do the formulas.

Each fact a condition reads (`device.managed`, `subject.properties.org`,
`action.properties.amount`) is a pair of solver variables: whether it is present, and its
value. `risk.score`, `risk.level` and `'x' in risk.reasons` are defined from the journey's
risk rules exactly as the engine computes them. The data documents are constants: a lookup
with a fact as the key (`data.users[subject.id].usual_country`) is a case split over the
document's keys.

What is beyond this translation (function calls, macros, timestamps and durations, `session`,
string ordering, a fact read with two types) is **opaque**: the condition, or the smallest
boolean part of it that holds the construct, becomes a free boolean of its own (the same text
always the same one). That over-approximates what the journey can do, so a property proved
with opaque parts still holds; a counterexample that leans on one may not reproduce, and the
checker then says `unknown` rather than either answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import z3

from juncture.policy import cel_ast as ast
from juncture.policy import cel_runtime as rt
from juncture.policy import schema

#: The sorts a fact may take in the solver.
STRING, INT, REAL, BOOL = "string", "int", "real", "bool"
_SCHEMA_SORTS = {"string": STRING, "int": INT, "double": REAL, "bool": BOOL}
#: Fields of the open entities a facts document may write (`subject.type`, ...).
_ENTITY_FIELDS = {
    "subject": ("type", "id", "properties"),
    "action": ("name", "properties"),
    "resource": ("type", "id", "properties"),
}
#: Variables no facts document writes (computed by Juncture), or not modelled.
_UNMODELLED = frozenset({"session", "now"})

Path = tuple[str, ...]
#: One alternative of a value: under ``guard``, the value is ``term`` (a z3 expression or a
#: `Const`). The guards of a value's alternatives exclude each other; where none holds, the
#: value is an error.
Alt = tuple[z3.BoolRef, Any]


class Const:
    """A constant value (a literal, or part of a data document)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class Opaque(Exception):
    """A construct beyond the translation."""


def _sort_of_const(value: Any) -> str | None:
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int | float):
        return REAL
    if isinstance(value, str):
        return STRING
    return None


def _z3_const(value: Any, sort: str) -> Any:
    if sort == STRING:
        return z3.StringVal(value)
    if sort == BOOL:
        return z3.BoolVal(value)
    if sort == INT:
        return z3.IntVal(value)
    return z3.RealVal(value)


def _sort(term: Any) -> str:
    if z3.is_bool(term):
        return BOOL
    if z3.is_string(term):
        return STRING
    if z3.is_int(term):
        return INT
    return REAL


TRUE = z3.BoolVal(True)
FALSE = z3.BoolVal(False)


def _bool_const(value: bool) -> Any:
    return TRUE if value else FALSE


def conj(*items: Any) -> Any:
    """A conjunction, simplified where a part is the constant `TRUE` or `FALSE`."""
    kept = [i for i in items if i is not TRUE]
    if any(i is FALSE for i in kept):
        return FALSE
    return kept[0] if len(kept) == 1 else (z3.And(*kept) if kept else TRUE)


def disj(*items: Any) -> Any:
    """A disjunction, simplified where a part is the constant `TRUE` or `FALSE`."""
    kept = [i for i in items if i is not FALSE]
    if any(i is TRUE for i in kept):
        return TRUE
    return kept[0] if len(kept) == 1 else (z3.Or(*kept) if kept else FALSE)


def _merge(alts: list[Alt]) -> list[Alt]:
    """Alternatives with equal constants as one (their guards joined): a lookup in a document
    of many keys and few distinct values stays small."""
    consts: dict[str, tuple[list[Any], Const]] = {}
    out: list[Alt] = []
    for guard, term in alts:
        if isinstance(term, Const):
            key = repr(term.value)
            if key in consts:
                consts[key][0].append(guard)
            else:
                consts[key] = ([guard], term)
        else:
            out.append((guard, term))
    return out + [(disj(*guards), term) for guards, term in consts.values()]


class Space:
    """The solver variables of one journey's facts, and the translation of its conditions."""

    def __init__(
        self,
        data: Mapping[str, Any],
        risk_rules: Sequence[tuple[ast.Node, int, str]],
        risk_levels: Sequence[tuple[int, str]],
    ) -> None:
        self.data = data
        self.present: dict[Path, z3.BoolRef] = {}
        self.values: dict[Path, Any] = {}
        self.sorts: dict[Path, str] = {}
        self.opaque: dict[str, tuple[z3.BoolRef, z3.BoolRef]] = {}
        self._conditions: dict[str, tuple[Any, Any, bool]] = {}
        #: Opaque translations so far (a part of the condition being translated is opaque
        #: when it grows), and the conditions written in the journey that hold such a part.
        self._hits = 0
        self.beyond: dict[str, None] = {}
        self.constraints: list[Any] = []
        self.action = z3.String("action.name")
        self.subject_type = z3.String("subject.type")
        self.score = z3.Int("risk.score")
        self.level = z3.String("risk.level")
        self._reasons: dict[str, Any] = {}
        #: Whether some condition reads `action.name` (else any action routed alike will do).
        self.reads_action = False
        self._risk(risk_rules, risk_levels)

    # -- facts ------------------------------------------------------------------------------
    def _present(self, path: Path) -> Any:
        if path in self.present:
            return self.present[path]
        if path[0] == "signals" and len(path) == 2 and path[1] in schema.SIGNAL_DEFAULTS:
            flag: Any = TRUE
        else:
            flag = z3.Bool("has:" + _name(path))
        self.present[path] = flag
        return flag

    def fact(self, path: Path, sort: str | None) -> list[Alt]:
        """The value of a fact: present, with a value of ``sort`` (None: the sort it has
        already, or that the schema gives). Raises Opaque."""
        if path == ("action", "name"):
            self.reads_action = True
            return [(TRUE, self.action)]
        if path == ("device", "posture_age"):  # seconds since the posture report (`posture_at`)
            if sort not in (None, INT, REAL):
                raise Opaque("device.posture_age")
            if path not in self.values:
                self.values[path] = z3.Int("device.posture_age")
            return [(self._present(path), self.values[path])]
        if path == ("subject", "type"):
            return [(TRUE, self.subject_type)]
        if path == ("risk", "score"):
            return [(TRUE, self.score)]
        if path == ("risk", "level"):
            return [(TRUE, self.level)]
        self._check_writable(path)
        known = self._schema_sort(path)
        if known is not None:
            if sort is not None and sort != known and {sort, known} != {INT, REAL}:
                raise Opaque(".".join(path))
            sort = known
        had = self.sorts.get(path)
        if had is not None:
            if sort is not None and sort != had and {sort, had} != {INT, REAL}:
                raise Opaque(".".join(path))
            sort = had
        if sort is None:
            raise Opaque(".".join(path))
        if had is None:
            self.sorts[path] = sort
            name = _name(path)
            self.values[path] = {
                STRING: z3.String,
                INT: z3.Int,
                REAL: z3.Real,
                BOOL: z3.Bool,
            }[sort](name)
        return [(self._present(path), self.values[path])]

    def _check_writable(self, path: Path) -> None:
        """Raise Opaque for a fact no facts document can write as such."""
        top = path[0]
        variable = schema.VARIABLE_TABLE.get(top)
        if variable is None or top in _UNMODELLED or top == "risk" or len(path) < 2:
            raise Opaque(".".join(path))
        if variable.closed:
            field = variable.fields.get(path[1])
            if field is None or field.written is None or not field.readable or len(path) != 2:
                raise Opaque(".".join(path))
            if field.type not in _SCHEMA_SORTS:
                raise Opaque(".".join(path))
        elif top in _ENTITY_FIELDS:
            allowed = _ENTITY_FIELDS[top]
            if path[1] not in allowed or (path[1] == "properties") != (len(path) > 2):
                raise Opaque(".".join(path))

    def _schema_sort(self, path: Path) -> str | None:
        variable = schema.VARIABLE_TABLE[path[0]]
        if variable.closed:
            return _SCHEMA_SORTS[variable.fields[path[1]].type or ""]
        if path in (("subject", "id"), ("resource", "id"), ("resource", "type")):
            return STRING
        if path[0] == "signals" and len(path) == 2 and path[1] in schema.SIGNAL_DEFAULTS:
            return BOOL
        return None

    def finish(self) -> list[Any]:
        """Constraints that tie the facts together: a nested fact's container is present."""
        out = list(self.constraints)
        for path, flag in self.present.items():
            for cut in range(2, len(path)):
                parent = self.present.get(path[:cut])
                if parent is not None:
                    out.append(z3.Implies(flag, parent))
        return out

    # -- risk --------------------------------------------------------------------------------
    def _risk(
        self, rules: Sequence[tuple[ast.Node, int, str]], levels: Sequence[tuple[int, str]]
    ) -> None:
        total: Any = z3.IntVal(0)
        for node, add, reason in rules:
            defined, value = self.translate(node, f"risk rule `{reason}`")
            # An erroring rule counts when it adds points, never when it subtracts.
            matched = disj(z3.Not(defined), value) if add > 0 else conj(defined, value)
            total = total + z3.If(matched, z3.IntVal(add), z3.IntVal(0))
            self._reasons[reason] = disj(self._reasons.get(reason, FALSE), matched)
        clamped = z3.If(total < 0, 0, z3.If(total > 100, 100, total))
        self.constraints.append(self.score == clamped)
        ordered = sorted(levels, reverse=True)  # highest threshold first, as the engine reads
        level: Any = z3.StringVal(ordered[-1][1])
        for at_least, name in reversed(ordered[:-1]):
            level = z3.If(self.score >= at_least, z3.StringVal(name), level)
        self.constraints.append(self.level == level)

    # -- conditions --------------------------------------------------------------------------
    def condition(self, node: ast.Node) -> tuple[Any, Any]:
        """(defined, value) of a bool condition; an opaque one is a free pair. The same
        condition (in several steps, fragments used many times) is translated once."""
        key = repr(node)
        found = self._conditions.get(key)
        if found is None:
            before = self._hits
            try:
                defined, value = self._bool(node)
            except Opaque:
                n = len(self.opaque)
                defined, value = z3.Bool(f"opaque{n}:defined"), z3.Bool(f"opaque{n}:value")
                self.opaque[key] = (defined, value)
                self._hits += 1
            found = (defined, value, self._hits > before)
            self._conditions[key] = found
        elif found[2]:
            self._hits += 1
        return found[0], found[1]

    def translate(self, node: ast.Node, text: str) -> tuple[Any, Any]:
        """`condition`, noting ``text`` in `beyond` when a part of it is opaque."""
        before = self._hits
        pair = self.condition(node)
        if self._hits > before:
            self.beyond.setdefault(text, None)
        return pair

    def _bool(self, node: ast.Node) -> tuple[Any, Any]:
        match node:
            case ast.Logic(op=op, left=left, right=right):
                ad, av = self.condition(left)
                bd, bv = self.condition(right)
                if op == "&&":
                    defined = disj(conj(ad, bd), conj(ad, z3.Not(av)), conj(bd, z3.Not(bv)))
                    return defined, conj(av, bv)
                defined = disj(conj(ad, bd), conj(ad, av), conj(bd, bv))
                return defined, disj(av, bv)
            case ast.Unary(op="!", operand=operand):
                d, v = self.condition(operand)
                return d, z3.Not(v)
            case ast.Lit(value=bool() as value):
                return TRUE, _bool_const(value)
            case ast.Has(operand=operand, field=field):
                return self._has(operand, field)
            case ast.Binary(op="in", left=left, right=right):
                return self._collapse(self._member(left, right))
            case ast.Binary(op=op, left=left, right=right) if op in _COMPARE:
                return self._collapse(self._compare(op, left, right))
            case ast.Ident() | ast.Select() | ast.Index():
                return self._collapse(
                    [(g, t) for g, t in self._operand(node, BOOL) if _is_bool_term(t)]
                )
        raise Opaque(type(node).__name__)

    def _collapse(self, alts: list[Alt]) -> tuple[Any, Any]:
        defined = disj(*(g for g, _ in alts))
        value = disj(
            *(conj(g, _bool_const(t.value) if isinstance(t, Const) else t) for g, t in alts)
        )
        return defined, value

    def _has(self, operand: ast.Node, field: str) -> tuple[Any, Any]:
        path = _path(ast.Select(operand=operand, field=field))
        if path is None:
            raise Opaque("has")
        if path[0] == "data":
            alts = self._data(path[:-1])
            return TRUE, disj(
                *(
                    conj(g, _bool_const(isinstance(t.value, dict) and field in t.value))
                    for g, t in alts
                )
            )
        if path[0] == "risk" or path in (("action", "name"), ("subject", "type")):
            return TRUE, TRUE
        if path == ("device", "posture_age"):
            return TRUE, self._present(path)
        self._check_writable(path)
        return TRUE, self._present(path)

    # -- values ------------------------------------------------------------------------------
    def _value(self, node: ast.Node, sort: str | None) -> list[Alt]:
        match node:
            case ast.Lit(value=value) if _sort_of_const(value) is not None:
                return [(TRUE, Const(value))]
            case ast.ListLit(items=items) if all(isinstance(i, ast.Lit) for i in items):
                return [(TRUE, Const([i.value for i in items]))]  # type: ignore[attr-defined]
            case ast.Unary(op="-", operand=ast.Lit(value=int() | float() as value)) if not (
                isinstance(value, bool)
            ):
                return [(TRUE, Const(-value))]
            case ast.Call(function="duration", target=None, args=(ast.Lit(value=str() as text),)):
                try:  # a duration literal: whole seconds, as `device.posture_age` is modelled
                    return [(TRUE, Const(int(rt.to_duration(text).total_seconds())))]
                except rt.CelEvalError:
                    raise Opaque("duration") from None
        if isinstance(node, ast.Index) and _path(node) is None:
            return self._lookup(node)
        path = _path(node)
        if path is None:
            raise Opaque(type(node).__name__)
        if path[0] == "data":
            return self._data(path)
        return self.fact(path, sort)

    def _data(self, path: Path) -> list[Alt]:
        value: Any = self.data
        for part in path[1:]:
            if not isinstance(value, dict) or part not in value:
                return []  # an error: the document has no such key
            value = value[part]
        return [(TRUE, Const(value))]

    def _lookup(self, node: ast.Index) -> list[Alt]:
        """``container[key]`` where the key is not a literal (a data lookup by a fact)."""
        containers = self._operand(node.operand, None)
        keys_sort = STRING
        out: list[Alt] = []
        keys = None
        for guard, term in containers:
            if not isinstance(term, Const) or not isinstance(term.value, dict):
                raise Opaque("index")
            if not all(isinstance(k, str) for k in term.value):
                raise Opaque("index")
            if keys is None:
                keys = self._value(node.index, keys_sort)
            for kg, key in keys:
                if isinstance(key, Const):
                    if isinstance(key.value, str) and key.value in term.value:
                        out.append((conj(guard, kg), Const(term.value[key.value])))
                    continue
                if _sort(key) != STRING:
                    raise Opaque("index")
                for name, item in term.value.items():
                    out.append((conj(guard, kg, key == z3.StringVal(name)), Const(item)))
        return _merge(out)

    def _walk_select(self, alts: list[Alt], field: str) -> list[Alt]:
        out: list[Alt] = []
        for guard, term in alts:
            if not isinstance(term, Const):
                raise Opaque("select")
            if isinstance(term.value, dict) and field in term.value:
                out.append((guard, Const(term.value[field])))
        return _merge(out)

    def _operand(self, node: ast.Node, sort: str | None) -> list[Alt]:
        """A value, following field selections on a data lookup's result."""
        if isinstance(node, ast.Select) and _path(node) is None:
            return self._walk_select(self._operand(node.operand, None), node.field)
        return self._value(node, sort)

    def _pair(self, left: ast.Node, right: ast.Node) -> tuple[list[Alt], list[Alt]]:
        """Both sides of a comparison, the sort of one telling the sort of a bare fact."""
        try:
            a = self._operand(left, None)
        except Opaque:
            b = self._operand(right, None)
            return self._operand(left, _alts_sort(b)), b
        return a, self._operand(right, _alts_sort(a))

    def _compare(self, op: str, left: ast.Node, right: ast.Node) -> list[Alt]:
        if op not in ("==", "!=") and (_is_string_side(left) or _is_string_side(right)):
            raise Opaque("string order")
        a, b = self._pair(left, right)
        out: list[Alt] = []
        for ga, ta in a:
            for gb, tb in b:
                result = _cmp(op, ta, tb)
                if result is not None:
                    out.append((conj(ga, gb), result))
        return out

    def _member(self, left: ast.Node, right: ast.Node) -> list[Alt]:
        if _path(right) == ("risk", "reasons"):
            if isinstance(left, ast.Lit) and isinstance(left.value, str):
                return [(TRUE, self._reasons.get(left.value, FALSE))]
            raise Opaque("risk.reasons")
        containers = self._operand(right, None)
        items: list[Any] = []
        for _, term in containers:
            if not isinstance(term, Const) or not isinstance(term.value, list | dict):
                raise Opaque("in")
            items += list(term.value)
        elements = self._operand(left, _alts_sort([(TRUE, Const(i)) for i in items]))
        out: list[Alt] = []
        for gc, term in containers:
            for ge, element in elements:
                found = [_cmp("==", element, Const(i)) for i in term.value]
                if any(f is None for f in found):
                    raise Opaque("in")
                out.append((conj(gc, ge), disj(*found)))
        return out


_COMPARE = ("==", "!=", "<", "<=", ">", ">=")


def _is_bool_term(term: Any) -> bool:
    return isinstance(term.value, bool) if isinstance(term, Const) else bool(z3.is_bool(term))


def _is_string_side(node: ast.Node) -> bool:
    return isinstance(node, ast.Lit) and isinstance(node.value, str)


def _alts_sort(alts: list[Alt]) -> str | None:
    sorts = set()
    for _, term in alts:
        sorts.add(_sort_of_const(term.value) if isinstance(term, Const) else _sort(term))
    if INT in sorts or REAL in sorts:
        sorts = (sorts - {INT}) | {REAL} if REAL in sorts else sorts
    return sorts.pop() if len(sorts) == 1 else None


def _cmp(op: str, a: Any, b: Any) -> Any:
    """``a op b`` as a z3 formula (or a constant), None when CEL says error."""
    if isinstance(a, Const) and isinstance(b, Const):
        try:
            result = {
                "==": rt.eq,
                "!=": rt.ne,
                "<": rt.lt,
                "<=": rt.le,
                ">": rt.gt,
                ">=": rt.ge,
            }[op](a.value, b.value)
        except rt.CelEvalError:
            return None
        return _bool_const(result)
    if isinstance(a, Const):
        flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op, op)
        return _cmp(flipped, b, a)
    sort_a = _sort(a)
    if isinstance(b, Const):
        sort_b = _sort_of_const(b.value)
        if sort_b is None or (sort_b != sort_a and {sort_a, sort_b} - {INT, REAL}):
            # A fact read as one type and compared with a value of another: in the facts it
            # may well be of that other type, so no answer here is safe.
            raise Opaque("types")
        if sort_a == INT and isinstance(b.value, float):
            a, bz = z3.ToReal(a), z3.RealVal(b.value)
        else:
            bz = _z3_const(b.value, sort_a)
    else:
        sort_b = _sort(b)
        if sort_a != sort_b and {sort_a, sort_b} - {INT, REAL}:
            raise Opaque("types")
        if sort_a != sort_b:
            a = z3.ToReal(a) if sort_a == INT else a
            b = z3.ToReal(b) if sort_b == INT else b
        bz = b
    if sort_a in (BOOL, STRING) and op not in ("==", "!="):
        raise Opaque("order")
    match op:
        case "==":
            return a == bz
        case "!=":
            return a != bz
        case "<":
            return a < bz
        case "<=":
            return a <= bz
        case ">":
            return a > bz
    return a >= bz


def _name(path: Path) -> str:
    """A solver name for a fact: distinct for distinct paths (`a['b.c']` is not `a.b.c`)."""
    return ".".join(part if part.isidentifier() else repr(part) for part in path)


def _path(node: ast.Node) -> Path | None:
    """``a.b['c'].d`` -> ("a", "b", "c", "d"); None for anything else."""
    parts: list[str] = []
    while True:
        match node:
            case ast.Ident(name=name):
                parts.append(name)
                return tuple(reversed(parts))
            case ast.Select(operand=operand, field=field):
                parts.append(field)
                node = operand
            case ast.Index(operand=operand, index=ast.Lit(value=str() as key)):
                parts.append(key)
                node = operand
            case _:
                return None
