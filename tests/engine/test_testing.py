"""The policy test runner: cases, expectations, defaults, malformed files, uncovered steps."""

from __future__ import annotations

import textwrap

import pytest

from juncture.engine import testing
from juncture.engine.testing import merge, run_file, run_tests
from juncture.errors import PolicyError

from .helpers import build_plan

JOURNEY = """\
journey: j
methods:
  password: {kind: password}
  totp: {kind: totp}
risk:
  - {when: "context.odd", add: 50, reason: odd}
checkpoints:
  browse: [{allow: {}}]
  pay:
    - require: {any: [totp], within: 5m}
    - allow: {scopes: [pay], ttl: 10m}
  partner: [{reroute: {path: /lite, scopes: [read]}}]
  geo: [{if: "geo.country == 'DE'", allow: {}}, {deny: elsewhere}]
"""
PLAN = build_plan(JOURNEY)
OTHER = build_plan(JOURNEY, "journey: k\napplies_to: [bots]\ncheckpoints: {browse: [{deny: k}]}\n")


def run(text: str, plan=PLAN) -> testing.TestReport:
    return run_tests(plan, {"j_test.yaml": textwrap.dedent(text).encode()})


def test_passing_cases_and_every_expect_field():
    report = run(
        """
        now: 2026-11-29T10:00:00Z
        facts: {context: {odd: true}}
        tests:
          - name: pay with fresh totp
            checkpoint: pay
            facts: {session: {proofs: [{method: totp, at: -1m}]}}
            expect:
              outcome: allow
              scopes: [pay]
              ttl: 10m
              risk_score: 50
              risk_level: medium
              risk_reasons: [odd]
              missing: []
          - name: ttl in seconds
            checkpoint: pay
            facts: {session: {proofs: [{method: totp, at: -1m}]}}
            expect: {outcome: allow, ttl: 600}
          - name: stale totp asks again
            checkpoint: pay
            facts: {session: {proofs: [{method: totp, at: -6m}]}}
            expect: {outcome: step_up, reason: step_up_required, methods: [totp]}
          - name: partner
            checkpoint: partner
            expect: {outcome: reroute, path: /lite, scopes: [read]}
          - name: geo missing
            checkpoint: geo
            facts: {context: {odd: false}}
            expect: {outcome: deny, reason: evaluation_error, missing: [geo], risk_score: 0}
        """
    )
    assert [r.failures for r in report.results] == [()] * 5
    assert (report.passed, report.failed, report.ok) == (5, 0, True)
    assert report.errors == ()
    assert report.results[0].name == "pay with fresh totp"
    assert (report.results[0].file, report.results[0].line) == ("j_test.yaml", 5)
    assert report.results[0].decision.outcome == "allow"


def test_failing_case_lists_every_difference():
    report = run(
        """
        tests:
          - name: wrong
            checkpoint: pay
            facts: {context: {odd: false}}
            expect:
              outcome: allow
              reason: fine
              scopes: [x]
              methods: [password]
              path: /p
              ttl: 1m
              risk_score: 5
              risk_level: high
              risk_reasons: [r]
              missing: [geo]
          - name: methods of a decision without step-up
            checkpoint: browse
            expect: {outcome: allow, methods: [totp]}
        """
    )
    assert (report.passed, report.failed, report.ok) == (0, 2, False)
    first, second = report.results
    assert first.failures == (
        "outcome: expected 'allow', got 'step_up'",
        "reason: expected 'fine', got 'step_up_required'",
        "scopes: expected ['x'], got []",
        "path: expected '/p', got None",
        "methods: expected ['password'], got ['totp']",
        "ttl: expected 60, got None",
        "risk_score: expected 5, got 0",
        "risk_level: expected 'high', got 'low'",
        "risk_reasons: expected ['r'], got []",
        "missing: expected ['geo'], got []",
    )
    assert first.decision.explanation  # the failure keeps the decision to explain it
    assert second.failures == ("methods: expected ['totp'], got None",)


def test_defaults_merge_under_each_case():
    report = run(
        """
        journey: j
        now: 2026-11-29T10:00:00Z
        facts:
          geo: {country: FR, city: Paris}
          session: {proofs: [{method: totp, at: "2026-11-29T09:50:00Z"}]}
        tests:
          - name: case facts win key by key
            checkpoint: geo
            facts: {geo: {country: DE}}
            expect: {outcome: allow}
          - name: file facts apply
            checkpoint: geo
            expect: {outcome: deny, reason: elsewhere}
          - name: case now moves the clock
            checkpoint: pay
            now: 2026-11-29T09:52:00Z
            expect: {outcome: allow}
          - name: file now
            checkpoint: pay
            expect: {outcome: step_up}
        """
    )
    assert [r.failures for r in report.results] == [()] * 4


def test_journey_default_and_per_case():
    report = run(
        """
        journey: k
        tests:
          - {name: file journey, checkpoint: browse, expect: {outcome: deny, reason: k}}
          - {name: case journey, checkpoint: browse, journey: j, expect: {outcome: allow}}
          - name: routing when no journey is named
            checkpoint: browse
            journey: null
            facts: {app: bots}
            expect: {outcome: deny, reason: k}
        """,
        plan=OTHER,
    )
    assert [r.failures for r in report.results] == [()] * 3


def test_merge():
    assert merge({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": 3}, "e": 4}) == {
        "a": {"b": 3, "c": 2},
        "d": 1,
        "e": 4,
    }
    assert merge({"a": [1]}, {"a": [2]}) == {"a": [2]}
    assert merge({"a": 1}, "x") == "x"


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("- just a list\n", "a test file must be a mapping with `tests:`", 1),
        ("journey: j\ncases: []\n", "unknown key `cases` in a test file", 2),
        ("journey: j\n", "a test file needs a `tests:` list", 1),
        ("tests: {a: 1}\n", "a test file needs a `tests:` list", 1),
        ("tests:\n  - just text\n", "a test case must be a mapping", 2),
        (
            "tests:\n  - {name: a, checkpoint: b, expect: {outcome: allow}, extra: 1}\n",
            "unknown key `extra` in a test case",
            2,
        ),
        (
            "tests:\n  - {checkpoint: b, expect: {outcome: allow}}\n",
            "a test case needs a `name` and a `checkpoint` (strings)",
            2,
        ),
        (
            "tests:\n  - {name: a, checkpoint: [b], expect: {outcome: allow}}\n",
            "a test case needs a `name` and a `checkpoint` (strings)",
            2,
        ),
        ("tests:\n  - {name: a, checkpoint: b}\n", "test `a`: invalid `expect`: ", 2),
        (
            "tests:\n  - {name: a, checkpoint: b, expect: {outcome: allow, colour: red}}\n",
            "test `a`: invalid `expect`: ",
            2,
        ),
        (
            "tests:\n  - {name: a, checkpoint: b, expect: {outcome: allow, ttl: 5 minutes}}\n",
            "test `a`: invalid `expect.ttl`: `5 minutes` is not a duration",
            2,
        ),
        (
            "tests:\n  - {name: a, checkpoint: b, now: soon, expect: {outcome: allow}}\n",
            "test `a`: `soon` is not an RFC 3339 timestamp",
            2,
        ),
        (
            "tests:\n  - {name: a, checkpoint: b, facts: {colour: red},"
            " expect: {outcome: allow}}\n",
            "test `a`: invalid facts: ",
            2,
        ),
    ],
)
def test_invalid_test_files(text, message, line):
    report = run_tests(PLAN, {"bad_test.yaml": text.encode(), "ok_test.yaml": OK_CASE})
    assert len(report.errors) == 1
    error = report.errors[0]
    assert error.code == "policy.test.invalid"
    assert error.message.startswith(message)
    assert (error.location.file, error.location.line) == ("bad_test.yaml", line)
    assert report.passed == 1  # other files still run
    assert not report.ok


OK_CASE = b"tests:\n  - {name: ok, checkpoint: browse, expect: {outcome: allow}}\n"


def test_yaml_errors_in_a_test_file_are_reported():
    report = run_tests(PLAN, {"bad_test.yaml": b"tests: [\n"})
    assert report.errors[0].code == "policy.yaml.syntax"
    assert report.results == ()


def test_only_test_files_run_and_no_tests_is_not_ok():
    report = run_tests(PLAN, {"j.yaml": JOURNEY.encode(), "data/x.yaml": b"a: 1\n"})
    assert report.results == ()
    assert report.errors == ()
    assert not report.ok
    assert run(
        "tests: []\n"
    ).ok is False  # fmt: skip


def test_uncovered_steps_are_reported():
    report = run(
        """
        tests:
          - {name: browse, checkpoint: browse, expect: {outcome: allow}}
          - name: pay step-up
            checkpoint: pay
            expect: {outcome: step_up}
        """
    )
    uncovered = [(s.kind, s.text, s.line) for s in report.uncovered]
    assert uncovered == [
        ("allow", "allow scopes=pay ttl=10m", 11),
        ("reroute", "reroute /lite", 12),
        ("if", "if geo.country == 'DE'", 13),
        ("allow", "allow", 13),
        ("deny", "deny elsewhere", 13),
    ]
    touched_all = run(
        """
        now: 2026-11-29T10:00:00Z
        tests:
          - {name: a, checkpoint: browse, expect: {outcome: allow}}
          - name: b
            checkpoint: pay
            facts: {session: {proofs: [{method: totp, at: -1m}]}}
            expect: {outcome: allow}
          - {name: c, checkpoint: partner, expect: {outcome: reroute}}
          - {name: d, checkpoint: geo, facts: {geo: {country: DE}}, expect: {outcome: allow}}
          - {name: e, checkpoint: geo, facts: {geo: {country: FR}}, expect: {outcome: deny}}
        """
    )
    assert touched_all.uncovered == ()


def test_run_file_returns_results_in_order():
    touched: set = set()
    results = run_file(
        PLAN,
        "x_test.yaml",
        b"tests:\n  - {name: one, checkpoint: browse, expect: {outcome: allow}}\n"
        b"  - {name: two, checkpoint: nope, expect: {outcome: deny, reason: no_checkpoint}}\n",
        touched,
    )
    assert [(r.name, r.line, r.passed) for r in results] == [("one", 2, True), ("two", 3, True)]
    assert {t.kind for t in touched} >= {"allow", "risk", "checkpoint"}


def test_a_journey_that_is_not_a_name_is_an_invalid_test_file():
    from juncture.engine.testing import TestReport, run_tests

    assert TestReport.__test__ is False  # pytest must not collect the report class
    plan = build_plan("journey: j\ncheckpoints: {a: [{allow: {}}]}\n")
    files = {
        "j_test.yaml": b"tests:\n  - {name: t, checkpoint: a, journey: [j], "
        b"expect: {outcome: allow}}\n"
    }
    report = run_tests(plan, files)
    assert [e.code for e in report.errors] == ["policy.test.invalid"]
    assert "journey" in report.errors[0].message


def test_null_in_a_case_removes_a_default_fact():
    assert merge({"device": {"managed": True}, "app": "a"}, {"device": None}) == {"app": "a"}
    assert merge({"geo": {"country": "DE", "city": "X"}}, {"geo": {"city": None}}) == {
        "geo": {"country": "DE"}
    }
    assert merge({}, {"gone": None}) == {}


def test_a_bad_case_does_not_hide_the_good_ones():
    plan = build_plan("journey: j\ncheckpoints: {a: [{allow: {}}]}\n")
    files = {
        "j_test.yaml": b"tests:\n"
        b"  - {name: bad, expect: {outcome: allow}}\n"
        b"  - {name: good, checkpoint: a, expect: {outcome: allow}}\n"
        b"  - {name: also bad, checkpoint: a, expect: {outcome: allow}, extra: 1}\n"
    }
    report = run_tests(plan, files)
    assert [r.name for r in report.results] == ["good"]
    assert [e.location.line for e in report.errors] == [2, 4]
    assert not report.ok


def test_run_file_without_an_error_list_raises_at_a_bad_case():
    plan = build_plan("journey: j\ncheckpoints: {a: [{allow: {}}]}\n")
    with pytest.raises(PolicyError) as info:
        run_file(plan, "t_test.yaml", b"tests:\n  - {name: bad, expect: {outcome: allow}}\n", set())
    assert info.value.code == "policy.test.invalid"
