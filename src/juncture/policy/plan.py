"""The compiled plan: immutable, content-addressed, ready for the engine to evaluate.

Steps are compiled into small tuples so the evaluator's loop does no attribute
lookups it can avoid. Every step keeps a `StepRef` (kind, text, file:line) that
decision explanations point at.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final

import msgspec

from juncture.policy import kinds, model
from juncture.policy.cel import CompiledCondition
from juncture.policy.prefixes import PrefixTable
from juncture.policy.routes import Router

# Step opcodes (first item of a compiled step tuple).
OUTCOME: Final = 0  # (OUTCOME, ref, Outcome)
REQUIRE: Final = 1  # (REQUIRE, ref, RequireSpec)
IF: Final = 2  # (IF, ref, condition, then_steps, else_steps)
USE: Final = 3  # (USE, ref, steps)


class StepRef(msgspec.Struct, frozen=True, kw_only=True):
    """The static part of an explanation entry: what the step is and where it is written."""

    kind: str  # allow deny reroute revoke require if use risk checkpoint guard
    text: str
    file: str
    line: int
    col: int = 0

    def where(self) -> str:
        return f"{self.file}:{self.line}"


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """A terminal step's outcome, precomputed at compile time."""

    outcome: str
    reason: str | None = None
    scopes: tuple[str, ...] = ()
    ttl: int | None = None
    path: str | None = None
    obligations: tuple[Any, ...] = ()


class RequireSpec(msgspec.Struct, frozen=True, kw_only=True):
    methods: tuple[str, ...]
    mode: str
    within: int | None
    aal: int | None
    #: Methods offered in a step-up when the gate is not met (for `any` and `aal`).
    offered: tuple[str, ...]
    #: `within` as a timedelta, for comparing with proof ages.
    limit: timedelta | None = None
    #: RFC 9470 `acr_values` and RFC 8176 `amr` values of the `offered` methods.
    acr_values: str = ""
    amr_values: tuple[str, ...] = ()


ACR_PREFIX: Final = "urn:juncture:aal"


def acr_values(level: int) -> str:
    """The ACRs that satisfy AAL ``level``, in order of preference (lowest sufficient first)."""
    return " ".join(f"{ACR_PREFIX}{n}" for n in range(max(level, 1), 4))


class MethodInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kind: str
    aal: int
    amr: tuple[str, ...]
    #: The entry's other keys: the options of its kind's implementation (docs/methods.md).
    options: dict[str, Any] = {}


class RiskRulePlan(msgspec.Struct, frozen=True, kw_only=True):
    condition: CompiledCondition
    add: int
    reason: str
    ref: StepRef


class LockoutSpec(msgspec.Struct, frozen=True, kw_only=True):
    """The limits of one failure counter of a subject (durations in seconds).

    ``after`` failures within ``within`` lock the counter for ``lock``; after n consecutive
    failures the next attempt is refused until ``last failure + backoff * 2**(n-1)``, at
    most ``lock`` after it.
    """

    counter: str
    after: int
    within: int
    lock: int
    backoff: int


#: The limits of each counter of a journey without `lockout:` (or that leaves one out).
DEFAULT_LOCKOUT: Final[dict[str, LockoutSpec]] = {
    name: LockoutSpec(
        counter=name,
        after=limits["after"],
        within=limits["within"],
        lock=limits["lock"],
        backoff=limits["backoff"],
    )
    for name, limits in model.LOCKOUT_DEFAULTS.items()
}


def counter_for_kind(kind: str) -> str:
    """The failure counter a failed verification of a method of ``kind`` counts against (the
    kind's `kinds.Kind.counter`; an unknown kind counts as a second factor)."""
    known = kinds.KINDS.get(kind)
    return known.counter if known is not None else "second_factor"


class InvariantPlan(msgspec.Struct, frozen=True, kw_only=True):
    """An invariant ready for the checker (`juncture.invariants`); decisions never read it."""

    name: str
    file: str
    line: int
    at: tuple[str, ...]
    subjects: tuple[str, ...]
    never: tuple[str, ...]
    when: CompiledCondition | None
    unless: RequireSpec | None
    reroute_only_to: tuple[str, ...] | None


CompiledStep = tuple[Any, ...]
Steps = tuple[CompiledStep, ...]


#: The table of a journey without `networks:`.
_NO_NETWORKS: Final[PrefixTable[str]] = PrefixTable()


class JourneyPlan(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    file: str
    applies_to: tuple[str, ...]
    subjects: tuple[str, ...]
    methods: dict[str, MethodInfo]
    networks: dict[str, tuple[Any, ...]]
    risk_rules: tuple[RiskRulePlan, ...]
    risk_levels: tuple[tuple[int, str], ...]  # (at_least, name), highest first
    guard: Steps
    exact: dict[str, tuple[StepRef, Steps]]
    #: (matcher, specificity, ref, steps), most specific first
    globs: tuple[tuple[Callable[[str], Any], tuple[int, int, int], StepRef, Steps], ...]
    star: tuple[StepRef, Steps] | None
    #: The variables some condition of the journey reads (facts nobody reads are not built).
    reads: frozenset[str] = frozenset()
    #: The journey's `networks:` as one longest-prefix table: address -> network names.
    network_table: PrefixTable[str] = _NO_NETWORKS
    #: counter name (`password`, `second_factor`) -> its limits; always both counters.
    lockout: dict[str, LockoutSpec] = msgspec.field(default_factory=DEFAULT_LOCKOUT.copy)
    #: Checkpoint (as written) -> digest of what it depends on (`model.Journey.fingerprints`).
    fingerprints: dict[str, str] = {}
    #: The journey's `invariants:`, for `juncture check` (decisions never read them).
    invariants: tuple[InvariantPlan, ...] = ()
    #: App -> its `routes:` compiled: which checkpoint an HTTP request asks (forward auth).
    http_routes: dict[str, Router] = {}

    def checkpoint(self, action: str) -> tuple[StepRef, Steps] | None:
        """Exact name, then the most specific glob, then ``*``."""
        found = self.exact.get(action)
        if found is not None:
            return found
        for matcher, _, ref, steps in self.globs:
            if matcher(action):
                return ref, steps
        return self.star


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """A compiled bundle. Evaluate it with `juncture.engine.evaluate`."""

    version: str
    journeys: dict[str, JourneyPlan]
    data: dict[str, Any]
    bundle: model.Bundle
    #: Every step that explanations can name, for test coverage reports.
    steps: tuple[StepRef, ...]
    #: (app or None, subject type) -> the journey name that governs it, or a deny reason
    #: (`no_journey`, `ambiguous_journey`) prefixed with "!".
    routes: dict[tuple[str | None, str], str] = {}

    def route(self, app: str | None, subject_type: str) -> tuple[JourneyPlan | None, str | None]:
        """The journey for this app and subject type, or None and the reason there is none."""
        name = self.routes.get((app, subject_type))
        if name is None:
            name = self.routes.get((None, subject_type), "!no_journey")
        if name[0] == "!":
            return None, name[1:]
        return self.journeys[name], None


SUBJECT_TYPES = ("user", "service", "agent")


def build_routes(journeys: dict[str, JourneyPlan]) -> dict[tuple[str | None, str], str]:
    """Precompute journey selection: a journey naming the app beats one with no `applies_to`."""
    apps = sorted({app for j in journeys.values() for app in j.applies_to})
    routes: dict[tuple[str | None, str], str] = {}
    for subject_type in SUBJECT_TYPES:
        for app in [None, *apps]:
            explicit, default = [], []
            for journey in journeys.values():
                if journey.subjects and subject_type not in journey.subjects:
                    continue
                if not journey.applies_to:
                    default.append(journey.name)
                elif app is not None and app in journey.applies_to:
                    explicit.append(journey.name)
            candidates = explicit or default
            if len(candidates) == 1:
                routes[(app, subject_type)] = candidates[0]
            else:
                routes[(app, subject_type)] = (
                    "!no_journey" if not candidates else "!ambiguous_journey"
                )
    return routes


def glob_matcher(pattern: str) -> Callable[[str], Any]:
    """``tool:*`` -> a full-match predicate. ``*`` and ``?`` never cross nothing special."""
    out = []
    for ch in pattern:
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
    return re.compile("".join(out), re.S).fullmatch


def glob_specificity(pattern: str) -> tuple[int, int, int]:
    """Sort key, most specific first: more literal characters, then fewer `*`, then fewer `?`.

    ``tool:?`` (exactly one character) is more specific than ``tool:*`` (any number).
    """
    stars, marks = pattern.count("*"), pattern.count("?")
    return (-(len(pattern) - stars - marks), stars, marks)
