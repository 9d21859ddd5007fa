"""Names written as string literals in conditions: each must be one the journey declares.

Some facts hold names the journey itself declares (`schema.Field.names`): `network.segment`
and `network.segments` its networks (or `unknown`), `session.methods` its methods,
`risk.level` its risk levels, `risk.reasons` its risk rules' reasons. A literal compared with
one of them (`network.segment == 'offce'`, `'totpp' in session.methods`,
`has(session.methods.pasword)`, `risk.level in ['hihg']`) can never match: it is an error,
with a suggestion for a misspelling.

`action.name` holds the checkpoint the request asks for: in a checkpoint's own steps it is
that checkpoint's name (or one its glob matches), so a literal compared with it there must be;
in the guard, the risk rules and fragments it is any action the journey serves, so a literal
must name one of its checkpoints (or match a glob), unless the journey has a `*` checkpoint
(any action may then reach it).
"""

from __future__ import annotations

from collections.abc import Iterator

from juncture.errors import PolicyError
from juncture.policy import cel_ast as ast
from juncture.policy import model as m
from juncture.policy import schema
from juncture.policy.names import suggest
from juncture.policy.plan import glob_matcher

#: Per kind of name: the error code and how the message names it.
_KINDS = {
    "networks": ("policy.ref.unknown_network", "network"),
    "methods": ("policy.ref.unknown_method", "method"),
    "risk_levels": ("policy.ref.unknown_name", "risk level"),
    "risk_reasons": ("policy.ref.unknown_name", "risk reason"),
}


def declared(journey: m.Journey) -> dict[str, set[str]]:
    """The names of each kind the journey declares."""
    return {
        "networks": {*journey.networks, "unknown"},
        "methods": set(journey.methods),
        "risk_levels": {level.name for level in journey.risk.levels},
        "risk_reasons": {rule.reason for rule in journey.risk.rules},
    }


def _named(node: ast.Node) -> str | None:
    """The kind of names a fact holds (``network.segment`` -> ``networks``), or None."""
    match node:
        case ast.Select(operand=ast.Ident(name=variable), field=field):
            found = schema.VARIABLE_TABLE.get(variable)
            if found is not None and found.closed and field in found.fields:
                return found.fields[field].names
    return None


def _string(node: ast.Node) -> str | None:
    if isinstance(node, ast.Lit) and isinstance(node.value, str):
        return node.value
    return None


def _walk(node: ast.Node) -> Iterator[ast.Node]:
    """``node`` and every node below it."""
    stack = [node]
    while stack:
        item = stack.pop()
        stack.extend(ast.children(item))
        yield item


def _uses(node: ast.Node) -> Iterator[tuple[str, str]]:
    """(kind, literal) for each name the condition compares with a named fact."""
    for item in _walk(node):
        match item:
            case ast.Binary(op="==" | "!=", left=left, right=right):
                for fact, other in ((left, right), (right, left)):
                    kind, text = _named(fact), _string(other)
                    if kind is not None and text is not None:
                        yield kind, text
            case ast.Binary(op="in", left=left, right=right):
                kind, text = _named(right), _string(left)
                if kind is not None and text is not None:  # 'x' in network.segments
                    yield kind, text
                kind = _named(left)
                if kind is not None and isinstance(right, ast.ListLit):  # x in ['a', 'b']
                    for element in right.items:
                        text = _string(element)
                        if text is not None:
                            yield kind, text
            case ast.Select(operand=operand, field=field) | ast.Has(operand=operand, field=field):
                kind = _named(operand)  # session.methods.totp
                if kind is not None:
                    yield kind, field
            case ast.Index(operand=operand, index=index):
                kind, text = _named(operand), _string(index)  # session.methods['totp']
                if kind is not None and text is not None:
                    yield kind, text


def _actions(node: ast.Node) -> Iterator[str]:
    """Each literal the condition compares with ``action.name``."""
    action = ast.Select(operand=ast.Ident(name="action"), field="name")
    for item in _walk(node):
        match item:
            case ast.Binary(op="==" | "!=", left=left, right=right):
                for fact, other in ((left, right), (right, left)):
                    text = _string(other)
                    if fact == action and text is not None:
                        yield text
            case ast.Binary(op="in", left=left, right=ast.ListLit(items=items)) if left == action:
                yield from (t for t in map(_string, items) if t is not None)


def _step_conditions(steps: tuple[m.Step, ...]) -> Iterator[m.Condition]:
    """The conditions of ``steps`` and their branches (not of the fragments they use)."""
    stack = list(steps)
    while stack:
        step = stack.pop()
        if isinstance(step, m.If):
            yield step.condition
            stack += [*step.then, *step.otherwise]


def _action_scopes(journey: m.Journey) -> Iterator[tuple[m.Condition, tuple[str, ...]]]:
    """(condition, the checkpoint names or globs ``action.name`` can match there)."""
    names = tuple(cp.name for cp in journey.checkpoints)
    for cp in journey.checkpoints:
        if cp.name != "*":
            for condition in _step_conditions(cp.steps):
                yield condition, (cp.name,)
    if "*" in names:
        return
    for rule in journey.risk.rules:
        yield rule.when, names
    yield from ((c, names) for c in _step_conditions(journey.guard))
    for fragment in journey.fragments.values():
        yield from ((c, names) for c in _step_conditions(fragment.steps))


def check_actions(journey: m.Journey) -> list[PolicyError]:
    """An error for each literal compared with ``action.name`` that no action reaching the
    condition can equal."""
    out = []
    for condition, patterns in _action_scopes(journey):
        try:
            node = ast.parse(condition.text)
        except ast.CelSyntaxError:
            continue  # reported by the compiler
        for text in _actions(node):
            if any(glob_matcher(p)(text) for p in patterns):
                continue
            where = (f"checkpoint `{patterns[0]}`" if len(patterns) == 1
                     else f"journey `{journey.name}`")  # fmt: skip
            out.append(
                PolicyError(
                    f"`{text}` is not an action {where} serves: the condition "
                    f"`{condition.text}` compares `action.name` with it, which never matches",
                    code="policy.ref.unknown_checkpoint",
                    location=condition.location,
                    suggestion=suggest(text, sorted(p for p in patterns if "*" not in p))
                    or "name a checkpoint of the journey",
                )
            )
    return out


def _conditions(journey: m.Journey) -> Iterator[m.Condition]:
    for rule in journey.risk.rules:
        yield rule.when
    stack: list[m.Step] = [*journey.guard]
    stack += [s for cp in journey.checkpoints for s in cp.steps]
    stack += [s for fragment in journey.fragments.values() for s in fragment.steps]
    while stack:
        step = stack.pop()
        if isinstance(step, m.If):
            yield step.condition
            stack += [*step.then, *step.otherwise]
    for invariant in journey.invariants:
        if invariant.when is not None:
            yield invariant.when


def check_literals(journey: m.Journey) -> list[PolicyError]:
    """An error for each literal that names no declared name of its kind, or no action the
    condition can see (`check_actions`)."""
    names = declared(journey)
    out = check_actions(journey)
    for condition in _conditions(journey):
        try:
            node = ast.parse(condition.text)
        except ast.CelSyntaxError:
            continue  # reported by the compiler
        for kind, text in _uses(node):
            if text in names[kind]:
                continue
            code, what = _KINDS[kind]
            out.append(
                PolicyError(
                    f"`{text}` is not a {what} of journey `{journey.name}`: "
                    f"the condition `{condition.text}` compares it with one",
                    code=code,
                    location=condition.location,
                    suggestion=suggest(text, sorted(names[kind])) or f"declare the {what}",
                )
            )
    return out
