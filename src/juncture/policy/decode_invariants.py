"""Decode a journey's `invariants:` section (`juncture.policy.decode` calls it).

Each invariant names what no decision may do (`never`, with `when` and `unless`) or the only
paths a reroute may take (`reroute_only_to`), at the checkpoints `at` covers, for the
`subjects`. `juncture.analysis.invariants` proves them.
"""

from __future__ import annotations

from typing import Protocol

from juncture.errors import Location
from juncture.policy import model as m
from juncture.policy.names import ACTION as _ACTION
from juncture.policy.names import NAME as _NAME
from juncture.policy.names import suggest
from juncture.policy.source import Located


class _Decoder(Protocol):
    """What of `juncture.policy.decode._Decoder` the invariants are read with."""

    def error(
        self, message: str, code: str, loc: Location, suggestion: str | None = None
    ) -> None: ...

    def mapping(self, node: Located, what: str) -> dict[str, Located] | None: ...

    def keys(self, mapping: dict[str, Located], allowed: tuple[str, ...], what: str) -> None: ...

    def string(self, node: Located, what: str) -> str | None: ...

    def strings(self, node: Located, what: str) -> tuple[str, ...]: ...

    def condition(self, node: Located, what: str) -> m.Condition | None: ...

    def require(self, node: Located, loc: Location) -> m.Require | None: ...


_INVARIANT_KEYS = ("description", "at", "subjects", "never", "when", "unless", "reroute_only_to")
_SUBJECTS = ("user", "service", "agent")


def invariants(self: _Decoder, node: Located) -> tuple[m.Invariant, ...]:
    fields = self.mapping(node, "`invariants`") or {}
    out = []
    for name, spec in fields.items():
        if not _NAME.match(name):
            self.error(f"invariant name `{name}` is not valid", "policy.schema.name", spec.location)
            continue
        invariant = _invariant(self, name, spec)
        if invariant is not None:
            out.append(invariant)
    return tuple(out)


def _invariant(self: _Decoder, name: str, node: Located) -> m.Invariant | None:
    what = f"invariant `{name}`"
    fields = self.mapping(node, what)
    if fields is None:
        return None
    self.keys(fields, _INVARIANT_KEYS, what)
    loc = node.location
    if ("never" in fields) == ("reroute_only_to" in fields):
        self.error(
            f"{what} needs exactly one of `never`, `reroute_only_to`",
            "policy.schema.missing_key" if "never" not in fields else "policy.schema.step",
            loc,
        )
        return None
    if "reroute_only_to" in fields and ("when" in fields or "unless" in fields):
        self.error(
            f"`when` and `unless` go with `never`, not `reroute_only_to` ({what})",
            "policy.schema.step",
            loc,
        )
        return None
    ok = True
    at: tuple[str, ...] = ("*",)
    if "at" in fields:
        at = self.strings(fields["at"], "`at`")
        for pattern in at:
            if not _ACTION.match(pattern):
                ok = False
                self.error(
                    f"`at` pattern `{pattern}` is not a valid checkpoint name",
                    "policy.schema.name",
                    fields["at"].location,
                )
    subjects = self.strings(fields["subjects"], "`subjects`") if "subjects" in fields else ()
    for subject in subjects:
        if subject not in _SUBJECTS:
            ok = False
            self.error(
                f"unknown subject type `{subject}`",
                "policy.schema.value",
                fields["subjects"].location,
                suggest(subject, _SUBJECTS),
            )
    never = self.strings(fields["never"], "`never`") if "never" in fields else ()
    for outcome in never:
        if outcome not in m.INVARIANT_OUTCOMES:
            ok = False
            self.error(
                f"`never` takes {' or '.join(m.INVARIANT_OUTCOMES)}, not `{outcome}`",
                "policy.schema.value",
                fields["never"].location,
                suggest(outcome, m.INVARIANT_OUTCOMES),
            )
    when = self.condition(fields["when"], "`when`") if "when" in fields else None
    unless = None
    if "unless" in fields:
        gate = self.mapping(fields["unless"], "`unless`")
        if gate is not None:
            self.keys(gate, ("require",), "`unless`")
            if "require" in gate:
                unless = self.require(gate["require"], gate["require"].location)
            else:
                self.error(
                    "`unless` needs a `require` gate",
                    "policy.schema.missing_key",
                    fields["unless"].location,
                )
        ok = ok and unless is not None
    reroute_only_to = None
    if "reroute_only_to" in fields:
        reroute_only_to = self.strings(fields["reroute_only_to"], "`reroute_only_to`")
    description = ""
    if "description" in fields:
        description = self.string(fields["description"], "`description`") or ""
    if not ok or ("when" in fields and when is None):
        return None
    return m.Invariant(
        name=name,
        location=loc,
        description=description,
        at=at,
        subjects=subjects,
        never=never,
        when=when,
        unless=unless,
        reroute_only_to=reroute_only_to,
    )


def bundle_invariants(
    self: _Decoder, node: Located
) -> list[tuple[tuple[str, ...] | None, m.Invariant]]:
    """A bundle's `invariants.yaml`: (the journeys named, or None for all; the invariant)."""
    what = "the bundle's invariants file"
    fields = self.mapping(node, what)
    if fields is None:
        return []
    self.keys(fields, ("invariants",), what)
    if "invariants" not in fields:
        self.error(f"{what} needs `invariants:`", "policy.schema.missing_key", node.location)
        return []
    entries = fields["invariants"]
    out: list[tuple[tuple[str, ...] | None, m.Invariant]] = []
    for name, spec in (self.mapping(entries, "`invariants`") or {}).items():
        targets = None
        if isinstance(spec.value, dict) and "journeys" in spec.value:
            targets = self.strings(spec.value["journeys"], "`journeys`")
            rest = {k: v for k, v in spec.value.items() if k != "journeys"}
            spec = Located(rest, spec.location)
        out += [(targets, inv) for inv in invariants(self, Located({name: spec}, entries.location))]
    return out
