"""Compile a loaded bundle into a `Plan`: fragments inlined, conditions compiled, refs resolved."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from juncture.errors import BundleError, Location, PolicyError
from juncture.policy import kinds
from juncture.policy import model as m
from juncture.policy.cel import CompiledCondition, compile_condition, parse_networks
from juncture.policy.decode import suggest
from juncture.policy.duration import format_duration
from juncture.policy.plan import (
    DEFAULT_LOCKOUT,
    IF,
    OUTCOME,
    REQUIRE,
    USE,
    InvariantPlan,
    JourneyPlan,
    LockoutSpec,
    MethodInfo,
    Outcome,
    Plan,
    RequireSpec,
    RiskRulePlan,
    StepRef,
    Steps,
    acr_values,
    build_routes,
    glob_matcher,
    glob_specificity,
)
from juncture.policy.prefixes import PrefixTable
from juncture.policy.routes import compile_routes

_GLOB_CHARS = frozenset("*?")


def _ref(kind: str, text: str, loc: Location) -> StepRef:
    return StepRef(kind=kind, text=text, file=loc.file, line=loc.line, col=loc.col)


def describe(step: m.Step) -> tuple[str, str]:
    """(kind, text) of a step as a person would read it in an explanation."""
    match step:
        case m.Allow(scopes=scopes, ttl=ttl):
            extra = []
            if scopes:
                extra.append(f"scopes={','.join(scopes)}")
            if ttl is not None:
                extra.append(f"ttl={format_duration(ttl)}")
            return "allow", " ".join(["allow", *extra])
        case m.Deny(reason=reason):
            return "deny", f"deny {reason}"
        case m.Revoke(reason=reason):
            return "revoke", f"revoke {reason}"
        case m.Reroute(path=path):
            return "reroute", f"reroute {path}"
        case m.Require(methods=methods, mode=mode, within=within, aal=aal):
            parts = [f"{mode}({', '.join(methods)})"] if methods else []
            if within is not None:
                parts.append(f"within {format_duration(within)}")
            if aal is not None:
                parts.append(f"aal>={aal}")
            return "require", "require " + " ".join(parts)
        case m.If(condition=condition):
            return "if", f"if {condition.text}"
        case m.Use(fragment=fragment):
            return "use", f"use {fragment}"
    raise TypeError(step)  # pragma: no cover


def _lockout(journey: m.Journey) -> dict[str, LockoutSpec]:
    """Both counters: those the journey sets, the defaults for the others."""
    out = dict(DEFAULT_LOCKOUT)
    for name, spec in journey.lockout.items():
        out[name] = LockoutSpec(
            counter=name,
            after=spec.after,
            within=spec.within,
            lock=spec.lock,
            backoff=spec.backoff,
        )
    return out


def _amr(methods: dict[str, m.Method], names: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(a for n in names for a in kinds.amr(methods[n].kind)))


class _JourneyCompiler:
    def __init__(self, journey: m.Journey, errors: list[PolicyError]) -> None:
        self.journey = journey
        self.errors = errors
        self.networks = parse_networks({n.name: n.cidrs for n in journey.networks.values()})
        self.fragments: dict[str, Steps] = {}
        self.in_progress: list[str] = []
        self.conditions: dict[str, CompiledCondition | None] = {}
        self.condition_errors: dict[str, list[PolicyError]] = {}
        self.refs: list[StepRef] = []

    def error(self, message: str, code: str, loc: Location, suggestion: str | None = None) -> None:
        self.errors.append(PolicyError(message, code=code, location=loc, suggestion=suggestion))

    def condition(
        self, cond: m.Condition, forbid: frozenset[str] = frozenset()
    ) -> CompiledCondition | None:
        key = f"{cond.text}\0{','.join(sorted(forbid))}"
        if key in self.conditions:
            cached = self.conditions[key]
            if cached is None:  # the same mistake written again: report it here too
                for e in self.condition_errors[key]:
                    self.error(e.message, e.code, cond.location, e.suggestion)
                return None
            return CompiledCondition(
                cached.text,
                cond.location,
                cached.node,
                cached._fast,
                cached.variables,
                cached.networks,
            )
        compiled, errors = compile_condition(cond.text, cond.location, self.networks, forbid=forbid)
        self.errors.extend(errors)
        self.conditions[key] = compiled
        self.condition_errors[key] = errors
        return compiled

    def steps(self, steps: tuple[m.Step, ...]) -> Steps:
        out = []
        for step in steps:
            compiled = self.step(step)
            if compiled is not None:
                out.append(compiled)
        return tuple(out)

    def step(self, step: m.Step) -> tuple[Any, ...] | None:
        kind, text = describe(step)
        ref = _ref(kind, text, step.location)
        self.refs.append(ref)
        match step:
            case m.Allow(scopes=scopes, ttl=ttl, obligations=obligations):
                return (
                    OUTCOME,
                    ref,
                    Outcome(outcome="allow", scopes=scopes, ttl=ttl, obligations=obligations),
                )
            case m.Deny(reason=reason):
                return (OUTCOME, ref, Outcome(outcome="deny", reason=reason))
            case m.Revoke(reason=reason):
                return (OUTCOME, ref, Outcome(outcome="revoke", reason=reason))
            case m.Reroute(path=path, scopes=scopes, ttl=ttl):
                return (
                    OUTCOME,
                    ref,
                    Outcome(
                        outcome="reroute", reason="rerouted", path=path, scopes=scopes, ttl=ttl
                    ),
                )
            case m.Require():
                return self.require(step, ref)
            case m.If(condition=condition, then=then, otherwise=otherwise):
                compiled = self.condition(condition)
                then_steps, else_steps = self.steps(then), self.steps(otherwise)
                return None if compiled is None else (IF, ref, compiled, then_steps, else_steps)
            case m.Use(fragment=name):
                steps = self.fragment(name, step.location)
                return None if steps is None else (USE, ref, steps)
        raise TypeError(step)  # pragma: no cover

    def require(self, step: m.Require, ref: StepRef) -> tuple[Any, ...] | None:
        methods = self.journey.methods
        ok = True
        for name in step.methods:
            if name not in methods:
                ok = False
                self.error(
                    f"unknown method `{name}`",
                    "policy.ref.unknown_method",
                    step.location,
                    suggest(name, methods) or "declare it under `methods:`",
                )
        if not ok:
            return None
        level = step.aal or 0
        if step.methods:
            offered = tuple(n for n in step.methods if methods[n].aal >= level)
            if not offered:
                self.error(
                    f"no listed method reaches aal {level}", "policy.schema.value", step.location
                )
                return None
        else:
            offered = tuple(
                sorted(
                    (n for n in methods if methods[n].aal >= level),
                    key=lambda n: (methods[n].aal, n),
                )
            )
            if not offered:
                self.error(
                    f"no method of the journey reaches aal {level}",
                    "policy.schema.value",
                    step.location,
                )
                return None
        needed = step.aal or min(methods[n].aal for n in offered) or 1
        spec = RequireSpec(
            methods=step.methods,
            mode=step.mode,
            within=step.within,
            aal=step.aal,
            offered=offered,
            limit=None if step.within is None else timedelta(seconds=step.within),
            acr_values=acr_values(needed),
            amr_values=_amr(methods, offered),
        )
        return (REQUIRE, ref, spec)

    def fragment(self, name: str, loc: Location) -> Steps | None:
        if name in self.fragments:
            return self.fragments[name]
        fragment = self.journey.fragments.get(name)
        if fragment is None:
            self.error(
                f"unknown fragment `{name}`",
                "policy.ref.unknown_fragment",
                loc,
                suggest(name, self.journey.fragments),
            )
            return None
        if name in self.in_progress:
            cycle = " -> ".join([*self.in_progress[self.in_progress.index(name) :], name])
            self.error(
                f"fragments use each other in a cycle: {cycle}",
                "policy.ref.fragment_cycle",
                fragment.location,
            )
            return None
        self.in_progress.append(name)
        steps = self.steps(fragment.steps)
        self.in_progress.pop()
        self.fragments[name] = steps
        return steps

    def invariant(self, inv: m.Invariant) -> InvariantPlan | None:
        """Compile an invariant apart from the steps (its condition is not one a decision
        reads, so it stays out of `reads` and the condition cache)."""
        when = None
        if inv.when is not None:
            when, errors = compile_condition(inv.when.text, inv.when.location, self.networks)
            self.errors.extend(errors)
        unless = None
        if inv.unless is not None:
            gate = self.require(inv.unless, _ref("require", "", inv.unless.location))
            unless = None if gate is None else gate[2]
        if (inv.when is not None and when is None) or (inv.unless is not None and unless is None):
            return None
        return InvariantPlan(
            name=inv.name,
            file=inv.location.file,
            line=inv.location.line,
            at=inv.at,
            subjects=inv.subjects,
            never=inv.never,
            when=when,
            unless=unless,
            reroute_only_to=inv.reroute_only_to,
        )

    def compile(self) -> JourneyPlan:
        j = self.journey
        rules = []
        for rule in j.risk.rules:
            cond = self.condition(rule.when, forbid=frozenset({"risk"}))
            ref = _ref(
                "risk", f"risk +{rule.add} {rule.reason} when {rule.when.text}", rule.location
            )
            self.refs.append(ref)
            if cond is not None:
                rules.append(
                    RiskRulePlan(condition=cond, add=rule.add, reason=rule.reason, ref=ref)
                )
        guard = self.steps(j.guard)
        exact: dict[str, tuple[StepRef, Steps]] = {}
        globs = []
        star = None
        for cp in j.checkpoints:
            ref = _ref("checkpoint", cp.name, cp.location)
            steps = self.steps(cp.steps)
            if cp.name == "*":
                star = (ref, steps)
            elif _GLOB_CHARS & set(cp.name):
                globs.append((glob_matcher(cp.name), glob_specificity(cp.name), ref, steps))
            else:
                exact[cp.name] = (ref, steps)
        invariants = tuple(filter(None, (self.invariant(inv) for inv in j.invariants)))
        for name, fragment in j.fragments.items():
            if name not in self.fragments:
                self.fragment(name, fragment.location)  # compile unused fragments for their errors
        globs.sort(key=lambda g: g[1])
        methods = {
            name: MethodInfo(
                name=name,
                kind=meth.kind,
                aal=meth.aal,
                amr=kinds.amr(meth.kind),
                options=meth.options,
            )
            for name, meth in j.methods.items()
        }
        levels = tuple(sorted(((lv.at_least, lv.name) for lv in j.risk.levels), reverse=True))
        reads = frozenset(v for c in self.conditions.values() if c is not None for v in c.variables)
        table = PrefixTable((net, name) for name, nets in self.networks.items() for net in nets)
        return JourneyPlan(
            name=j.name,
            file=j.file,
            applies_to=j.applies_to,
            subjects=j.subjects,
            methods=methods,
            networks=self.networks,
            risk_rules=tuple(rules),
            risk_levels=levels,
            guard=guard,
            exact=exact,
            globs=tuple(globs),
            star=star,
            reads=reads,
            network_table=table,
            lockout=_lockout(j),
            fingerprints=j.fingerprints,
            invariants=invariants,
            http_routes=compile_routes(j),
        )


def compile_journeys(bundle: m.Bundle) -> tuple[Plan | None, list[PolicyError]]:
    """Compile and collect errors instead of raising (what `check` builds on)."""
    errors: list[PolicyError] = []
    journeys = {}
    refs: list[StepRef] = []
    for journey in bundle.journeys:
        seen: set[str] = set()
        for cp in journey.checkpoints:
            if cp.name in seen:  # pragma: no cover - YAML duplicate keys are caught earlier
                errors.append(
                    PolicyError(
                        f"checkpoint `{cp.name}` is declared twice",
                        code="policy.check.duplicate_checkpoint",
                        location=cp.location,
                    )
                )
            seen.add(cp.name)
        compiler = _JourneyCompiler(journey, errors)
        journeys[journey.name] = compiler.compile()
        refs.extend(compiler.refs)
    if any(e.severity == "error" for e in errors):
        return None, errors
    plan = Plan(
        version=bundle.version,
        journeys=journeys,
        routes=build_routes(journeys),
        data=bundle.data,
        bundle=bundle,
        steps=tuple(dict.fromkeys(refs)),
    )
    return plan, errors


def compile_plan(bundle: m.Bundle) -> Plan:
    """Compile a loaded bundle into an immutable plan.

    Raises:
        BundleError: with every problem that prevents compiling.
    """
    plan, errors = compile_journeys(bundle)
    if plan is None:
        raise BundleError([e for e in errors if e.severity == "error"])
    return plan
