"""The `invariants:` section of a journey: decoded with every mistake reported at once, and
compiled (its `when` as a condition, its `unless` as a gate) apart from the decision's steps."""

from __future__ import annotations

import pytest

from juncture.errors import BundleError
from juncture.policy import check, compile_plan, load_sources

HEAD = """\
journey: pay
methods:
  password: {kind: password}
  totp: {kind: totp}
checkpoints:
  "payment.*":
    - require: {any: [totp], within: 5m}
    - allow: {}
"""


def _errors(section: str) -> list[tuple[str, str]]:
    with pytest.raises(BundleError) as caught:
        load_sources({"pay.yaml": (HEAD + section).encode()})
    return [(e.code, e.message) for e in caught.value.errors]


def test_an_invariant_in_full_is_decoded_and_compiled() -> None:
    bundle = load_sources(
        {
            "pay.yaml": (
                HEAD
                + """\
invariants:
  fresh:
    description: Payments need a fresh second factor.
    at: ["payment.*", refund]
    subjects: [user, agent]
    never: [allow, reroute]
    when: "risk.level != 'low'"
    unless: {require: {any: [totp], within: 5m}}
  limited:
    at: "payment.*"
    reroute_only_to: /limited
"""
            ).encode()
        }
    )
    fresh, limited = bundle.journeys[0].invariants
    assert (fresh.name, fresh.at, fresh.subjects, fresh.never) == (
        "fresh",
        ("payment.*", "refund"),
        ("user", "agent"),
        ("allow", "reroute"),
    )
    assert fresh.description.startswith("Payments") and fresh.when is not None
    assert fresh.unless is not None and fresh.unless.within == 300
    assert (limited.at, limited.never, limited.reroute_only_to) == (
        ("payment.*",),
        (),
        ("/limited",),
    )
    plan = compile_plan(bundle).journeys["pay"]
    assert [i.name for i in plan.invariants] == ["fresh", "limited"]
    assert plan.invariants[0].unless is not None and plan.invariants[0].when is not None
    assert "risk" not in plan.reads  # an invariant's condition is not one a decision reads
    default = load_sources({"pay.yaml": (HEAD + "invariants:\n  x: {never: allow}\n").encode()})
    assert default.journeys[0].invariants[0].at == ("*",)


def test_invariants_do_not_change_what_a_checkpoint_depends_on() -> None:
    plain = load_sources({"pay.yaml": HEAD.encode()})
    guarded = load_sources({"pay.yaml": (HEAD + "invariants:\n  x: {never: allow}\n").encode()})
    assert plain.journeys[0].fingerprints == guarded.journeys[0].fingerprints
    assert plain.version != guarded.version  # but they are part of the version


@pytest.mark.parametrize(
    ("section", "code", "words"),
    [
        ("invariants: [a]\n", "policy.schema.type", "`invariants` must be a mapping"),
        ("invariants:\n  bad name: {never: allow}\n", "policy.schema.name", "invariant name"),
        ("invariants:\n  a: [x]\n", "policy.schema.type", "invariant `a` must be a mapping"),
        ("invariants:\n  a: {at: x}\n", "policy.schema.missing_key", "exactly one of"),
        (
            "invariants:\n  a: {never: allow, reroute_only_to: [/x]}\n",
            "policy.schema.step",
            "exactly one of",
        ),
        (
            "invariants:\n  a: {reroute_only_to: [/x], when: 'true'}\n",
            "policy.schema.step",
            "go with `never`",
        ),
        ("invariants:\n  a: {never: allow, at: 'a b'}\n", "policy.schema.name", "`at` pattern"),
        ("invariants:\n  a: {never: allow, subjects: [usr]}\n", "policy.schema.value", "`usr`"),
        ("invariants:\n  a: {never: allw}\n", "policy.schema.value", "not `allw`"),
        ("invariants:\n  a: {never: allow, unless: x}\n", "policy.schema.type", "`unless`"),
        ("invariants:\n  a: {never: allow, unless: {}}\n", "policy.schema.missing_key", "gate"),
        (
            "invariants:\n  a: {never: allow, unless: {require: {}}}\n",
            "policy.schema.missing_key",
            "`require` needs",
        ),
        ("invariants:\n  a: {never: allow, when: 3}\n", "policy.schema.type", "`when`"),
        ("invariants:\n  a: {never: allow, nevr: x}\n", "policy.schema.unknown_key", "`nevr`"),
    ],
)
def test_a_malformed_invariant_is_reported(section: str, code: str, words: str) -> None:
    errors = _errors(section)
    assert any(c == code and words in message for c, message in errors), errors


def test_an_invariant_names_declared_methods_and_a_valid_condition() -> None:
    bundle = load_sources(
        {
            "pay.yaml": (
                HEAD
                + """\
invariants:
  a:
    never: allow
    unless: {require: {any: [totpp]}}
  b:
    never: allow
    when: "risk.scor > 1"
  c:
    never: allow
    unless: {require: {any: [password], aal: 3}}
"""
            ).encode()
        }
    )
    with pytest.raises(BundleError):
        compile_plan(bundle)
    found = [(p.code, p.message) for p in check(bundle) if p.severity == "error"]
    assert ("policy.ref.unknown_method", "unknown method `totpp`") in found
    assert any(code == "policy.cel.unknown_field" for code, _ in found)
    assert ("policy.schema.value", "no listed method reaches aal 3") in found
