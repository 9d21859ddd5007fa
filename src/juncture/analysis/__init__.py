"""Analyses of compiled journeys: invariants proved over every path (`juncture check`).

`check` is the one validation a bundle goes through, in `juncture check` and when the
decision service takes an upload: the static checks of `juncture.policy.check`, then, once
the bundle compiles, every journey's `invariants:` (`juncture.analysis.invariants`).
"""

from __future__ import annotations

from juncture.analysis.invariants import prove
from juncture.errors import PolicyError
from juncture.policy import Bundle, Plan, compile_plan
from juncture.policy import check as static_check

__all__ = ["check", "prove"]


def check(bundle: Bundle, *, invariants: bool = True) -> tuple[Plan | None, list[PolicyError]]:
    """Every problem of a loaded bundle, sorted by location, and its plan when it has no
    error. ``invariants=False`` leaves the invariants unproved (the static checks alone)."""
    problems = static_check(bundle)
    if any(p.severity == "error" for p in problems):
        return None, problems
    plan = compile_plan(bundle)
    if invariants:
        problems = sorted(problems + prove(plan), key=PolicyError.sort_key)
    if any(p.severity == "error" for p in problems):
        return None, problems
    return plan, problems
