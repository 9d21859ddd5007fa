"""Static checks: unreachable steps, references, missing requires, overlaps, CEL errors."""

from __future__ import annotations

import textwrap

import pytest

from juncture.errors import PolicyError
from juncture.policy import check, load_sources

HEAD = """\
journey: j
methods:
  password: {kind: password}
  totp: {kind: totp}
"""


def problems(*texts: str) -> list[PolicyError]:
    files = {f"j{i}.yaml": textwrap.dedent(t).encode() for i, t in enumerate(texts)}
    return check(load_sources(files))


def codes(found: list[PolicyError]) -> list[tuple[str, int, str]]:
    return [(p.code, p.location.line, p.severity) for p in found]


def test_clean_journey_has_no_problems():
    assert problems(HEAD + "checkpoints:\n  a: [{require: {any: [password]}}, {allow: {}}]\n") == []


@pytest.mark.parametrize(
    ("body", "line"),
    [
        # after a terminal step
        ("checkpoints:\n  a:\n    - deny: no\n    - allow: {}\n", 8),
        # after an `if` whose both branches end
        (
            "checkpoints:\n  a:\n    - if: 'context.x'\n      then: [{allow: {}}]\n"
            "      else: [{deny: no}]\n    - allow: {}\n",
            10,
        ),
        # inside a branch
        ("checkpoints:\n  a:\n    - if: 'context.x'\n      then: [{allow: {}}, {deny: no}]\n", 8),
        # after a `use` of a fragment that always ends
        (
            "checkpoints:\n  a: [{use: f}, {allow: {}}]\n"
            "fragments:\n  f: [{require: {any: [totp]}}, {deny: no}]\n",
            6,
        ),
        # in the guard
        ("guard: [{revoke: x}, {deny: y}]\ncheckpoints: {a: [{allow: {}}]}\n", 5),
        # in a fragment
        ("checkpoints: {a: [{use: f}]}\nfragments:\n  f: [{allow: {}}, {deny: no}]\n", 7),
    ],
)
def test_unreachable_steps(body, line):
    found = [p for p in problems(HEAD + body) if p.code == "policy.check.unreachable_step"]
    assert codes(found) == [("policy.check.unreachable_step", line, "error")]
    assert found[0].suggestion == "remove it or move it before the outcome"
    assert "can never run" in found[0].message


@pytest.mark.parametrize(
    "body",
    [
        # only one branch ends
        "checkpoints:\n  a:\n    - if: 'context.x'\n      then: [{deny: no}]\n    - allow: {}\n",
        "checkpoints:\n  a:\n    - {if: 'context.x', deny: no}\n    - allow: {}\n",
        # a fragment that may fall through
        "checkpoints:\n  a: [{use: f}, {allow: {}}]\n"
        "fragments:\n  f: [{if: 'context.x', deny: no}]\n",
        # a require is a gate, not an end
        "checkpoints:\n  a: [{require: {any: [totp]}}, {allow: {}}]\n",
    ],
)
def test_reachable_steps_are_not_reported(body):
    assert "policy.check.unreachable_step" not in [p.code for p in problems(HEAD + body)]


def test_fragment_cycle_is_reported_once_with_the_path():
    found = problems(
        HEAD
        + "checkpoints: {a: [{use: f}, {allow: {}}]}\n"
        + "fragments:\n  f: [{use: g}]\n  g: [{if: 'context.x', then: [{use: f}]}]\n"
    )
    cycles = [p for p in found if p.code == "policy.ref.fragment_cycle"]
    assert len(cycles) == 1
    assert cycles[0].message == "fragments use each other in a cycle: f -> g -> f"
    assert cycles[0].location.line == 7


def test_self_use_cycle_does_not_hang_the_checks():
    found = problems(
        HEAD + "checkpoints: {a: [{use: f}]}\nfragments:\n  f: [{use: f}, {deny: x}]\n"
    )
    assert "policy.ref.fragment_cycle" in [p.code for p in found]


def test_unknown_method_and_fragment_with_suggestions():
    found = problems(
        HEAD
        + "checkpoints:\n  a: [{require: {any: [totpp, sms]}}, {use: sensitve}, {allow: {}}]\n"
        + "fragments:\n  sensitive: [{deny: x}]\n"
    )
    by_code = {(p.code, p.message): p for p in found}
    method = by_code[("policy.ref.unknown_method", "unknown method `totpp`")]
    assert method.suggestion == "did you mean `totp`?"
    assert method.location.line == 6
    other = by_code[("policy.ref.unknown_method", "unknown method `sms`")]
    assert other.suggestion == "declare it under `methods:`"
    fragment = by_code[("policy.ref.unknown_fragment", "unknown fragment `sensitve`")]
    assert fragment.suggestion == "did you mean `sensitive`?"
    assert "policy.ref.unused_fragment" in [p.code for p in found]


def test_missing_require_warning():
    found = problems(
        HEAD
        + """\
checkpoints:
  login: [{require: {any: [password]}}, {allow: {}}]
  browse: [{allow: {}}]
  open_if: [{if: "context.x", then: [{allow: {}}]}, {deny: no}]
  gated_if:
    - if: "context.x"
      then: [{require: {any: [totp]}}]
      else: [{require: {any: [password]}}]
    - allow: {}
  ends_if:
    - if: "context.x"
      then: [{deny: a}]
      else: [{deny: b}]
  denied: [{deny: x}]
  used: [{use: f}, {allow: {}}]
  use_open: [{use: g}]
  use_ends: [{use: h}, {deny: z}]
  falls: [{if: "context.x", then: [{deny: a}]}, {use: k}, {allow: {}}]
fragments:
  f: [{if: "context.y", then: [{require: {any: [totp]}}]}]
  g: [{if: "context.z", deny: q}, {allow: {}}]
  h: [{deny: y}]
  k: [{if: "context.w", deny: w}]
"""
    )
    warnings = [p for p in found if p.code == "policy.check.missing_require"]
    assert [(p.severity, p.location.line) for p in warnings] == [
        ("warning", 7),  # browse
        ("warning", 8),  # open_if: the allow inside the branch
        ("warning", 19),  # used: fragment f requires only when context.y holds
        ("warning", 22),  # falls: past an `if` and a `use` that may fall through
        ("warning", 25),  # use_open: the allow inside fragment g
    ]
    assert warnings[0].message == (
        "checkpoint `browse` can reach allow with no `require` on the way, "
        "while `login` requires authentication"
    )
    assert warnings[0].suggestion == "add a `require` step if this action is sensitive"
    assert "policy.check.unreachable_step" in [p.code for p in found]  # use_ends


def test_no_missing_require_when_the_guard_requires():
    body = (
        "guard: [{require: {any: [password]}}]\n"
        "checkpoints:\n  login: [{require: {any: [totp]}}, {allow: {}}]\n  browse: [{allow: {}}]\n"
    )
    assert problems(HEAD + body) == []


def test_no_missing_require_when_nothing_requires():
    assert problems(HEAD + "checkpoints:\n  a: [{allow: {}}]\n  b: [{allow: {}}]\n") == []


def test_unused_fragment_warning():
    found = problems(
        HEAD
        + "guard: [{use: g}]\ncheckpoints: {a: [{use: f}]}\n"
        + "fragments:\n  f: [{allow: {}}]\n  g: [{if: 'context.x', deny: y}]\n"
        + "  lonely: [{use: f}]\n"
    )
    assert codes(found) == [("policy.ref.unused_fragment", 10, "warning")]
    assert found[0].message == "fragment `lonely` is not used by any checkpoint"


def test_no_checkpoints_warning():
    found = problems(HEAD + "guard: [{deny: x}]\n")
    assert codes(found) == [("policy.check.no_checkpoints", 1, "warning")]
    assert found[0].message == "journey `j` declares no checkpoint: it denies every action"


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("", "", True),
        ("applies_to: [x]\n", "applies_to: [x, y]\n", True),
        ("applies_to: [x]\n", "applies_to: [y]\n", False),
        ("applies_to: [x]\n", "", False),  # the explicit journey wins for x
        ("subjects: [user]\n", "subjects: [agent]\n", False),
        ("subjects: [user]\n", "", True),
        ("subjects: [user, service]\n", "subjects: [service]\n", True),
    ],
)
def test_overlapping_journeys(a, b, overlap):
    found = problems(
        "journey: one\n" + a + "checkpoints: {a: [{allow: {}}]}\n",
        "journey: two\n" + b + "checkpoints: {a: [{allow: {}}]}\n",
    )
    overlaps = [p for p in found if p.code == "policy.bundle.overlap"]
    assert bool(overlaps) is overlap
    if overlap:
        assert overlaps[0].severity == "error"
        assert overlaps[0].location.file == "j1.yaml"
        assert overlaps[0].message.startswith("journeys `one` and `two` both govern")
        assert overlaps[0].suggestion == "give them different `applies_to` or `subjects`"


def test_cel_errors_are_surfaced_with_their_location():
    found = problems(
        HEAD
        + """\
risk:
  - {when: "risk.score > 3", add: 1, reason: loop}
checkpoints:
  a:
    - if: "geo.contry == 'DE'"
      allow: {}
    - if: "device.managed &&"
      deny: x
    - if: "sesion.aal > 1"
      deny: y
    - allow: {}
"""
    )
    got = [(p.code, p.location.line, p.suggestion) for p in found]
    assert got == [
        ("policy.cel.unknown_variable", 6, None),
        ("policy.cel.unknown_field", 9, "did you mean `country`?"),
        ("policy.cel.syntax", 11, None),
        ("policy.cel.unknown_variable", 13, "did you mean `session`?"),
    ]
    assert found[0].message == "this condition may not read `risk`"
    assert all(p.location.file == "j0.yaml" and p.location.col > 0 for p in found)
    assert "device.managed &&" in found[2].message


def test_problems_are_sorted_by_location():
    found = problems(
        HEAD + "checkpoints:\n  b: [{deny: x}, {allow: {}}]\n  a: [{require: {any: [nope]}}]\n",
        "journey: k\nsubjects: [agent]\nguard: [{deny: x}]\n",
    )
    keys = [p.sort_key() for p in found]
    assert keys == sorted(keys)
    files = [p.location.file for p in found]
    assert files == sorted(files) and set(files) == {"j0.yaml", "j1.yaml"}


def test_unknown_fragment_is_skipped_by_the_path_checks():
    found = problems(
        HEAD
        + "checkpoints:\n  login: [{require: {any: [password]}}, {allow: {}}]\n"
        + "  a: [{use: nope}, {allow: {}}]\n"
    )
    assert [(p.code, p.location.line) for p in found] == [
        ("policy.ref.unknown_fragment", 7),  # same line: sorted by column
        ("policy.check.missing_require", 7),
    ]


def test_missing_require_follows_every_path_of_one_checkpoint():
    found = problems(
        HEAD
        + """\
checkpoints:
  a:
    - if: "context.x"
      then:
        - if: "context.y"
          then: [{require: {any: [password]}}]
    - allow: {}
"""
    )
    warnings = [p for p in found if p.code == "policy.check.missing_require"]
    assert len(warnings) == 1
    assert warnings[0].message.endswith("while its other paths require authentication")


def test_a_very_long_chain_of_branches_is_walked_without_recursion():
    chain = "".join(f'    - {{if: "context.v{i}", then: [{{deny: d}}]}}\n' for i in range(1200))
    found = problems(
        HEAD + "checkpoints:\n  gated: [{require: {any: [password]}}, {allow: {}}]\n"
        "  long:\n" + chain + "    - allow: {}\n"
    )
    warnings = [p for p in found if p.code == "policy.check.missing_require"]
    assert [w.message.split("`")[1] for w in warnings] == ["long"]


def test_paths_that_meet_again_or_fall_off_the_end_are_not_open():
    found = problems(
        HEAD
        + """\
checkpoints:
  gated: [{require: {any: [password]}}, {allow: {}}]
  meet: [{if: "context.x", then: []}, {deny: d}]
  falls_off: [{if: "context.x", then: [{deny: a}]}]
"""
    )
    assert not [p for p in found if p.code == "policy.check.missing_require"]
