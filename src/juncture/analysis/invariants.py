"""Prove a journey's invariants over every path, or show a decision that breaks one.

For each journey, the guard and every checkpoint (fragments inlined, both branches of each
`if`, the `require` gates) are walked once, symbolically: each outcome step gets the formula
under which a decision reaches it, over the facts (`juncture.analysis.symbolic`), the
session's proofs and the action. For each invariant and each checkpoint that an action it
covers can be routed to, z3 is asked for facts under which the decision reaches an outcome
the invariant forbids (with `when` true and the `unless` gate not met).

- No such facts: the invariant holds at that checkpoint, on every path.
- Facts found: they are written as a facts document and **decided by `evaluate`**; only a
  decision that really breaks the invariant is reported (`policy.invariant.violated`, with
  the decision's path, each step at file:line, and the facts). A solver answer that does not
  reproduce (it leaned on a condition beyond the translation) is tried again with that answer
  excluded, a few times, then reported as `policy.invariant.unknown` (a warning): never a
  silent pass.

Proofs: each declared method has as many proof slots (present, age, AAL as rated) as the
checkpoint has gates, plus one; and one more slot group stands for methods the journey does
not declare. That is enough: a gate is met or not by one proof per method, and removing the
proofs that witness no gate only keeps an `unless` gate unmet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import z3

from juncture.analysis.symbolic import FALSE, TRUE, Space, conj, disj
from juncture.engine.evaluate import activation, evaluate, gate_met
from juncture.engine.facts import Facts
from juncture.errors import FactsError, Location, PolicyError
from juncture.policy import schema
from juncture.policy.cel_runtime import CelEvalError
from juncture.policy.plan import (
    IF,
    OUTCOME,
    REQUIRE,
    USE,
    InvariantPlan,
    JourneyPlan,
    Plan,
    RequireSpec,
    Steps,
)

#: The moment every counterexample is decided at.
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
#: Milliseconds z3 may spend on one question before the answer is `unknown`.
TIMEOUT_MS = 5000
#: Solver answers tried (each excluded after it failed to reproduce) before `unknown`.
ATTEMPTS = 4
_SUBJECT_TYPES = ("user", "service", "agent")
_FOREIGN = "__undeclared__"
#: The name standing for "no checkpoint serves the action" (the guard alone decides).
_NONE = ""
#: Proof ages: from the clock skew the engine tolerates to ten years.
_SKEW, _MAX_AGE = -30, 10 * 365 * 86400


@dataclass(frozen=True, slots=True)
class _Slot:
    method: str
    present: Any
    age: Any
    aal: Any


@dataclass
class _Walk:
    """The symbolic walk of a journey: its facts, proofs and, per outcome, when it is reached."""

    space: Space
    slots: dict[str, list[_Slot]]
    guard: list[tuple[tuple[Any, ...], Any]] = field(default_factory=list)
    guard_live: Any = None


def _count_gates(steps: Steps) -> int:
    total = 0
    for step in steps:
        if step[0] == REQUIRE:
            total += 1
        elif step[0] == IF:
            total += _count_gates(step[3]) + _count_gates(step[4])
        elif step[0] == USE:
            total += _count_gates(step[2])
    return total


def _checkpoints(journey: JourneyPlan) -> list[tuple[str, Steps]]:
    out = [(name, steps) for name, (_, steps) in journey.exact.items()]
    out += [(ref.text, steps) for _, _, ref, steps in journey.globs]
    if journey.star is not None:
        out.append(("*", journey.star[1]))
    return out


class _Prover:
    def __init__(self, plan: Plan, journey: JourneyPlan) -> None:
        self.plan = plan
        self.journey = journey
        space = Space(
            plan.data,
            [(r.condition.node, r.add, r.reason) for r in journey.risk_rules],
            journey.risk_levels,
        )
        guard_gates = _count_gates(journey.guard)
        most = max((_count_gates(s) for _, s in _checkpoints(journey)), default=0)
        per_method = guard_gates + most + 1
        slots: dict[str, list[_Slot]] = {}
        for name, info in [*journey.methods.items(), (_FOREIGN, None)]:
            slots[name] = []
            for j in range(per_method):
                slot = _Slot(
                    method=name,
                    present=z3.Bool(f"proof:{name}:{j}"),
                    age=z3.Int(f"proof:{name}:{j}:age"),
                    aal=z3.Int(f"proof:{name}:{j}:aal"),
                )
                top = 3 if info is None else info.aal
                space.constraints += [
                    slot.age >= _SKEW,
                    slot.age <= _MAX_AGE,
                    slot.aal >= 0,
                    slot.aal <= top,
                ]
                slots[name].append(slot)
        self.walk = _Walk(space=space, slots=slots)
        self.walk.guard_live = self._steps(journey.guard, TRUE, self.walk.guard)
        self.outcomes: dict[str, list[tuple[tuple[Any, ...], Any]]] = {}
        for name, steps in _checkpoints(journey):
            found: list[tuple[tuple[Any, ...], Any]] = []
            self._steps(steps, self.walk.guard_live, found)
            self.outcomes[name] = found
        if journey.star is None:  # an action no checkpoint serves: the guard alone decides
            self.outcomes[_NONE] = []
        self.base = space.finish()
        self.solver = z3.Solver()
        self.solver.set("timeout", TIMEOUT_MS)
        self.solver.add(*self.base)
        self._witnesses: dict[tuple[tuple[str, ...], str], str | None] = {}

    # -- the walk ------------------------------------------------------------------------------
    def gate(self, spec: RequireSpec) -> Any:
        slots = self.walk.slots

        def counted(slot: _Slot) -> Any:
            if spec.within is None:
                return slot.present
            return z3.And(slot.present, slot.age <= spec.within)

        parts = []
        if spec.methods:
            each = [z3.Or(*(counted(s) for s in slots[m])) for m in spec.methods]
            parts.append(z3.And(*each) if spec.mode == "all" else z3.Or(*each))
        if spec.aal is not None:
            every = [s for group in slots.values() for s in group]
            parts.append(z3.Or(*(z3.And(counted(s), s.aal >= spec.aal) for s in every)))
        return conj(*parts)

    def _steps(self, steps: Steps, live: Any, found: list[tuple[tuple[Any, ...], Any]]) -> Any:
        for step in steps:
            if live is FALSE:
                return live
            op = step[0]
            if op == OUTCOME:
                found.append((step, live))
                return FALSE
            if op == IF:
                defined, value = self.walk.space.translate(step[2].node, step[2].text)
                then = self._steps(step[3], conj(live, defined, value), found)
                otherwise = self._steps(step[4], conj(live, defined, z3.Not(value)), found)
                live = disj(then, otherwise)
            elif op == REQUIRE:
                live = conj(live, self.gate(step[2]))
            else:  # USE
                live = self._steps(step[2], live, found)
        return live

    # -- routing ---------------------------------------------------------------------------------
    def routed_to(self, checkpoint: str) -> Any:
        """The action asked is served by ``checkpoint`` (exact, most specific glob, `*`)."""
        action = self.walk.space.action
        journey = self.journey
        if checkpoint in journey.exact:
            return action == z3.StringVal(checkpoint)
        exact = [action != z3.StringVal(name) for name in journey.exact]
        before: list[Any] = []
        for _, _, ref, _ in journey.globs:
            if ref.text == checkpoint:
                return conj(*exact, *before, z3.InRe(action, _glob(checkpoint)))
            before.append(z3.Not(z3.InRe(action, _glob(ref.text))))
        return conj(*exact, *before)

    def _guess(self, inv: InvariantPlan, checkpoint: str) -> str | None:
        """An action both patterns match, tried with the engine's own lookup (most actions
        are found so, without asking the solver)."""
        for pattern in ([checkpoint] if checkpoint else []) + list(inv.at):
            for fill in ("x", "", "probe_1"):
                action = pattern.replace("*", fill).replace("?", "x")
                found = self.journey.checkpoint(action)
                served = found is None if checkpoint == _NONE else found is not None
                if (
                    served
                    and (found is None or found[0].text == checkpoint)
                    and any(_glob_match(p, action) for p in inv.at)
                ):
                    return action
        return None

    def action_for(self, inv: InvariantPlan, checkpoint: str) -> str | None:
        """An action that ``inv`` covers and the journey routes to ``checkpoint``, if any."""
        key = (inv.at, checkpoint)
        if key not in self._witnesses:
            found = self._guess(inv, checkpoint)
            if found is None:  # the solver decides: is there such an action at all?
                solver = z3.Solver()
                solver.set("timeout", TIMEOUT_MS)
                action = self.walk.space.action
                solver.add(self.routed_to(checkpoint), _covered(action, inv))
                if solver.check() == z3.sat:
                    found = _string(solver.model().eval(action, model_completion=True))
            self._witnesses[key] = found
        return self._witnesses[key]

    # -- one invariant ---------------------------------------------------------------------------
    def prove(self, inv: InvariantPlan) -> list[PolicyError]:
        """The violations of ``inv`` (each reproduced) and what could not be decided.

        One question covers every checkpoint at once (a selector per checkpoint): an invariant
        that holds costs one answer per journey. Each violation found takes its checkpoint out
        of the question, and the question is asked again."""
        space = self.walk.space
        subjects = [
            s
            for s in (self.journey.subjects or _SUBJECT_TYPES)
            if not inv.subjects or s in inv.subjects
        ]
        if not subjects:
            return []
        solver = self.solver
        solver.push()
        solver.add(disj(*(space.subject_type == z3.StringVal(s) for s in subjects)))
        if inv.when is not None:
            defined, value = space.translate(inv.when.node, inv.when.text)
            solver.add(conj(defined, value))
        if inv.unless is not None:
            solver.add(z3.Not(self.gate(inv.unless)))
        selectors: dict[str, Any] = {}
        for name, found in self.outcomes.items():
            bad = [live for step, live in [*self.walk.guard, *found] if _forbidden(inv, step)]
            if not bad:
                continue
            witness = self.action_for(inv, name)
            if witness is None:
                continue  # no action `at` covers is served by this checkpoint
            if space.reads_action:  # the action is one more unknown, routed as the engine does
                routing = conj(self.routed_to(name), _covered(space.action, inv))
            else:  # any action routed here decides alike: the witness stands for them all
                routing = space.action == z3.StringVal(witness)
            selector = z3.Bool(f"checkpoint:{len(selectors)}")
            selectors[name] = selector
            solver.add(z3.Implies(selector, conj(routing, disj(*bad))))
        out: list[PolicyError] = []
        if selectors:
            solver.add(disj(*selectors.values()))
            out = self._ask(inv, selectors)
        solver.pop()
        return out

    def _ask(self, inv: InvariantPlan, selectors: dict[str, Any]) -> list[PolicyError]:
        solver = self.solver
        where = Location(file=inv.file, line=inv.line)
        tries: dict[str, int] = {}
        done: set[str] = set()  # checkpoints answered: a violation, or unknown
        out: list[PolicyError] = []
        while True:
            answer = solver.check()
            if answer == z3.unsat:
                return out
            if answer == z3.unknown:
                left = [n for n in selectors if n not in done]
                return [*out, _unknown(inv, ", ".join(left), where, "no answer in time")]
            model = solver.model()
            name = next(n for n, sel in selectors.items() if z3.is_true(model.eval(sel, True)))
            found = self._reproduce(inv, name, model)
            if found is not None:
                out.append(found)
                done.add(name)
                solver.add(z3.Not(selectors[name]))
                continue
            tries[name] = tries.get(name, 0) + 1
            if tries[name] >= ATTEMPTS:
                beyond = ", ".join(f"`{text}`" for text in list(self.walk.space.beyond)[:3])
                why = "a path the solver found did not reproduce" + (
                    f"; the journey has conditions beyond the solver: {beyond}" if beyond else ""
                )
                out.append(_unknown(inv, name, where, why))
                done.add(name)
                solver.add(z3.Not(selectors[name]))
                continue
            solver.add(
                z3.Implies(
                    selectors[name],
                    disj(*(d() != model[d] for d in model.decls() if d.arity() == 0)),
                )
            )

    # -- counterexamples -------------------------------------------------------------------------
    def facts_document(
        self, model: Any, plain: bool = False, subjects: tuple[str, ...] = ()
    ) -> tuple[str, dict[str, Any]]:
        """The action and the facts document of a solver's answer; ``plain``: every proof
        rated as its method declares (the plainer counterexample, tried first)."""
        space = self.walk.space
        action = _string(model.eval(space.action, model_completion=True))
        subject_type = _string(model.eval(space.subject_type, model_completion=True))
        if plain and subjects:  # the first subject type covered, if it decides the same
            subject_type = subjects[0]
        doc: dict[str, Any] = {
            "app": self.app(),
            "subject": {"type": subject_type},
            "action": {"name": action},
        }
        for path, flag in space.present.items():
            if not z3.is_true(model.eval(flag, model_completion=True)):
                continue
            if path in space.values:
                value = _python(model.eval(space.values[path], model_completion=True))
            else:
                value = _placeholder(path)
            if path[0] == "signals" and schema.SIGNAL_DEFAULTS.get(path[-1], None) is value:
                continue  # the default: no need to say it
            if path == ("device", "posture_age"):  # written as the report's time
                path, value = ("device", "posture_at"), _stamp(NOW - timedelta(seconds=value))
            _put(doc, path, value)
        proofs = []
        for name, group in self.walk.slots.items():
            for slot in group:
                if not z3.is_true(model.eval(slot.present, model_completion=True)):
                    continue
                age = model.eval(slot.age, model_completion=True).as_long()
                aal = model.eval(slot.aal, model_completion=True).as_long()
                at = _stamp(NOW - timedelta(seconds=age))
                proof: dict[str, Any] = {"method": name, "at": at}
                declared = self.journey.methods.get(name)
                if declared is None:
                    proof = {"method": "undeclared_method", "at": at, "aal": aal}
                elif aal < declared.aal and not plain:  # a proof rated lower than its method
                    proof["aal"] = aal
                proofs.append(proof)
        if proofs:
            doc["session"] = {"proofs": proofs}
        return action, doc

    def app(self) -> str:
        if self.journey.applies_to:
            return self.journey.applies_to[0]
        named = {a for j in self.plan.journeys.values() for a in j.applies_to}
        app = "any-app"
        while app in named:
            app += "-1"
        return app

    def _reproduce(self, inv: InvariantPlan, checkpoint: str, model: Any) -> PolicyError | None:
        for plain in (True, False):  # the plainer facts first; evaluate decides both
            subjects = tuple(
                t
                for t in (self.journey.subjects or _SUBJECT_TYPES)
                if not inv.subjects or t in inv.subjects
            )
            found = self._decide(inv, checkpoint, *self.facts_document(model, plain, subjects))
            if found is not None:
                return found
        return None

    def _decide(
        self, inv: InvariantPlan, checkpoint: str, action: str, doc: dict[str, Any]
    ) -> PolicyError | None:
        """The violation these facts show, decided by `evaluate`, or None."""
        try:
            facts = Facts.from_document(doc)
        except FactsError:
            return None
        decision = evaluate(self.plan, action, facts, NOW)
        if decision.journey != self.journey.name or decision.checkpoint not in (checkpoint, None):
            return None
        if not _breaks(inv, decision.outcome, decision.path):
            return None
        if not any(_glob_match(p, action) for p in inv.at):
            return None
        if inv.subjects and facts.subject_type not in inv.subjects:
            return None
        if inv.when is not None:
            act = activation(self.plan, self.journey, action, facts, NOW)
            try:
                if not inv.when(act):
                    return None
            except CelEvalError:
                return None
        if inv.unless is not None and gate_met(self.journey, inv.unless, facts.proofs, NOW):
            return None
        path = [
            {
                "step": t.step.text,
                "kind": t.step.kind,
                "file": t.step.file,
                "line": t.step.line,
                "result": t.result,
            }
            for t in decision.explanation
        ]
        what = decision.outcome if decision.path is None else f"reroute to `{decision.path}`"
        served = decision.checkpoint or checkpoint
        place = f"checkpoint `{served}`" if served else "no checkpoint: the guard decides"
        return PolicyError(
            f"invariant `{inv.name}` is violated: action `{action}` ({place}) can end in {what}",
            code="policy.invariant.violated",
            location=Location(file=inv.file, line=inv.line),
            extra={
                "invariant": inv.name,
                "journey": self.journey.name,
                "checkpoint": served or None,
                "action": action,
                "now": _stamp(NOW),
                "facts": doc,
                "outcome": decision.outcome,
                "reason": decision.reason,
                "reroute_path": decision.path,
                "path": path,
            },
        )


def _unknown(inv: InvariantPlan, checkpoint: str, where: Location, why: str) -> PolicyError:
    return PolicyError(
        f"invariant `{inv.name}` could not be proved at checkpoint `{checkpoint or '(none)'}`: "
        + why,
        code="policy.invariant.unknown",
        location=where,
        severity="warning",
        suggestion="test the facts of such conditions with `has()` and comparisons of "
        "literals, or add a policy test for this path",
    )


def _forbidden(inv: InvariantPlan, step: tuple[Any, ...]) -> bool:
    outcome = step[2]
    return _breaks(inv, outcome.outcome, outcome.path)


def _breaks(inv: InvariantPlan, outcome: str, path: str | None) -> bool:
    if inv.reroute_only_to is not None:
        return outcome == "reroute" and path not in inv.reroute_only_to
    return outcome in inv.never


_CHARSET = z3.Union(
    z3.Range("a", "z"), z3.Range("A", "Z"), z3.Range("0", "9"), *(z3.Re(c) for c in "_.:/-")
)


def _covered(action: Any, inv: InvariantPlan) -> Any:
    """The action is one ``inv`` covers (`at`), written with the characters of action names."""
    return z3.And(
        z3.InRe(action, z3.Star(_CHARSET)), z3.Or(*(z3.InRe(action, _glob(p)) for p in inv.at))
    )


def _glob(pattern: str) -> Any:
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(z3.Star(_CHARSET))
        elif ch == "?":
            parts.append(_CHARSET)
        else:
            parts.append(z3.Re(ch))
    return z3.Concat(*parts) if len(parts) > 1 else parts[0]


def _glob_match(pattern: str, text: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.S) is not None


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _string(value: Any) -> str:
    return str(value.as_string())


def _python(value: Any) -> Any:
    if z3.is_true(value) or z3.is_false(value):
        return z3.is_true(value)
    if z3.is_string_value(value):
        return _string(value)
    if z3.is_int_value(value):
        return value.as_long()
    fraction = value.as_fraction()
    number = fraction.numerator / fraction.denominator
    return int(number) if number == int(number) else number


def _placeholder(path: tuple[str, ...]) -> Any:
    """A value for a fact that must be present but is never compared: of its schema type."""
    variable = schema.VARIABLE_TABLE.get(path[0])
    if variable is not None and variable.closed and path[1] in variable.fields:
        return {"bool": False, "int": 0, "double": 0.0}.get(
            variable.fields[path[1]].type or "", "present"
        )
    return "present"


def _put(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = doc
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    if not (isinstance(node.get(path[-1]), dict) and value == "present"):
        node[path[-1]] = value


def prove(plan: Plan) -> list[PolicyError]:
    """Every invariant of every journey of ``plan``: a violation (error) with its reproduced
    counterexample, or a warning where the checker cannot decide; nothing where it holds."""
    out: list[PolicyError] = []
    for journey in plan.journeys.values():
        if not journey.invariants:
            continue
        prover = _Prover(plan, journey)
        for inv in journey.invariants:
            out += prover.prove(inv)
    return sorted(out, key=PolicyError.sort_key)


__all__ = ["NOW", "prove"]
