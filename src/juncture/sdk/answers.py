"""Juncture's answers as typed values, read strictly: an answer of an unexpected shape is an
error (`JunctureProtocolError`), never a guess that could let a request through."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from juncture.sdk.errors import JunctureProtocolError

Outcome = Literal["allow", "deny", "step_up", "reroute", "revoke"]
OUTCOMES: tuple[Outcome, ...] = ("allow", "deny", "step_up", "reroute", "revoke")


@dataclass(frozen=True, slots=True)
class StepUp:
    """What would satisfy a step-up: the acceptable methods, the RFC 9470 ``acr_values``
    (space-separated) and ``max_age`` (seconds; None: any age)."""

    methods: tuple[str, ...]
    acr_values: str | None = None
    max_age: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """One decision. Only ``allow`` lets the action asked for proceed (`allowed`); a
    ``reroute`` lets the user go on at `path` only."""

    outcome: Outcome
    reason: str | None = None
    id: str | None = None
    version: str | None = None
    scopes: tuple[str, ...] = ()
    path: str | None = None
    step_up: StepUp | None = None
    challenge_id: str | None = None
    www_authenticate: str | None = None
    ttl: int | None = None
    missing: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow"

    @property
    def permitted(self) -> bool:
        """True for ``allow`` and ``reroute`` (the native API's `permitted`)."""
        return self.outcome in ("allow", "reroute")

    @classmethod
    def unavailable(cls) -> Decision:
        """The deny a client gives, with ``on_unavailable="deny"``, when Juncture cannot be
        reached: reason ``unavailable``, no id (no decision was made)."""
        return cls(outcome="deny", reason="unavailable")


@dataclass(frozen=True, slots=True)
class SessionAnswer:
    """A session call's answer: its decision and the session (None when no session was made:
    a login that denies)."""

    decision: Decision
    session: Mapping[str, Any] | None = field(default=None)

    @property
    def session_id(self) -> str | None:
        return None if self.session is None else str(self.session["id"])


def _text(where: Mapping[str, Any], name: str) -> str | None:
    value = where.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise JunctureProtocolError(f"{name} is not a string")
    return value


def _texts(where: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = where.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise JunctureProtocolError(f"{name} is not a list of strings")
    return tuple(value)


def _seconds(where: Mapping[str, Any], name: str) -> int | None:
    value = where.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise JunctureProtocolError(f"{name} is not a number of seconds")
    return value


def _outcome(where: Mapping[str, Any]) -> Outcome:
    value = where.get("outcome")
    for outcome in OUTCOMES:
        if value == outcome:
            return outcome
    raise JunctureProtocolError(f"unknown outcome {value!r}")


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise JunctureProtocolError(f"{what} is not an object")
    return value


def from_authzen(body: Any) -> Decision:
    """A Decision from an AuthZEN evaluation response (``{"decision": bool, "context": ...}``).
    The boolean must agree with the outcome: only ``allow`` is true."""
    body = _mapping(body, "the answer")
    context = _mapping(body.get("context"), "context")
    outcome = _outcome(context)
    if body.get("decision") is not (outcome == "allow"):
        raise JunctureProtocolError("decision does not agree with the outcome")
    step_up = None
    if outcome == "step_up":
        step_up = StepUp(
            methods=_texts(context, "methods"),
            acr_values=_text(context, "acr_values"),
            max_age=_seconds(context, "max_age"),
        )
    return Decision(
        outcome=outcome,
        reason=_text(context, "reason"),
        id=_text(context, "id"),
        version=_text(context, "version"),
        scopes=_texts(context, "scopes"),
        path=_text(context, "path"),
        step_up=step_up,
        challenge_id=_text(context, "challenge_id"),
        www_authenticate=_text(context, "www_authenticate"),
        ttl=_seconds(context, "ttl"),
        missing=_texts(context, "missing"),
    )


def from_native(body: Any) -> Decision:
    """A Decision from the native API's ``decision`` object."""
    body = _mapping(body, "decision")
    outcome = _outcome(body)
    if body.get("permitted") is not (outcome in ("allow", "reroute")):
        raise JunctureProtocolError("permitted does not agree with the outcome")
    step_up = None
    raw = body.get("step_up")
    if outcome == "step_up" or raw is not None:
        raw = _mapping(raw, "step_up")
        step_up = StepUp(
            methods=_texts(raw, "methods"),
            acr_values=_text(raw, "acr_values") or None,
            max_age=_seconds(raw, "max_age"),
        )
    challenge = body.get("challenge")
    challenge_id = None if challenge is None else _text(_mapping(challenge, "challenge"), "id")
    return Decision(
        outcome=outcome,
        reason=_text(body, "reason"),
        id=_text(body, "id"),
        version=_text(body, "version") or None,
        scopes=_texts(body, "scopes"),
        path=_text(body, "path"),
        step_up=step_up,
        challenge_id=challenge_id,
        www_authenticate=_text(body, "www_authenticate"),
        ttl=_seconds(body, "ttl"),
        missing=_texts(body, "missing"),
    )


def session_answer(body: Any) -> SessionAnswer:
    """A native session answer: ``{"decision": ..., "session": ...}`` (no session: none made)."""
    body = _mapping(body, "the answer")
    session = body.get("session")
    if session is not None:
        session = _mapping(session, "session")
        if not isinstance(session.get("id"), str):
            raise JunctureProtocolError("session has no id")
    return SessionAnswer(decision=from_native(body.get("decision")), session=session)
