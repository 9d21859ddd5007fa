"""Static checks of a loaded bundle: everything `juncture check` reports beyond loading.

Errors stop a bundle from being compiled or published; warnings point at a
likely mistake (a sensitive checkpoint left open) and do not.
"""

from __future__ import annotations

from juncture.errors import PolicyError
from juncture.policy import model as m
from juncture.policy.compile import compile_journeys
from juncture.policy.literals import check_literals
from juncture.policy.names import suggest
from juncture.policy.plan import glob_matcher
from juncture.policy.routes import compile_route, overlap


def _always_ends(steps: tuple[m.Step, ...], journey: m.Journey, seen: frozenset[str]) -> bool:
    """True when running ``steps`` surely reaches an outcome (nothing after them can run)."""
    for step in steps:
        match step:
            case m.Allow() | m.Deny() | m.Reroute() | m.Revoke():
                return True
            case m.If(then=then, otherwise=otherwise):
                if _always_ends(then, journey, seen) and _always_ends(otherwise, journey, seen):
                    return True
            case m.Use(fragment=name) if name in journey.fragments and name not in seen:
                if _always_ends(journey.fragments[name].steps, journey, seen | {name}):
                    return True
    return False


def _unreachable(steps: tuple[m.Step, ...], journey: m.Journey, where: str) -> list[PolicyError]:
    out = []
    for i, step in enumerate(steps):
        if isinstance(step, m.If):
            out += _unreachable(step.then, journey, where)
            out += _unreachable(step.otherwise, journey, where)
        if i + 1 < len(steps) and _always_ends((step,), journey, frozenset()):
            nxt = steps[i + 1]
            out.append(
                PolicyError(
                    f"step in {where} can never run: the step before it always ends the decision",
                    code="policy.check.unreachable_step",
                    location=nxt.location,
                    suggestion="remove it or move it before the outcome",
                )
            )
            break
    return out


def _has_require(steps: tuple[m.Step, ...], journey: m.Journey, seen: frozenset[str]) -> bool:
    for step in steps:
        match step:
            case m.Require():
                return True
            case m.If(then=then, otherwise=otherwise):
                if _has_require(then, journey, seen) or _has_require(otherwise, journey, seen):
                    return True
            case m.Use(fragment=name) if name in journey.fragments and name not in seen:
                if _has_require(journey.fragments[name].steps, journey, seen | {name}):
                    return True
    return False


#: A point in a walk over the steps: (steps, index of the next one, where to go on after them).
_Frame = tuple[tuple[m.Step, ...], int, "_Frame | None"]


def _frame_key(frame: _Frame | None) -> tuple[tuple[int, int], ...]:
    key = []
    while frame is not None:
        key.append((id(frame[0]), frame[1]))
        frame = frame[2]
    return tuple(key)


def _open_allow(
    steps: tuple[m.Step, ...], journey: m.Journey, seen: frozenset[str]
) -> m.Allow | None:
    """An allow reachable along some path with no `require` before it, if any.

    Walks every path (both branches of each `if`, into fragments and on after them), each
    program point once, and stops a path at its first `require` or outcome.
    """
    visited: set[tuple[object, ...]] = set()
    pending: list[tuple[_Frame | None, frozenset[str]]] = [((steps, 0, None), seen)]
    while pending:
        frame, used = pending.pop()
        while frame is not None:
            current, index, parent = frame
            if index >= len(current):
                frame = parent
                continue
            key = (_frame_key(frame), used)
            if key in visited:
                break
            visited.add(key)
            step, after = current[index], (current, index + 1, parent)
            match step:
                case m.Allow():
                    return step
                case m.Require() | m.Deny() | m.Reroute() | m.Revoke():
                    break
                case m.If(then=then, otherwise=otherwise):
                    pending.append(((otherwise, 0, after), used))
                    frame = (then, 0, after)
                case m.Use(fragment=name) if name in journey.fragments and name not in used:
                    frame, used = (journey.fragments[name].steps, 0, after), used | {name}
                case _:
                    frame = after  # an unknown or cyclic fragment: reported elsewhere
    return None


def _journey_checks(journey: m.Journey) -> list[PolicyError]:
    out: list[PolicyError] = []
    out += _unreachable(journey.guard, journey, "the guard")
    for cp in journey.checkpoints:
        out += _unreachable(cp.steps, journey, f"checkpoint `{cp.name}`")
    for fragment in journey.fragments.values():
        out += _unreachable(fragment.steps, journey, f"fragment `{fragment.name}`")
    if not journey.checkpoints:
        out.append(
            PolicyError(
                f"journey `{journey.name}` declares no checkpoint: it denies every action",
                code="policy.check.no_checkpoints",
                location=journey.location,
                severity="warning",
            )
        )
    used: set[str] = set()
    stack = [s for cp in journey.checkpoints for s in cp.steps] + list(journey.guard)
    while stack:
        step = stack.pop()
        if isinstance(step, m.If):
            stack += [*step.then, *step.otherwise]
        elif (
            isinstance(step, m.Use)
            and step.fragment not in used
            and step.fragment in journey.fragments
        ):
            used.add(step.fragment)
            stack += list(journey.fragments[step.fragment].steps)
    for name, fragment in journey.fragments.items():
        if name not in used:
            out.append(
                PolicyError(
                    f"fragment `{name}` is not used by any checkpoint",
                    code="policy.ref.unused_fragment",
                    location=fragment.location,
                    severity="warning",
                )
            )
    if _has_require(journey.guard, journey, frozenset()):
        return out  # the guard gates every checkpoint
    gated = [cp.name for cp in journey.checkpoints if _has_require(cp.steps, journey, frozenset())]
    if gated:
        for cp in journey.checkpoints:
            allow = _open_allow(cp.steps, journey, frozenset())
            if allow is not None:
                others = [name for name in gated if name != cp.name]
                contrast = (
                    f"while `{others[0]}` requires authentication"
                    if others
                    else "while its other paths require authentication"
                )
                out.append(
                    PolicyError(
                        f"checkpoint `{cp.name}` can reach allow with no `require` on the way, "
                        + contrast,
                        code="policy.check.missing_require",
                        location=allow.location,
                        severity="warning",
                        suggestion="add a `require` step if this action is sensitive",
                    )
                )
    return out


def _overlaps(bundle: m.Bundle) -> list[PolicyError]:
    out = []
    journeys = bundle.journeys
    for i, a in enumerate(journeys):
        for b in journeys[i + 1 :]:
            subjects_a = set(a.subjects or ("user", "service", "agent"))
            subjects_b = set(b.subjects or ("user", "service", "agent"))
            apps_overlap = (not a.applies_to and not b.applies_to) or bool(
                set(a.applies_to) & set(b.applies_to)
            )
            if apps_overlap and subjects_a & subjects_b:
                out.append(
                    PolicyError(
                        f"journeys `{a.name}` and `{b.name}` both govern the same apps and subject "
                        "types, so neither would be chosen",
                        code="policy.bundle.overlap",
                        location=b.location,
                        suggestion="give them different `applies_to` or `subjects`",
                    )
                )
    return out


def _served(action: str, journey: m.Journey) -> bool:
    """Some checkpoint other than the catch-all `*` serves the action."""
    return any(
        cp.name == action or (cp.name != "*" and glob_matcher(cp.name)(action))
        for cp in journey.checkpoints
    )


def check_routes(journey: m.Journey) -> list[PolicyError]:
    """Routes naming a checkpoint the journey does not serve, an app it does not govern, or
    equally specific routes that could match one request."""
    out = []
    names = [cp.name for cp in journey.checkpoints if cp.name != "*"]
    for app in journey.routes:
        if journey.applies_to and app.app not in journey.applies_to:
            out.append(
                PolicyError(
                    f"routes of app `{app.app}`, which the journey does not apply to",
                    code="policy.route.unknown_app",
                    location=app.location,
                    suggestion=suggest(app.app, journey.applies_to)
                    or "add the app to `applies_to`",
                )
            )
        targets = [(r.checkpoint, r.location) for r in app.routes]
        if app.default is not None:
            targets.append((app.default, app.location))
        for action, loc in targets:
            if not _served(action, journey):
                out.append(
                    PolicyError(
                        f"route to checkpoint `{action}`, which the journey does not declare",
                        code="policy.route.unknown_checkpoint",
                        location=loc,
                        suggestion=suggest(action, names),
                    )
                )
        compiled = [(compile_route(r), r) for r in app.routes]
        for i, (a, _) in enumerate(compiled):
            for b, written in compiled[i + 1 :]:
                if a.rank == b.rank and overlap(a, b):
                    out.append(
                        PolicyError(
                            f"routes `{a.text}` and `{b.text}` of app `{app.app}` are equally "
                            "specific and can match the same request",
                            code="policy.route.ambiguous",
                            location=written.location,
                            suggestion="make one more specific (a literal segment, a host or "
                            "methods) or remove one",
                        )
                    )
    return out


def check(bundle: m.Bundle) -> list[PolicyError]:
    """Every problem of a loaded bundle, errors and warnings, sorted by location."""
    _, problems = compile_journeys(bundle)
    problems = list(problems)
    for journey in bundle.journeys:
        problems += _journey_checks(journey)
        problems += check_literals(journey)
        problems += check_routes(journey)
    problems += _overlaps(bundle)
    return sorted(problems, key=PolicyError.sort_key)
