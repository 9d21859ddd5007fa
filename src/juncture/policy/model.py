"""The typed model of the journey language: what a journey file says, checked for shape.

The model keeps every step's location so that static checks, the compiler and
decision explanations can point at file:line. It is kept beside the compiled
plan so that later analyses (path enumeration, invariants) can walk it.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from juncture.errors import Location

SubjectType = Literal["user", "service", "agent"]
#: The method kinds (their default AAL and RFC 8176 `amr` values) are not listed here: each
#: is declared once by its method module and registered in `juncture.policy.kinds`.


class Condition(msgspec.Struct, frozen=True, kw_only=True):
    """A CEL expression as written, with where it was written."""

    text: str
    location: Location


class Allow(msgspec.Struct, frozen=True, kw_only=True, tag="allow"):
    location: Location
    scopes: tuple[str, ...] = ()
    ttl: int | None = None
    obligations: tuple[Any, ...] = ()


class Deny(msgspec.Struct, frozen=True, kw_only=True, tag="deny"):
    location: Location
    reason: str


class Reroute(msgspec.Struct, frozen=True, kw_only=True, tag="reroute"):
    location: Location
    path: str
    scopes: tuple[str, ...] = ()
    ttl: int | None = None


class Revoke(msgspec.Struct, frozen=True, kw_only=True, tag="revoke"):
    location: Location
    reason: str


class Require(msgspec.Struct, frozen=True, kw_only=True, tag="require"):
    """A gate: met when the session has proven the methods (fresh enough) and the AAL."""

    location: Location
    methods: tuple[str, ...] = ()
    mode: Literal["any", "all"] = "any"
    within: int | None = None
    aal: int | None = None


class If(msgspec.Struct, frozen=True, kw_only=True, tag="if"):
    location: Location
    condition: Condition
    then: tuple[Step, ...] = ()
    otherwise: tuple[Step, ...] = ()


class Use(msgspec.Struct, frozen=True, kw_only=True, tag="use"):
    location: Location
    fragment: str


Step = Allow | Deny | Reroute | Revoke | Require | If | Use
TERMINAL_STEPS = (Allow, Deny, Reroute, Revoke)


class Method(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kind: str
    aal: int
    options: dict[str, Any] = {}
    location: Location


class Network(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    cidrs: tuple[str, ...]
    location: Location


class RiskRule(msgspec.Struct, frozen=True, kw_only=True):
    when: Condition
    add: int
    reason: str
    location: Location


class RiskLevel(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    at_least: int


DEFAULT_RISK_LEVELS = (
    RiskLevel(name="low", at_least=0),
    RiskLevel(name="medium", at_least=40),
    RiskLevel(name="high", at_least=70),
)


class Risk(msgspec.Struct, frozen=True, kw_only=True):
    rules: tuple[RiskRule, ...] = ()
    levels: tuple[RiskLevel, ...] = DEFAULT_RISK_LEVELS


#: The failure counters a journey's `lockout:` configures. `password` counts failed
#: verifications of `kind: password` methods; `second_factor` those of every other kind.
LOCKOUT_COUNTERS: tuple[str, ...] = ("password", "second_factor")
#: The fields of a counter, in the order the documentation gives them.
LOCKOUT_FIELDS: tuple[str, ...] = ("after", "within", "lock", "backoff")
#: counter -> field -> value (a count, or seconds) when the journey does not set it.
LOCKOUT_DEFAULTS: dict[str, dict[str, int]] = {
    "password": {"after": 10, "within": 900, "lock": 900, "backoff": 1},
    "second_factor": {"after": 5, "within": 900, "lock": 900, "backoff": 1},
}
#: Bounds of the fields: `after` failures, `lock` seconds.
LOCKOUT_MAX_AFTER = 1000
LOCKOUT_MAX_LOCK = 30 * 86400


class Lockout(msgspec.Struct, frozen=True, kw_only=True):
    """One failure counter as the journey sets it; the fields it omits hold their defaults.

    ``after`` failures within ``within`` seconds lock the counter for ``lock`` seconds; after
    n consecutive failures the next attempt waits ``backoff * 2**(n-1)`` seconds (at most
    ``lock``).
    """

    counter: str
    after: int
    within: int
    lock: int
    backoff: int
    location: Location


class Checkpoint(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    steps: tuple[Step, ...]
    location: Location


class Fragment(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    steps: tuple[Step, ...]
    location: Location


#: The outcomes an invariant's `never:` may name: the ones that let an action go ahead.
INVARIANT_OUTCOMES: tuple[str, ...] = ("allow", "reroute")


class Invariant(msgspec.Struct, frozen=True, kw_only=True):
    """A property every decision of the journey keeps, proved by `juncture check`.

    ``never`` names outcomes that no decision at the checkpoints ``at`` (exact names or
    globs, matched against actions) may reach for the ``subjects``, when ``when`` holds,
    unless the session meets the ``unless`` gate. ``reroute_only_to`` instead lists the only
    paths a `reroute` at those checkpoints may send a session to.
    """

    name: str
    location: Location
    description: str = ""
    at: tuple[str, ...] = ("*",)
    subjects: tuple[str, ...] = ()
    never: tuple[str, ...] = ()
    when: Condition | None = None
    unless: Require | None = None
    reroute_only_to: tuple[str, ...] | None = None


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of an app's `routes:`: the requests it matches and the checkpoint they ask.

    ``path`` is the pattern as written (`/accounts/{id}/email`); ``host`` an exact host or
    ``*.example.com``, None for any; ``methods`` upper-case, empty for any. ``resource_type``
    and ``resource_id`` (a template over the path's parameters) name the resource asked about.
    """

    path: str
    checkpoint: str
    location: Location
    host: str | None = None
    methods: tuple[str, ...] = ()
    resource_type: str | None = None
    resource_id: str | None = None


class AppRoutes(msgspec.Struct, frozen=True, kw_only=True):
    """An app's `routes:`: its routes in the order written and the checkpoint asked when none
    matches (None: the request is denied, reason `no_route`)."""

    app: str
    location: Location
    routes: tuple[Route, ...] = ()
    default: str | None = None


class Journey(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    file: str
    location: Location
    description: str = ""
    applies_to: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    methods: dict[str, Method] = {}
    networks: dict[str, Network] = {}
    risk: Risk = Risk()
    #: The counters the journey's `lockout:` names (the plan fills in the others).
    lockout: dict[str, Lockout] = {}
    guard: tuple[Step, ...] = ()
    checkpoints: tuple[Checkpoint, ...] = ()
    fragments: dict[str, Fragment] = {}
    #: The properties `juncture check` proves of every path (`invariants:`).
    invariants: tuple[Invariant, ...] = ()
    #: The `routes:` of the apps it governs: HTTP requests mapped to checkpoints (forward auth).
    routes: tuple[AppRoutes, ...] = ()
    #: Checkpoint (as written) -> a digest of everything its decision depends on: the
    #: journey's other parts, its fragments, the checkpoint's steps and the bundle's data.
    #: Equal in two versions: that checkpoint decides the same in both.
    fingerprints: dict[str, str] = {}


class Bundle(msgspec.Struct, frozen=True, kw_only=True):
    """A loaded policy bundle: its journeys, its data documents and its content-addressed id."""

    journeys: tuple[Journey, ...]
    data: dict[str, Any]
    version: str
