"""For applications that call Juncture: ask it, and act on its answers.

`Client` and `AsyncClient` call the decision API (AuthZEN evaluation) and the session API
(start, context updates, challenges, end) with a failure policy the application chooses
(timeout, retries of safe calls within a budget, a circuit breaker) and that fails closed:
when Juncture cannot answer, a decision raises `JunctureUnavailable` or, if asked, is a deny
with reason ``unavailable``. Never an allow. Answers are typed (`Decision`) and read
strictly; server errors are typed exceptions carrying the stable ``code``.

`step_up_challenge` turns a `step_up` answer (an AuthZEN response's `context`, or the native
API's `decision`) into the RFC 9470 `WWW-Authenticate` value an API returns with its 401, so a
client knows which authentication to obtain (`acr_values`) and how recent it must be
(`max_age`). Middleware: `juncture.sdk.asgi` (with `@checkpoint`) and `juncture.sdk.wsgi`;
Shared Signals receiving: `juncture.sdk.ssf`. The SDK depends on no other part of Juncture
(httpx; joserfc for `ssf`).
"""

from __future__ import annotations

from juncture.sdk.answers import Decision, SessionAnswer, StepUp
from juncture.sdk.breaker import CircuitBreaker
from juncture.sdk.client import AsyncClient, Client
from juncture.sdk.errors import (
    ApiError,
    BadRequest,
    Busy,
    CircuitOpen,
    Conflict,
    Forbidden,
    JunctureError,
    JunctureProtocolError,
    JunctureUnavailable,
    NotFound,
    Unauthorized,
)
from juncture.sdk.step_up import StepUpHint, step_up_challenge, step_up_hint

__all__ = [
    "ApiError",
    "AsyncClient",
    "BadRequest",
    "Busy",
    "CircuitBreaker",
    "CircuitOpen",
    "Client",
    "Conflict",
    "Decision",
    "Forbidden",
    "JunctureError",
    "JunctureProtocolError",
    "JunctureUnavailable",
    "NotFound",
    "SessionAnswer",
    "StepUp",
    "StepUpHint",
    "Unauthorized",
    "step_up_challenge",
    "step_up_hint",
]
