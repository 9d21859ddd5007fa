"""Decode one journey file: its YAML tree (with locations) -> the typed model (`m.Journey`).

Every key, step, method, network, risk rule and lockout counter is checked for shape here, and
each problem is collected with its location (`_Decoder.errors`), so that `juncture check`
shows them all at once. The bundle around the files (limits, data documents, fingerprints,
reading a directory) is `juncture.policy.loader`'s.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal

from juncture.errors import Location, PolicyError
from juncture.policy import kinds
from juncture.policy import model as m
from juncture.policy.decode_invariants import invariants as decode_invariants
from juncture.policy.decode_routes import routes as decode_routes
from juncture.policy.duration import format_duration, parse_duration
from juncture.policy.names import ACTION, NAME
from juncture.policy.names import suggest as suggest  # where the other modules find it
from juncture.policy.source import Located, plain

_NAME = NAME
_ACTION = ACTION
_TERMINALS = ("allow", "deny", "reroute", "revoke")
_STEP_KEYS = ("allow", "deny", "reroute", "revoke", "require", "if", "use")
_JOURNEY_KEYS = (
    "journey",
    "description",
    "applies_to",
    "subjects",
    "methods",
    "networks",
    "risk",
    "lockout",
    "guard",
    "checkpoints",
    "fragments",
    "invariants",
    "routes",
)


class _Decoder:
    """Turns one located journey document into a `Journey`, collecting errors."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.errors: list[PolicyError] = []

    def error(self, message: str, code: str, loc: Location, suggestion: str | None = None) -> None:
        self.errors.append(PolicyError(message, code=code, location=loc, suggestion=suggestion))

    # -- primitives ---------------------------------------------------------------------------
    def mapping(self, node: Located, what: str) -> dict[str, Located] | None:
        if isinstance(node.value, dict):
            return node.value
        self.error(f"{what} must be a mapping", "policy.schema.type", node.location)
        return None

    def keys(self, mapping: dict[str, Located], allowed: tuple[str, ...], what: str) -> None:
        for key, value in mapping.items():
            if key not in allowed:
                self.error(
                    f"unknown key `{key}` in {what}",
                    "policy.schema.unknown_key",
                    value.location,
                    suggest(key, allowed) or f"expected one of {', '.join(allowed)}",
                )

    def string(self, node: Located, what: str) -> str | None:
        if isinstance(node.value, str) and node.value:
            return node.value
        self.error(f"{what} must be a non-empty string", "policy.schema.type", node.location)
        return None

    def name(self, node: Located, what: str, pattern: re.Pattern[str] = _NAME) -> str | None:
        text = self.string(node, what)
        if text is not None and not pattern.match(text):
            self.error(f"{what} `{text}` is not a valid name", "policy.schema.name", node.location)
            return None
        return text

    def strings(self, node: Located, what: str) -> tuple[str, ...]:
        items = node.value if isinstance(node.value, list) else None
        if items is None:
            if isinstance(node.value, str):
                return (node.value,)
            self.error(f"{what} must be a list of strings", "policy.schema.type", node.location)
            return ()
        out = []
        for item in items:
            text = self.string(item, f"an item of {what}")
            if text is not None:
                out.append(text)
        return tuple(out)

    def integer(self, node: Located, what: str, low: int, high: int) -> int | None:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(f"{what} must be an integer", "policy.schema.type", node.location)
            return None
        if not low <= value <= high:
            self.error(
                f"{what} must be between {low} and {high}, not {value}",
                "policy.schema.value",
                node.location,
            )
            return None
        return value

    def duration(self, node: Located, what: str) -> int | None:
        try:
            return parse_duration(node.value)
        except ValueError as exc:
            self.error(f"{what}: {exc}", "policy.schema.duration", node.location)
            return None

    def condition(self, node: Located, what: str) -> m.Condition | None:
        if isinstance(node.value, bool):
            return m.Condition(text="true" if node.value else "false", location=node.location)
        text = self.string(node, what)
        return None if text is None else m.Condition(text=text, location=node.location)

    # -- steps ----------------------------------------------------------------------------------
    def steps(self, node: Located, what: str) -> tuple[m.Step, ...]:
        if not isinstance(node.value, list):
            self.error(f"{what} must be a list of steps", "policy.schema.type", node.location)
            return ()
        out = []
        for item in node.value:
            step = self.step(item, what)
            if step is not None:
                out.append(step)
        return tuple(out)

    def step(self, node: Located, what: str) -> m.Step | None:
        fields = self.mapping(node, f"a step of {what}")
        if fields is None:
            return None
        loc = node.location
        kinds = [k for k in fields if k in _STEP_KEYS]
        unknown = [k for k in fields if k not in (*_STEP_KEYS, "then", "else")]
        for key in unknown:
            self.error(
                f"unknown step key `{key}`",
                "policy.schema.unknown_key",
                fields[key].location,
                suggest(key, (*_STEP_KEYS, "then", "else")),
            )
        if unknown:
            return None
        if "if" in kinds:
            return self.if_step(fields, loc)
        if "then" in fields or "else" in fields:
            self.error("`then` and `else` belong to an `if` step", "policy.schema.step", loc)
            return None
        if len(kinds) != 1:
            self.error(
                f"a step must have exactly one of {', '.join(_STEP_KEYS)}",
                "policy.schema.step",
                loc,
            )
            return None
        return self.simple_step(kinds[0], fields[kinds[0]], loc)

    def if_step(self, fields: dict[str, Located], loc: Location) -> m.Step | None:
        condition = self.condition(fields["if"], "`if`")
        terminals = [k for k in fields if k in _TERMINALS]
        others = [k for k in fields if k in ("require", "use")]
        branches = [k for k in fields if k in ("then", "else")]
        if others or (terminals and branches) or len(terminals) > 1:
            self.error(
                "an `if` step takes `then`/`else` lists, or exactly one of "
                "allow, deny, reroute, revoke on the same item",
                "policy.schema.step",
                loc,
            )
            return None
        if not terminals and not branches:
            self.error("an `if` step needs `then`, `else` or an outcome", "policy.schema.step", loc)
            return None
        if terminals:
            outcome = self.simple_step(terminals[0], fields[terminals[0]], loc)
            then: tuple[m.Step, ...] = (outcome,) if outcome is not None else ()
            otherwise: tuple[m.Step, ...] = ()
        else:
            then = self.steps(fields["then"], "`then`") if "then" in fields else ()
            otherwise = self.steps(fields["else"], "`else`") if "else" in fields else ()
        if condition is None:
            return None
        return m.If(location=loc, condition=condition, then=then, otherwise=otherwise)

    def simple_step(self, kind: str, node: Located, loc: Location) -> m.Step | None:
        if kind == "allow":
            return self.allow(node, loc)
        if kind in ("deny", "revoke"):
            reason = self.name(node, f"the reason of `{kind}`")
            if reason is None:
                return None
            return (
                m.Deny(location=loc, reason=reason)
                if kind == "deny"
                else m.Revoke(location=loc, reason=reason)
            )
        if kind == "reroute":
            return self.reroute(node, loc)
        if kind == "require":
            return self.require(node, loc)
        # kind == "use"
        fragment = self.name(node, "the fragment of `use`")
        return None if fragment is None else m.Use(location=loc, fragment=fragment)

    def allow(self, node: Located, loc: Location) -> m.Allow | None:
        if node.value is None:
            return m.Allow(location=loc)
        fields = self.mapping(node, "`allow`")
        if fields is None:
            return None
        self.keys(fields, ("scopes", "ttl", "obligations"), "`allow`")
        scopes = self.strings(fields["scopes"], "`scopes`") if "scopes" in fields else ()
        ttl = self.duration(fields["ttl"], "`ttl`") if "ttl" in fields else None
        obligations: tuple[Any, ...] = ()
        if "obligations" in fields:
            raw = fields["obligations"]
            if isinstance(raw.value, list):
                obligations = tuple(plain(item) for item in raw.value)
            else:
                self.error("`obligations` must be a list", "policy.schema.type", raw.location)
        return m.Allow(location=loc, scopes=scopes, ttl=ttl, obligations=obligations)

    def reroute(self, node: Located, loc: Location) -> m.Reroute | None:
        fields = self.mapping(node, "`reroute`")
        if fields is None:
            return None
        self.keys(fields, ("path", "scopes", "ttl"), "`reroute`")
        if "path" not in fields:
            self.error("`reroute` needs a `path`", "policy.schema.missing_key", node.location)
            return None
        path = self.string(fields["path"], "`path`")
        scopes = self.strings(fields["scopes"], "`scopes`") if "scopes" in fields else ()
        ttl = self.duration(fields["ttl"], "`ttl`") if "ttl" in fields else None
        if path is None:
            return None
        return m.Reroute(location=loc, path=path, scopes=scopes, ttl=ttl)

    def require(self, node: Located, loc: Location) -> m.Require | None:
        fields = self.mapping(node, "`require`")
        if fields is None:
            return None
        self.keys(fields, ("any", "all", "within", "aal"), "`require`")
        if "any" in fields and "all" in fields:
            self.error("`require` takes `any` or `all`, not both", "policy.schema.step", loc)
            return None
        mode: Literal["any", "all"] = "all" if "all" in fields else "any"
        methods = self.strings(fields[mode], f"`{mode}`") if mode in fields else ()
        within = self.duration(fields["within"], "`within`") if "within" in fields else None
        aal = self.integer(fields["aal"], "`aal`", 1, 3) if "aal" in fields else None
        if not methods and aal is None:
            self.error(
                "`require` needs methods (`any` or `all`) or an `aal`",
                "policy.schema.missing_key",
                loc,
            )
            return None
        return m.Require(location=loc, methods=methods, mode=mode, within=within, aal=aal)

    # -- sections -------------------------------------------------------------------------------
    def methods(self, node: Located) -> dict[str, m.Method]:
        fields = self.mapping(node, "`methods`") or {}
        out = {}
        for name, spec in fields.items():
            if not _NAME.match(name):
                self.error(
                    f"method name `{name}` is not valid", "policy.schema.name", spec.location
                )
                continue
            attrs = self.mapping(spec, f"method `{name}`")
            if attrs is None:
                continue
            if "kind" not in attrs:
                self.error(
                    f"method `{name}` needs a `kind`", "policy.schema.missing_key", spec.location
                )
                continue
            kind = attrs["kind"].value
            if kind not in kinds.KINDS:
                self.error(
                    f"unknown method kind `{kind}`",
                    "policy.schema.value",
                    attrs["kind"].location,
                    suggest(str(kind), kinds.KINDS) or f"expected one of {', '.join(kinds.KINDS)}",
                )
                continue
            aal = kinds.default_aal(kind)
            if "aal" in attrs:
                aal = self.integer(attrs["aal"], "`aal`", 0, 3) or 0
            options = {k: plain(v) for k, v in attrs.items() if k not in ("kind", "aal")}
            out[name] = m.Method(
                name=name, kind=kind, aal=aal, options=options, location=spec.location
            )
        return out

    def networks(self, node: Located) -> dict[str, m.Network]:
        fields = self.mapping(node, "`networks`") or {}
        out = {}
        for name, spec in fields.items():
            if not _NAME.match(name):
                self.error(
                    f"network name `{name}` is not valid", "policy.schema.name", spec.location
                )
                continue
            cidrs = []
            items = spec.value if isinstance(spec.value, list) else None
            if items is None:
                self.error(
                    f"network `{name}` must be a list of CIDRs", "policy.schema.type", spec.location
                )
                continue
            for item in items:
                try:
                    cidrs.append(str(ipaddress.ip_network(str(item.value), strict=False)))
                except ValueError:
                    self.error(
                        f"`{item.value}` is not a valid IPv4 or IPv6 network",
                        "policy.schema.cidr",
                        item.location,
                    )
            out[name] = m.Network(name=name, cidrs=tuple(cidrs), location=spec.location)
        return out

    def risk(self, node: Located) -> m.Risk:
        rules_node: Located | None = node
        levels: tuple[m.RiskLevel, ...] = m.DEFAULT_RISK_LEVELS
        if isinstance(node.value, dict):
            self.keys(node.value, ("rules", "levels"), "`risk`")
            rules_node = node.value.get("rules")
            if "levels" in node.value:
                levels = self.levels(node.value["levels"])
        rules = []
        if rules_node is not None and not isinstance(rules_node.value, list):
            self.error("`risk` rules must be a list", "policy.schema.type", rules_node.location)
        elif rules_node is not None:
            for item in rules_node.value:
                rule = self.risk_rule(item)
                if rule is not None:
                    rules.append(rule)
        return m.Risk(rules=tuple(rules), levels=levels)

    def levels(self, node: Located) -> tuple[m.RiskLevel, ...]:
        fields = self.mapping(node, "`risk.levels`") or {}
        levels = []
        for name, value in fields.items():
            at_least = self.integer(value, f"risk level `{name}`", 0, 100)
            if at_least is not None:
                levels.append(m.RiskLevel(name=name, at_least=at_least))
        levels.sort(key=lambda level: level.at_least)
        if not levels or levels[0].at_least != 0:
            self.error(
                "`risk.levels` needs a level that starts at 0", "policy.schema.value", node.location
            )
            return m.DEFAULT_RISK_LEVELS
        return tuple(levels)

    def risk_rule(self, node: Located) -> m.RiskRule | None:
        fields = self.mapping(node, "a risk rule")
        if fields is None:
            return None
        self.keys(fields, ("when", "add", "reason"), "a risk rule")
        for key in ("when", "add", "reason"):
            if key not in fields:
                self.error(f"a risk rule needs `{key}`", "policy.schema.missing_key", node.location)
                return None
        when = self.condition(fields["when"], "`when`")
        add = self.integer(fields["add"], "`add`", -100, 100)
        reason = self.name(fields["reason"], "`reason`")
        if when is None or add is None or reason is None:
            return None
        return m.RiskRule(when=when, add=add, reason=reason, location=node.location)

    def lockout(self, node: Located) -> dict[str, m.Lockout]:
        fields = self.mapping(node, "`lockout`") or {}
        self.keys(fields, m.LOCKOUT_COUNTERS, "`lockout`")
        out = {}
        for counter in m.LOCKOUT_COUNTERS:
            if counter in fields:
                spec = self.lockout_counter(counter, fields[counter])
                if spec is not None:
                    out[counter] = spec
        return out

    def lockout_counter(self, counter: str, node: Located) -> m.Lockout | None:
        what = f"`lockout.{counter}`"
        fields = self.mapping(node, what)
        if fields is None:
            return None
        self.keys(fields, m.LOCKOUT_FIELDS, what)
        values = dict(m.LOCKOUT_DEFAULTS[counter])
        for key in m.LOCKOUT_FIELDS:
            if key in fields:
                value = self.lockout_field(key, fields[key], f"`lockout.{counter}.{key}`")
                if value is not None:
                    values[key] = value
        return m.Lockout(
            counter=counter,
            after=values["after"],
            within=values["within"],
            lock=values["lock"],
            backoff=values["backoff"],
            location=node.location,
        )

    def lockout_field(self, key: str, node: Located, what: str) -> int | None:
        """`after`: 1..1000 failures; `within` > 0; `lock` from 1s to 30d; `backoff` >= 0."""
        if key == "after":
            return self.integer(node, what, 1, m.LOCKOUT_MAX_AFTER)
        seconds = self.duration(node, what)
        if seconds is None or key == "backoff":
            return seconds
        if key == "within" and seconds == 0:
            bound = "more than 0s"
        elif key == "lock" and not 0 < seconds <= m.LOCKOUT_MAX_LOCK:
            bound = "between 1s and 30d"
        else:
            return seconds
        self.error(
            f"{what} must be {bound}, not `{format_duration(seconds)}`",
            "policy.schema.value",
            node.location,
        )
        return None

    def journey(self, node: Located) -> m.Journey | None:
        fields = self.mapping(node, "a journey file")
        if fields is None:
            return None
        self.keys(fields, _JOURNEY_KEYS, "a journey")
        if "journey" not in fields:
            self.error(
                "a journey file needs `journey: <name>`", "policy.schema.missing_key", node.location
            )
            return None
        name = self.name(fields["journey"], "the journey name")
        description = ""
        if "description" in fields:
            description = self.string(fields["description"], "`description`") or ""
        applies_to = (
            self.strings(fields["applies_to"], "`applies_to`") if "applies_to" in fields else ()
        )
        subjects = self.strings(fields["subjects"], "`subjects`") if "subjects" in fields else ()
        for subject in subjects:
            if subject not in ("user", "service", "agent"):
                self.error(
                    f"unknown subject type `{subject}`",
                    "policy.schema.value",
                    fields["subjects"].location,
                    suggest(subject, ("user", "service", "agent")),
                )
        methods = self.methods(fields["methods"]) if "methods" in fields else {}
        networks = self.networks(fields["networks"]) if "networks" in fields else {}
        risk = self.risk(fields["risk"]) if "risk" in fields else m.Risk()
        lockout = self.lockout(fields["lockout"]) if "lockout" in fields else {}
        guard = self.steps(fields["guard"], "`guard`") if "guard" in fields else ()
        checkpoints = []
        if "checkpoints" in fields:
            for cp_name, steps in (
                self.mapping(fields["checkpoints"], "`checkpoints`") or {}
            ).items():
                if not _ACTION.match(cp_name):
                    self.error(
                        f"checkpoint name `{cp_name}` is not valid",
                        "policy.schema.name",
                        steps.location,
                    )
                    continue
                checkpoints.append(
                    m.Checkpoint(
                        name=cp_name,
                        steps=self.steps(steps, f"checkpoint `{cp_name}`"),
                        location=steps.location,
                    )
                )
        fragments = {}
        if "fragments" in fields:
            for fr_name, steps in (self.mapping(fields["fragments"], "`fragments`") or {}).items():
                if not _NAME.match(fr_name):
                    self.error(
                        f"fragment name `{fr_name}` is not valid",
                        "policy.schema.name",
                        steps.location,
                    )
                    continue
                fragments[fr_name] = m.Fragment(
                    name=fr_name,
                    steps=self.steps(steps, f"fragment `{fr_name}`"),
                    location=steps.location,
                )
        invariants: tuple[m.Invariant, ...] = ()
        if "invariants" in fields:
            invariants = decode_invariants(self, fields["invariants"])
        routes = decode_routes(self, fields["routes"]) if "routes" in fields else ()
        if name is None:
            return None
        return m.Journey(
            name=name,
            file=self.file,
            location=node.location,
            description=description,
            applies_to=applies_to,
            subjects=subjects,
            methods=methods,
            networks=networks,
            risk=risk,
            lockout=lockout,
            guard=guard,
            checkpoints=tuple(checkpoints),
            fragments=fragments,
            invariants=invariants,
            routes=routes,
        )
