"""What an enforcement point does with a decision, shared by the ASGI and WSGI middleware.

allow: the request goes on, the decision (its ``scopes``) handed to the handler. step_up: an
API request gets 401 with the RFC 9470 ``WWW-Authenticate`` challenge, a browser (a ``GET``
that accepts ``text/html``) a 303 to the hosted step-up page with the request's URL to come
back to. reroute: a browser is sent to the decision's path, an API request gets 403. deny and
revoke: 403. Juncture unavailable: 503, or the application's chosen deny (403
``unavailable``). A request the application cannot tie to a subject: 401. Never an allow
without an allow decision."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from juncture.sdk.answers import Decision
from juncture.sdk.step_up import step_up_challenge

__all__ = ["HOSTED_STEP_UP", "Identity", "Incoming", "routes"]

#: Where forward auth sends a browser to step up (docs/proxy.md): on the app's own origin.
HOSTED_STEP_UP = "/hosted/v1/step-up"


@dataclass(frozen=True, slots=True)
class Incoming:
    """A request as the middleware sees it: ``headers`` with lower-case names."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    url: str

    @property
    def browser(self) -> bool:
        return self.method in ("GET", "HEAD") and "text/html" in self.headers.get("accept", "")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who asks: the subject (a user id, or an AuthZEN subject) and their Juncture session."""

    subject: str | Mapping[str, Any]
    session_id: str | None = None
    resource: Mapping[str, Any] | None = None
    context: Mapping[str, Any] | None = None


Identify = Callable[[Incoming], Identity | None]
CheckpointFor = Callable[[Incoming], str | None]


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _json(status: int, body: Mapping[str, Any], *headers: tuple[str, str]) -> Answer:
    return Answer(
        status,
        [("content-type", "application/json"), *headers],
        json.dumps(body).encode(),
    )


def refusal(decision: Decision, incoming: Incoming, step_up_url: str) -> Answer | None:
    """The answer for a decision that does not let the request through (None for allow)."""
    if decision.outcome == "allow":
        return None
    if decision.outcome == "step_up":
        if incoming.browser:
            location = f"{step_up_url}?{urlencode({'return_to': incoming.url})}"
            return Answer(303, [("location", location)], b"")
        challenge = decision.www_authenticate or step_up_challenge(
            {"outcome": "step_up",
             "acr_values": decision.step_up.acr_values if decision.step_up else None,
             "max_age": decision.step_up.max_age if decision.step_up else None}
        )  # fmt: skip
        body = {
            "outcome": "step_up",
            "challenge_id": decision.challenge_id,
            "methods": list(decision.step_up.methods) if decision.step_up else [],
        }
        return _json(401, body, ("www-authenticate", challenge or "Bearer"))
    if decision.outcome == "reroute" and decision.path is not None:
        if incoming.browser:
            return Answer(303, [("location", decision.path)], b"")
        return _json(403, {"outcome": "reroute", "path": decision.path})
    return _json(403, {"outcome": decision.outcome, "reason": decision.reason})


def unauthenticated() -> Answer:
    return _json(401, {"outcome": "deny", "reason": "unauthenticated"},
                 ("www-authenticate", "Bearer"))  # fmt: skip


def unavailable() -> Answer:
    return _json(503, {"outcome": "deny", "reason": "unavailable"}, ("retry-after", "1"))


def routes(table: Mapping[tuple[str, str], str]) -> CheckpointFor:
    """A `CheckpointFor` from ``{(method, path): checkpoint}`` (exact paths; ``"*"`` as the
    method matches any). A request no entry names is not decided here."""
    exact = dict(table)

    def checkpoint_for(incoming: Incoming) -> str | None:
        return exact.get((incoming.method, incoming.path)) or exact.get(("*", incoming.path))

    return checkpoint_for
