"""`Client` and `AsyncClient`: Juncture's decision and session APIs for an application.

The failure policy is the application's, and explicit: each request has a ``timeout``; a safe
request (a decision, a read) is tried again up to ``retries`` times within ``retry_budget``
seconds; a `CircuitBreaker` stops calling a Juncture that keeps failing. When Juncture cannot
answer, a decision fails closed: `JunctureUnavailable` is raised, or, with
``on_unavailable="deny"``, a deny with reason ``unavailable`` is returned. Never an allow."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from juncture.sdk import calls
from juncture.sdk.answers import Decision, SessionAnswer, from_authzen, session_answer
from juncture.sdk.breaker import CircuitBreaker
from juncture.sdk.calls import Call, OnUnavailable, Proof, Subject
from juncture.sdk.errors import ApiError, JunctureProtocolError, JunctureUnavailable


class _Policy:
    def __init__(
        self,
        base_url: str,
        app_key: str,
        timeout: float,
        retries: int,
        retry_budget: float,
        backoff: float,
        on_unavailable: OnUnavailable,
        breaker: CircuitBreaker | None,
    ) -> None:
        if on_unavailable not in ("raise", "deny"):
            raise ValueError('on_unavailable is "raise" or "deny"')
        if retries < 0 or timeout <= 0 or retry_budget < 0 or backoff < 0:
            raise ValueError("timeout must be positive; retries, budget and backoff not negative")
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {app_key}"}
        self.timeout = timeout
        self.retries = retries
        self.retry_budget = retry_budget
        self.backoff = backoff
        self.on_unavailable = on_unavailable
        self.breaker = breaker if breaker is not None else CircuitBreaker()

    def attempts(self, call: Call) -> int:
        return 1 + (self.retries if call.safe else 0)

    def delay(self, attempt: int, started: float, hint: float | None) -> float | None:
        """How long to wait before the next attempt, or None: no more attempts in the budget."""
        wait = hint if hint is not None else self.backoff * (2**attempt)
        if time.monotonic() - started + wait + self.timeout > self.retry_budget:
            return None
        return wait

    def outcome(self, response: httpx.Response) -> tuple[Any, JunctureUnavailable | None]:
        """The body, or the unavailability to retry on; records success or failure."""
        try:
            body = calls.read(response)
        except ApiError:
            self.breaker.success()  # Juncture answered: it is up
            raise
        except JunctureUnavailable as exc:
            self.breaker.failure()
            return None, exc
        except JunctureProtocolError:
            self.breaker.failure()
            raise
        self.breaker.success()
        return body, None

    def decided(self, body: Any | JunctureUnavailable) -> Decision:
        if isinstance(body, JunctureUnavailable):
            if self.on_unavailable == "deny":
                return Decision.unavailable()
            raise body
        return from_authzen(body)


class Client:
    """A synchronous client. ``on_unavailable``: ``"raise"`` (the default) or ``"deny"``."""

    def __init__(
        self,
        base_url: str,
        app_key: str,
        *,
        timeout: float = 2.0,
        retries: int = 2,
        retry_budget: float = 5.0,
        backoff: float = 0.05,
        on_unavailable: OnUnavailable = "raise",
        breaker: CircuitBreaker | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._policy = _Policy(base_url, app_key, timeout, retries, retry_budget, backoff,
                               on_unavailable, breaker)  # fmt: skip
        self.breaker = self._policy.breaker
        self._http = httpx.Client(
            base_url=self._policy.base_url, headers=self._policy.headers,
            timeout=timeout, transport=transport,
        )  # fmt: skip

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: Call) -> Any:
        policy = self._policy
        started = time.monotonic()
        for attempt in range(policy.attempts(call)):
            policy.breaker.before()
            hint = None
            try:
                response = self._http.request(call.method, call.path, **calls.request_args(call))
            except httpx.HTTPError as exc:
                policy.breaker.failure()
                error = calls.transport_error(exc)
            except BaseException:
                policy.breaker.failure()
                raise
            else:
                body, failed = policy.outcome(response)
                if failed is None:
                    return body
                error, hint = failed, calls.retry_after(response)
            wait = policy.delay(attempt, started, hint)
            if wait is None or attempt + 1 == policy.attempts(call):
                raise error
            time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def evaluate(
        self,
        subject: Subject,
        action: str,
        *,
        resource: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Decision:
        """Decide ``action`` for ``subject`` (AuthZEN ``POST /access/v1/evaluation``)."""
        call = calls.evaluation(subject, action, resource, session_id, context)
        try:
            body = self._send(call)
        except JunctureUnavailable as exc:
            return self._policy.decided(exc)
        return self._policy.decided(body)

    def start_session(
        self,
        subject: Subject | None = None,
        *,
        proofs: Sequence[Proof] = (),
        context: Mapping[str, Any] | None = None,
        action: str | None = None,
        **extra: Any,
    ) -> SessionAnswer:
        """``POST /v1/sessions``; ``extra``: ``credential``, ``delegation``, ``task``."""
        return session_answer(self._send(calls.start_session(subject, proofs, context, action,
                                                             extra)))  # fmt: skip

    def read_session(self, session_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self._send(calls.read_session(session_id))
        return body

    def update_context(
        self,
        session_id: str,
        *,
        context: Mapping[str, Any] | None = None,
        signals: Mapping[str, Any] | None = None,
    ) -> SessionAnswer:
        """``POST /v1/sessions/{id}/signals``: new observations; the guard runs at once."""
        return session_answer(self._send(calls.update_context(session_id, context, signals)))

    def end_session(self, session_id: str, *, revoke_reason: str | None = None) -> dict[str, Any]:
        """Log out (or revoke, with a reason); the ended session."""
        body: dict[str, Any] = self._send(calls.end_session(session_id, revoke_reason))
        return body

    def start_challenge(self, challenge_id: str, method: str) -> dict[str, Any]:
        """Begin a passkey ceremony or send an email code."""
        body: dict[str, Any] = self._send(calls.start_challenge(challenge_id, method))
        return body

    def verify_challenge(
        self, challenge_id: str, method: str, proof: Any = None
    ) -> SessionAnswer:
        """Answer a challenge (never retried: each try may spend an attempt). Without a
        ``proof`` the app asserts its own identity provider verified ``method``."""
        return session_answer(self._send(calls.verify_challenge(challenge_id, method, proof)))


class AsyncClient:
    """The asynchronous twin of `Client`, with the same arguments and methods."""

    def __init__(
        self,
        base_url: str,
        app_key: str,
        *,
        timeout: float = 2.0,
        retries: int = 2,
        retry_budget: float = 5.0,
        backoff: float = 0.05,
        on_unavailable: OnUnavailable = "raise",
        breaker: CircuitBreaker | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._policy = _Policy(base_url, app_key, timeout, retries, retry_budget, backoff,
                               on_unavailable, breaker)  # fmt: skip
        self.breaker = self._policy.breaker
        self._http = httpx.AsyncClient(
            base_url=self._policy.base_url, headers=self._policy.headers,
            timeout=timeout, transport=transport,
        )  # fmt: skip

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: Call) -> Any:
        policy = self._policy
        started = time.monotonic()
        for attempt in range(policy.attempts(call)):
            policy.breaker.before()
            hint = None
            try:
                response = await self._http.request(
                    call.method, call.path, **calls.request_args(call)
                )
            except httpx.HTTPError as exc:
                policy.breaker.failure()
                error = calls.transport_error(exc)
            except BaseException:
                policy.breaker.failure()
                raise
            else:
                body, failed = policy.outcome(response)
                if failed is None:
                    return body
                error, hint = failed, calls.retry_after(response)
            wait = policy.delay(attempt, started, hint)
            if wait is None or attempt + 1 == policy.attempts(call):
                raise error
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def evaluate(
        self,
        subject: Subject,
        action: str,
        *,
        resource: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Decision:
        call = calls.evaluation(subject, action, resource, session_id, context)
        try:
            body = await self._send(call)
        except JunctureUnavailable as exc:
            return self._policy.decided(exc)
        return self._policy.decided(body)

    async def start_session(
        self,
        subject: Subject | None = None,
        *,
        proofs: Sequence[Proof] = (),
        context: Mapping[str, Any] | None = None,
        action: str | None = None,
        **extra: Any,
    ) -> SessionAnswer:
        call = calls.start_session(subject, proofs, context, action, extra)
        return session_answer(await self._send(call))

    async def read_session(self, session_id: str) -> dict[str, Any]:
        body: dict[str, Any] = await self._send(calls.read_session(session_id))
        return body

    async def update_context(
        self,
        session_id: str,
        *,
        context: Mapping[str, Any] | None = None,
        signals: Mapping[str, Any] | None = None,
    ) -> SessionAnswer:
        call = calls.update_context(session_id, context, signals)
        return session_answer(await self._send(call))

    async def end_session(
        self, session_id: str, *, revoke_reason: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = await self._send(calls.end_session(session_id, revoke_reason))
        return body

    async def start_challenge(self, challenge_id: str, method: str) -> dict[str, Any]:
        body: dict[str, Any] = await self._send(calls.start_challenge(challenge_id, method))
        return body

    async def verify_challenge(
        self, challenge_id: str, method: str, proof: Any = None
    ) -> SessionAnswer:
        call = calls.verify_challenge(challenge_id, method, proof)
        return session_answer(await self._send(call))
