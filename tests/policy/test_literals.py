"""A string literal compared with a fact whose values are names the journey declares must be
one of them: a misspelling is an error with a "did you mean". The facts are enumerated from
the fact schema, so a field that gains `names` is tested here without a new test."""

from __future__ import annotations

import pytest

from juncture.policy import check, load_sources, schema

JOURNEY = """\
journey: j
methods:
  password: {kind: password}
  totp: {kind: totp}
networks:
  office: [10.0.0.0/8]
risk:
  rules:
    - {when: "signals.risk_elevated", add: 70, reason: flagged}
  levels: {low: 0, high: 70}
checkpoints:
  pay:
    - if: "CONDITION"
      deny: no
    - allow: {}
"""

#: kind of names -> (a declared name, a misspelling, the code)
NAMES = {
    "networks": ("office", "offce", "policy.ref.unknown_network"),
    "methods": ("totp", "totpp", "policy.ref.unknown_method"),
    "risk_levels": ("high", "hihg", "policy.ref.unknown_name"),
    "risk_reasons": ("flagged", "flaged", "policy.ref.unknown_name"),
}


def _named_fields() -> list[tuple[str, str, str]]:
    return [
        (variable.name, field, f.names)
        for variable in schema.VARIABLE_TABLE.values()
        for field, f in variable.fields.items()
        if f.names is not None
    ]


def _conditions(fact: str, text: str) -> list[str]:
    """Every way the language compares the fact with a literal."""
    out = [f"{fact} == '{text}'", f"'{text}' != {fact}", f"{fact} in ['{text}']"]
    if fact.endswith(("segments", "reasons", "methods")):
        out = [f"'{text}' in {fact}"]
    if fact.endswith("methods"):
        out += [f"has({fact}.{text})", f"{fact}.{text}.aal >= 2", f"{fact}['{text}'].aal > 1"]
    return out


def _problems(condition: str) -> list[tuple[str, str, str | None]]:
    source = JOURNEY.replace("CONDITION", condition.replace('"', '\\"'))
    bundle = load_sources({"j.yaml": source.encode()})
    return [(p.code, p.message, p.suggestion) for p in check(bundle) if p.severity == "error"]


def test_the_schema_names_the_facts_that_hold_declared_names() -> None:
    fields = _named_fields()
    assert {(v, f) for v, f, _ in fields} == {
        ("network", "segment"),
        ("network", "segments"),
        ("session", "methods"),
        ("risk", "level"),
        ("risk", "reasons"),
    }
    assert {kind for _, _, kind in fields} == set(NAMES)


@pytest.mark.parametrize(("variable", "field", "kind"), _named_fields())
def test_a_misspelt_name_is_an_error_with_a_suggestion(variable: str, field: str, kind: str):
    good, typo, code = NAMES[kind]
    for condition in _conditions(f"{variable}.{field}", typo):
        found = _problems(condition)
        assert len(found) == 1, (condition, found)
        assert found[0][0] == code and f"`{typo}`" in found[0][1], condition
        assert found[0][2] == f"did you mean `{good}`?", condition
    for condition in _conditions(f"{variable}.{field}", good):
        assert _problems(condition) == [], condition


def test_unknown_is_a_segment_and_a_name_far_from_any_says_declare_it() -> None:
    assert _problems("network.segment == 'unknown'") == []
    ((code, _, suggestion),) = _problems("network.segment == 'zzzzzz'")
    assert code == "policy.ref.unknown_network" and suggestion == "declare the network"


def test_literals_elsewhere_are_not_names() -> None:
    assert _problems("subject.id == 'offce' && geo.country in ['hihg']") == []
    assert _problems("network.segment == subject.properties.segment") == []


def test_a_condition_that_does_not_parse_is_reported_once() -> None:
    broken = _problems("risk.level == ")
    assert [code for code, _, _ in broken] == ["policy.cel.syntax"]


def test_the_invariants_when_and_the_risk_rules_are_checked_too() -> None:
    source = JOURNEY.replace("CONDITION", "true").replace(
        "signals.risk_elevated", "network.segment == 'offce'"
    )
    source += "invariants:\n  i: {never: allow, when: \"risk.level == 'hihg'\"}\n"
    bundle = load_sources({"j.yaml": source.encode()})
    codes = sorted(p.code for p in check(bundle) if p.severity == "error")
    assert codes == ["policy.ref.unknown_name", "policy.ref.unknown_network"]


def test_only_literals_are_names_and_only_declared_facts_hold_names() -> None:
    # an item that is not a string, an index that is not a literal, a fact of no names
    mixed = _problems("risk.level in ['high', 1] || 2 in risk.reasons")
    assert not [code for code, _, _ in mixed if code.startswith("policy.ref.")], mixed
    assert _problems("session.methods[subject.id].aal > 1 || resource.type == 'offce'") == []
    found = _problems("nope.segment == 'offce' || network.nope == 'offce'")
    assert found and all(code.startswith("policy.cel.") for code, _, _ in found), found


ACTIONS = """\
journey: j
methods:
  password: {kind: password}
risk:
  rules:
    - {when: "RISK", add: 70, reason: flagged}
  levels: {low: 0, high: 70}
guard:
  - if: "GUARD"
    deny: no
fragments:
  check: [{if: "FRAGMENT", deny: no}]
checkpoints:
  change_email:
    - if: "CHECKPOINT"
      deny: no
    - use: check
    - allow: {}
  "payment.*":
    - if: "GLOB"
      deny: no
    - allow: {}
STAR"""


def _action_problems(**conditions: str) -> list[tuple[str, str | None]]:
    source = ACTIONS.replace("STAR", conditions.pop("STAR", ""))
    for slot in ("RISK", "GUARD", "FRAGMENT", "CHECKPOINT", "GLOB"):
        source = source.replace(slot, conditions.get(slot, "true"))
    bundle = load_sources({"j.yaml": source.encode()})
    return [(p.code, p.suggestion) for p in check(bundle) if p.severity == "error"]


@pytest.mark.parametrize(
    ("slot", "condition", "suggestion"),
    [
        ("CHECKPOINT", "action.name == 'change_emial'", "did you mean `change_email`?"),
        ("CHECKPOINT", "action.name == 'payment.refund'", None),
        ("GLOB", "action.name in ['payment.refund', 'paymnt.card']", None),
        ("GLOB", "'change_email' != action.name", None),
        ("GUARD", "action.name == 'change_emial'", "did you mean `change_email`?"),
        ("RISK", "action.name == 'change_emial'", "did you mean `change_email`?"),
        ("FRAGMENT", "action.name == 'delete_account'", None),
    ],
)
def test_an_action_no_action_reaching_the_condition_can_be_is_an_error(
    slot: str, condition: str, suggestion: str | None
):
    found = _action_problems(**{slot: condition})
    assert [code for code, _ in found] == ["policy.ref.unknown_checkpoint"], found
    if suggestion is not None:
        assert suggestion in (found[0][1] or ""), found


@pytest.mark.parametrize(
    ("slot", "condition"),
    [
        ("CHECKPOINT", "action.name == 'change_email'"),
        ("GLOB", "action.name in ['payment.refund', 'payment.card']"),
        ("GUARD", "action.name == 'payment.refund' || action.name == 'change_email'"),
        ("RISK", "action.name != 'change_email'"),
        ("FRAGMENT", "action.name == 'change_email'"),
        ("CHECKPOINT", "resource.name == 'anything'"),  # only action.name is checked
    ],
)
def test_an_action_that_can_reach_the_condition_is_accepted(slot: str, condition: str):
    assert _action_problems(**{slot: condition}) == []


def test_a_journey_with_a_star_checkpoint_serves_any_action_outside_its_checkpoints():
    star = '  "*": [{deny: unknown_action}]\n'
    for slot in ("GUARD", "RISK", "FRAGMENT"):
        assert _action_problems(STAR=star, **{slot: "action.name == 'export'"}) == []
    # Inside a named checkpoint the action is still that checkpoint's.
    found = _action_problems(STAR=star, CHECKPOINT="action.name == 'export'")
    assert [code for code, _ in found] == ["policy.ref.unknown_checkpoint"]
