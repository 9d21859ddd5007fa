"""Policy tests: named cases kept beside the journeys in ``*_test.yaml`` files.

A test file::

    journey: shop                  # optional: the journey every case uses
    now: 2026-11-29T10:00:00Z      # optional: the moment of every case
    facts: {app: shop-web}         # optional: facts merged under every case's facts
    tests:
      - name: changing the email asks for a second factor
        checkpoint: change_email
        facts:
          session: {proofs: [{method: password, at: -1h}]}
        expect: {outcome: step_up, methods: [totp, passkey]}

A case's facts are merged over the file's (mappings deeply; ``null`` removes a key).
`run_tests` evaluates every case against the compiled plan and reports the
cases that failed (with the decision's explanation) and the steps that no case
exercised.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from juncture.engine.decision import Decision
from juncture.engine.evaluate import evaluate
from juncture.engine.facts import Facts, parse_now
from juncture.errors import FactsError, Location, PolicyError
from juncture.policy.duration import parse_duration
from juncture.policy.loader import is_test_file
from juncture.policy.plan import Plan, StepRef
from juncture.policy.source import Located, plain, read_yaml

DEFAULT_NOW = "2026-01-01T12:00:00Z"
_FILE_KEYS = ("journey", "now", "facts", "tests")
_CASE_KEYS = ("name", "checkpoint", "journey", "now", "facts", "expect")


class Expect(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    outcome: str
    reason: str | None = None
    scopes: list[str] | None = None
    methods: list[str] | None = None
    path: str | None = None
    ttl: str | int | None = None
    risk_score: int | None = None
    risk_level: str | None = None
    risk_reasons: list[str] | None = None
    missing: list[str] | None = None


class CaseResult(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    file: str
    line: int
    passed: bool
    failures: tuple[str, ...] = ()
    decision: Decision


class TestReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of a bundle's policy tests (not a pytest test class)."""

    __test__ = False
    results: tuple[CaseResult, ...]
    uncovered: tuple[StepRef, ...]
    errors: tuple[PolicyError, ...] = ()

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def failed(self) -> int:
        return sum(not r.passed for r in self.results)

    @property
    def ok(self) -> bool:
        return not self.errors and self.failed == 0 and bool(self.results)


def merge(base: Any, over: Any) -> Any:
    """Deep-merge mappings (``over`` wins); any other value replaces; ``null`` removes a key.

    A case's facts are merged over the file's: ``device: null`` in a case leaves the file's
    device out of that case (a fact not observed).
    """
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merge(out[key], value) if key in out else value
        return out
    return over


def _invalid(message: str, loc: Location) -> PolicyError:
    return PolicyError(message, code="policy.test.invalid", location=loc)


def _compare(expect: Expect, decision: Decision) -> list[str]:
    failures = []

    def differ(what: str, want: Any, got: Any) -> None:
        if want is not None and want != got:
            failures.append(f"{what}: expected {want!r}, got {got!r}")

    differ("outcome", expect.outcome, decision.outcome)
    differ("reason", expect.reason, decision.reason)
    differ("scopes", expect.scopes, list(decision.scopes))
    differ("path", expect.path, decision.path)
    if expect.methods is not None:
        got = list(decision.step_up.methods) if decision.step_up else None
        differ("methods", expect.methods, got)
    if expect.ttl is not None:
        differ("ttl", parse_duration(expect.ttl), decision.ttl)
    differ("risk_score", expect.risk_score, decision.risk.score)
    differ("risk_level", expect.risk_level, decision.risk.level)
    differ("risk_reasons", expect.risk_reasons, list(decision.risk.reasons))
    differ("missing", expect.missing, list(decision.missing))
    return failures


def _run_case(
    plan: Plan, defaults: dict[str, Any], node: Located, file: str, touched: set[StepRef]
) -> CaseResult:
    loc = node.location
    raw = plain(node)
    if not isinstance(raw, dict):
        raise _invalid("a test case must be a mapping", loc)
    unknown = [k for k in raw if k not in _CASE_KEYS]
    if unknown:
        raise _invalid(f"unknown key `{unknown[0]}` in a test case", loc)
    name = raw.get("name")
    checkpoint = raw.get("checkpoint")
    if not isinstance(name, str) or not isinstance(checkpoint, str):
        raise _invalid("a test case needs a `name` and a `checkpoint` (strings)", loc)
    try:
        expect = msgspec.convert(raw.get("expect"), Expect)
    except msgspec.ValidationError as exc:
        raise _invalid(f"test `{name}`: invalid `expect`: {exc}", loc) from None
    if expect.ttl is not None:
        try:
            parse_duration(expect.ttl)
        except ValueError as exc:
            raise _invalid(f"test `{name}`: invalid `expect.ttl`: {exc}", loc) from None
    try:
        now: datetime = parse_now(raw.get("now", defaults["now"]))
        facts = Facts.from_document(merge(defaults["facts"], raw.get("facts") or {}), now)
    except FactsError as exc:
        raise _invalid(f"test `{name}`: {exc.message}", loc) from None
    journey = raw.get("journey", defaults["journey"])
    if journey is not None and not isinstance(journey, str):
        raise _invalid(f"test `{name}`: `journey` must be a journey name", loc)
    decision = evaluate(plan, checkpoint, facts, now, journey=journey)
    touched.update(t.step for t in decision.explanation)
    failures = _compare(expect, decision)
    return CaseResult(
        name=name,
        file=file,
        line=loc.line,
        passed=not failures,
        failures=tuple(failures),
        decision=decision,
    )


def run_file(
    plan: Plan,
    file: str,
    content: bytes,
    touched: set[StepRef],
    errors: list[PolicyError] | None = None,
) -> list[CaseResult]:
    """Run the cases of one test file.

    A malformed case is added to ``errors`` (when given) and the other cases still run.

    Raises:
        PolicyError: ``policy.test.invalid`` (or a YAML error) when the file is malformed, or
        a case is and no ``errors`` list was given.
    """
    root = read_yaml(content, file)
    if not isinstance(root.value, dict):
        raise _invalid("a test file must be a mapping with `tests:`", root.location)
    fields = root.value
    for key, value in fields.items():
        if key not in _FILE_KEYS:
            raise _invalid(f"unknown key `{key}` in a test file", value.location)
    cases = fields.get("tests")
    if cases is None or not isinstance(cases.value, list):
        raise _invalid("a test file needs a `tests:` list", root.location)
    defaults = {
        "journey": plain(fields["journey"]) if "journey" in fields else None,
        "now": plain(fields["now"]) if "now" in fields else DEFAULT_NOW,
        "facts": plain(fields["facts"]) if "facts" in fields else {},
    }
    results = []
    for case in cases.value:
        try:
            results.append(_run_case(plan, defaults, case, file, touched))
        except PolicyError as exc:
            if errors is None:
                raise
            errors.append(exc)
    return results


def run_tests(plan: Plan, files: Mapping[str, bytes]) -> TestReport:
    """Run every ``*_test.yaml`` of a bundle against its compiled plan."""
    touched: set[StepRef] = set()
    results: list[CaseResult] = []
    errors: list[PolicyError] = []
    for file in sorted(files):
        if not is_test_file(file):
            continue
        try:
            results += run_file(plan, file, files[file], touched, errors)
        except PolicyError as exc:
            errors.append(exc)
    uncovered = tuple(
        ref for ref in plan.steps if ref not in touched and ref.kind not in ("checkpoint",)
    )
    return TestReport(results=tuple(results), uncovered=uncovered, errors=tuple(errors))
