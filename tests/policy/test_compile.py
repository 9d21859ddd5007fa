"""The compiler: plans, step refs, require specs, routes, errors it reports."""

from __future__ import annotations

import textwrap

import pytest

from juncture.errors import BundleError
from juncture.policy import compile_plan, load_sources
from juncture.policy.compile import compile_journeys, describe
from juncture.policy.plan import IF, OUTCOME, REQUIRE, USE, glob_specificity

HEAD = """\
journey: j
methods:
  password: {kind: password}
  totp: {kind: totp}
  passkey: {kind: webauthn}
  helper: {kind: approval}
"""


def bundle(text: str):
    return load_sources({"j.yaml": textwrap.dedent(text).encode()})


def errors_of(text: str) -> list[tuple[str, int, str]]:
    plan, problems = compile_journeys(bundle(text))
    assert plan is None
    return [(p.code, p.location.line, p.message) for p in problems]


def test_compiled_steps_and_refs():
    plan = compile_plan(
        bundle(
            HEAD
            + """\
guard: [{if: "signals.account_disabled", deny: disabled}]
checkpoints:
  a:
    - use: f
    - require: {all: [password, totp], within: 10m}
    - allow: {scopes: [s], ttl: 90s}
  "*": [{reroute: {path: /x}}]
  "tool:*": [{revoke: r}]
fragments:
  f: [{if: "context.x", then: [{deny: x}], else: [{require: {aal: 2}}]}]
"""
        )
    )
    j = plan.journeys["j"]
    assert plan.version.startswith("sha256:")
    assert j.guard[0][0] == IF
    ref, steps = j.checkpoint("a")
    assert (ref.kind, ref.text, ref.line) == ("checkpoint", "a", 10)
    assert [s[0] for s in steps] == [USE, REQUIRE, OUTCOME]
    spec = steps[1][2]
    assert (spec.methods, spec.mode, spec.within, spec.offered) == (
        ("password", "totp"),
        "all",
        600,
        ("password", "totp"),
    )
    aal_spec = steps[0][2][0][4][0][2]
    assert aal_spec.offered == ("totp", "passkey")  # by level, then name
    assert steps[2][2].scopes == ("s",) and steps[2][2].ttl == 90
    assert j.checkpoint("tool:x")[0].text == "tool:*"
    assert j.checkpoint("zzz")[0].text == "*"
    texts = [s.text for s in plan.steps]
    assert texts == [
        "if signals.account_disabled",
        "deny disabled",
        "use f",
        "if context.x",
        "deny x",
        "require aal>=2",
        "require all(password, totp) within 10m",
        "allow scopes=s ttl=1m30s",
        "reroute /x",
        "revoke r",
    ]
    assert j.reads == frozenset({"signals", "context"})
    assert j.methods["helper"].aal == 0 and j.methods["passkey"].amr == ("hwk",)
    assert plan.bundle.journeys[0].name == "j"


def test_risk_rules_and_levels_are_compiled():
    plan = compile_plan(
        bundle(
            'journey: j\nrisk:\n  rules: [{when: "context.a", add: 5, reason: a}]\n'
            "  levels: {low: 0, high: 50}\ncheckpoints: {a: [{allow: {}}]}\n"
        )
    )
    j = plan.journeys["j"]
    assert j.risk_levels == ((50, "high"), (0, "low"))
    assert [(r.add, r.reason, r.ref.text) for r in j.risk_rules] == [
        (5, "a", "risk +5 a when context.a")
    ]


def test_describe_every_step_kind():
    b = bundle(
        HEAD + "checkpoints:\n  a:\n    - require: {any: [totp], aal: 2}\n    - allow: {ttl: 0}\n"
    )
    steps = b.journeys[0].checkpoints[0].steps
    assert describe(steps[0]) == ("require", "require any(totp) aal>=2")
    assert describe(steps[1]) == ("allow", "allow ttl=0s")


def test_same_condition_is_compiled_once_but_keeps_each_location():
    plan = compile_plan(
        bundle(
            "journey: j\ncheckpoints:\n  a: [{if: 'context.x', deny: a}, {allow: {}}]\n"
            "  b: [{if: 'context.x', deny: b}, {allow: {}}]\n"
        )
    )
    j = plan.journeys["j"]
    first, second = j.exact["a"][1][0][2], j.exact["b"][1][0][2]
    assert (first.location.line, second.location.line) == (3, 4)
    assert first.node is second.node


def test_the_same_bad_condition_is_reported_at_every_place():
    found = errors_of(
        "journey: j\ncheckpoints:\n  a: [{if: 'geo.contry', deny: a}, {allow: {}}]\n"
        "  b: [{if: 'geo.contry', deny: b}, {allow: {}}]\n"
    )
    assert [(code, line) for code, line, _ in found] == [
        ("policy.cel.unknown_field", 3),
        ("policy.cel.unknown_field", 4),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("a: [{require: {any: [password], aal: 2}}]", "no listed method reaches aal 2"),
        ("a: [{require: {aal: 3}}]", None),
    ],
)
def test_require_that_no_method_can_meet(body, message):
    text = "journey: j\nmethods: {password: {kind: password}}\ncheckpoints:\n  " + body + "\n"
    found = errors_of(text)
    assert [code for code, _, _ in found] == ["policy.schema.value"]
    assert found[0][2] == (message or "no method of the journey reaches aal 3")


def test_compile_plan_raises_only_errors():
    with pytest.raises(BundleError) as info:
        compile_plan(
            bundle(
                HEAD + "checkpoints:\n  a: [{require: {any: [pasword]}}, {use: g}]\n"
                "fragments: {unused: [{allow: {}}]}\n"
            )
        )
    assert [e.code for e in info.value.errors] == [
        "policy.ref.unknown_method",
        "policy.ref.unknown_fragment",
    ]
    assert info.value.code == "policy.ref.unknown_method"


def test_warnings_do_not_stop_compiling():
    plan, problems = compile_journeys(bundle("journey: j\nguard: [{deny: x}]\n"))
    assert plan is not None and problems == []


def test_routes():
    b = load_sources(
        {
            "a.yaml": b"journey: a\napplies_to: [web]\ncheckpoints: {x: [{allow: {}}]}\n",
            "b.yaml": b"journey: b\nsubjects: [service]\ncheckpoints: {x: [{allow: {}}]}\n",
            "c.yaml": b"journey: c\nsubjects: [service]\ncheckpoints: {x: [{allow: {}}]}\n",
        }
    )
    plan = compile_plan(b)
    assert plan.routes[("web", "user")] == "a"
    assert plan.routes[(None, "user")] == "!no_journey"
    assert plan.routes[(None, "service")] == "!ambiguous_journey"
    assert plan.route("web", "agent")[0].name == "a"
    assert plan.route("other", "user") == (None, "no_journey")


def test_glob_specificity():
    assert glob_specificity("tool:tr*") < glob_specificity("tool:*")
    assert glob_specificity("a*") < glob_specificity("a**")


def test_a_question_mark_is_more_specific_than_a_star():
    assert glob_specificity("tool:?") < glob_specificity("tool:*")
    plan = compile_plan(
        load_sources(
            {
                "j.yaml": b"journey: j\ncheckpoints:\n"
                b"  'tool:*': [{deny: star}]\n  'tool:?': [{deny: one}]\n"
                b"  'tool:[x]': [{deny: brackets}]\n"
            }
        )
    )
    journey = plan.journeys["j"]
    assert journey.checkpoint("tool:a")[0].text == "tool:?"
    assert journey.checkpoint("tool:ab")[0].text == "tool:*"
    # brackets are literal characters of a name, not a character class
    assert journey.checkpoint("tool:[x]")[0].text == "tool:[x]"
    assert journey.checkpoint("tool:x")[0].text == "tool:?"
