"""Property: whenever the invariant checker says an invariant holds, no facts make a decision
that breaks it; whenever it reports a violation, the facts it shows reproduce it.

Random journeys are built from a small grammar (conditions over `context`, `subject` and
`risk`, `require` gates, `if` with both branches, fragments, the guard, risk rules); random
facts are then decided by the engine and compared with what the checker said.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from juncture.analysis import check
from juncture.engine import Facts, evaluate
from juncture.engine.evaluate import activation, gate_met
from juncture.errors import BundleError
from juncture.policy import compile_plan, load_sources

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
METHODS = {"password": "password", "totp": "totp", "passkey": "webauthn"}

atoms = st.sampled_from(
    [
        "context.a",
        "!context.a",
        "has(context.a) && context.a",
        "context.n > 3",
        "context.n <= 1",
        "subject.properties.tier == 'gold'",
        "subject.properties.tier != 'basic'",
        "risk.level == 'high'",
        "risk.score >= 40",
        "'flagged' in risk.reasons",
        "has(context.b)",
        "context.tier in ['gold', 'silver']",
    ]
)
conditions = st.one_of(
    atoms,
    st.builds(lambda a, b: f"{a} && {b}", atoms, atoms),
    st.builds(lambda a, b: f"{a} || {b}", atoms, atoms),
)
gates = st.builds(
    lambda methods, within: {"require": {"any": methods, **({"within": within} if within else {})}},
    st.lists(st.sampled_from(sorted(METHODS)), min_size=1, max_size=2, unique=True),
    st.sampled_from([None, "5m", "1h"]),
)
outcomes = st.sampled_from(
    [{"allow": {}}, {"deny": "no"}, {"reroute": {"path": "/limited"}}, {"reroute": {"path": "/x"}}]
)


def _steps(depth: int) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Steps that go on (gates, `if` with an outcome, branches, `use`), then maybe an outcome:
    an outcome in the middle would make the next step unreachable, which the language refuses.
    """
    going_on = st.one_of(gates, st.builds(lambda c, o: {"if": c, **o}, conditions, outcomes))
    if depth > 0:
        branch = st.builds(
            lambda c, t, e: {"if": c, "then": t, "else": e},
            conditions,
            _steps(depth - 1),
            _steps(depth - 1),
        )
        going_on = st.one_of(going_on, branch, st.just({"use": "shared"}))
    return st.builds(
        lambda body, end: body + end,
        st.lists(going_on, min_size=1, max_size=3),
        st.lists(outcomes, max_size=1),
    )


invariants = st.sampled_from(
    [
        {"never": "allow", "unless": {"require": {"any": ["totp", "passkey"]}}},
        {"never": "allow", "unless": {"require": {"any": ["passkey"], "within": "5m"}}},
        {"never": ["allow", "reroute"], "when": "risk.level == 'high'"},
        {"never": "allow", "when": "subject.properties.tier == 'gold' && context.n > 3"},
        {"reroute_only_to": ["/limited"]},
    ]
)


@st.composite
def journeys(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    invariant = draw(invariants)
    doc: dict[str, Any] = {
        "journey": "j",
        "applies_to": ["app"],
        "subjects": ["user"],
        "methods": {name: {"kind": kind} for name, kind in METHODS.items()},
        "risk": {
            "rules": [
                {"when": "has(context.flagged) && context.flagged", "add": 50, "reason": "flagged"},
                {"when": "context.n > 5", "add": 30, "reason": "many"},
            ]
        },
        "guard": draw(
            st.lists(st.builds(lambda c, o: {"if": c, **o}, conditions, outcomes), max_size=1)
        ),
        "checkpoints": {"pay": draw(_steps(2)), "*": draw(_steps(1))},
        "fragments": {"shared": draw(_steps(0))},
        "invariants": {"prop": {"at": "pay", **invariant}},
    }
    return doc, invariant


facts_strategy = st.fixed_dictionaries(
    {},
    optional={
        "a": st.booleans(),
        "b": st.booleans(),
        "n": st.integers(-2, 8),
        "flagged": st.booleans(),
        "tier": st.sampled_from(["gold", "silver", "basic"]),
        "ptier": st.sampled_from(["gold", "basic", "x"]),
        "proofs": st.lists(
            st.tuples(
                st.sampled_from(sorted(METHODS)),
                st.sampled_from([0, 60, 600, 7200]),
                st.sampled_from([None, 0, 1]),
            ),
            max_size=3,
        ),
    },
)


def _document(drawn: dict[str, Any]) -> dict[str, Any]:
    context = {k: drawn[k] for k in ("a", "b", "n", "flagged", "tier") if k in drawn}
    subject: dict[str, Any] = {"type": "user", "id": "u"}
    if "ptier" in drawn:
        subject["properties"] = {"tier": drawn["ptier"]}
    proofs = []
    for method, age, aal in drawn.get("proofs", []):
        proof: dict[str, Any] = {"method": method, "at": (NOW - timedelta(seconds=age)).isoformat()}
        if aal is not None:
            proof["aal"] = aal
        proofs.append(proof)
    return {"app": "app", "subject": subject, "context": context, "session": {"proofs": proofs}}


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(journeys(), st.lists(facts_strategy, min_size=1, max_size=25))
def test_an_invariant_the_checker_proves_is_never_broken_by_random_facts(
    generated: tuple[dict[str, Any], dict[str, Any]], samples: list[dict[str, Any]]
) -> None:
    doc, _ = generated
    files = {"j.yaml": json.dumps(doc).encode()}  # JSON is YAML, and has no aliases
    try:
        bundle = load_sources(files)
    except BundleError:  # a generated journey the language refuses
        event("refused by the loader")
        return
    plan, problems = check(bundle)
    if any(p.severity == "error" and "invariant" not in p.code for p in problems):
        event("refused by the static checks")
        return
    violations = [p for p in problems if p.code == "policy.invariant.violated"]
    unknown = [p for p in problems if p.code == "policy.invariant.unknown"]
    compiled = compile_plan(bundle)
    journey = compiled.journeys["j"]
    (inv,) = journey.invariants
    for problem in violations:  # what it reports reproduces
        facts = Facts.from_document(problem.extra["facts"])
        decision = evaluate(compiled, problem.extra["action"], facts, NOW)
        assert decision.outcome == problem.extra["outcome"]
    if violations or unknown:
        event("violated" if violations else "unknown")
        return
    event("holds: random facts decided")
    assert plan is not None
    for drawn in samples:  # it said the invariant holds: no facts break it
        facts = Facts.from_document(_document(drawn))
        decision = evaluate(compiled, "pay", facts, NOW)
        if inv.reroute_only_to is not None:
            broken = decision.outcome == "reroute" and decision.path not in inv.reroute_only_to
        else:
            broken = decision.outcome in inv.never
            if broken and inv.when is not None:
                try:
                    broken = inv.when(activation(compiled, journey, "pay", facts, NOW))
                except Exception:
                    broken = False
            if broken and inv.unless is not None:
                broken = not gate_met(journey, inv.unless, facts.proofs, NOW)
        assert not broken, (doc, drawn, decision)
