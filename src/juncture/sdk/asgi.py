"""Enforcement in an ASGI application (Starlette, FastAPI): `JunctureMiddleware` decides the
requests its ``checkpoint_for`` names, and `checkpoint` decides one endpoint. An allowed
request's decision is ``request.state.juncture`` (its ``scopes``); every other outcome is
answered as `juncture.sdk.enforce` says, without calling the endpoint."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

from juncture.sdk.answers import Decision
from juncture.sdk.client import AsyncClient
from juncture.sdk.enforce import (
    HOSTED_STEP_UP,
    Answer,
    CheckpointFor,
    Identify,
    Incoming,
    refusal,
    unauthenticated,
    unavailable,
)
from juncture.sdk.errors import JunctureError, JunctureUnavailable

__all__ = ["JunctureMiddleware", "checkpoint"]

Scope = MutableMapping[str, Any]  # as the ASGI spec and Starlette type them
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def incoming(scope: Scope) -> Incoming:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    query = scope.get("query_string", b"").decode("latin-1")
    host = headers.get("host", "")
    url = f"{scope.get('scheme', 'http')}://{host}{scope['path']}" + (f"?{query}" if query else "")
    return Incoming(scope["method"], scope["path"], query, headers, url)


class JunctureMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        client: AsyncClient,
        identify: Identify,
        *,
        checkpoint_for: CheckpointFor | None = None,
        step_up_url: str = HOSTED_STEP_UP,
    ) -> None:
        self.app = app
        self.client = client
        self.identify = identify
        self.checkpoint_for = checkpoint_for
        self.step_up_url = step_up_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope["juncture"] = self  # for @checkpoint
        request = incoming(scope)
        name = self.checkpoint_for(request) if self.checkpoint_for is not None else None
        if name is not None:
            answer, decision = await self.decide(name, request)
            if answer is not None:
                await respond(answer, send)
                return
            scope.setdefault("state", {})["juncture"] = decision
        await self.app(scope, receive, send)

    async def decide(self, name: str, request: Incoming) -> tuple[Answer | None, Decision | None]:
        """The refusal to send, or (None, the allow)."""
        identity = self.identify(request)
        if identity is None:
            return unauthenticated(), None
        try:
            decision = await self.client.evaluate(
                identity.subject, name, resource=identity.resource,
                session_id=identity.session_id, context=identity.context,
            )  # fmt: skip
        except JunctureUnavailable:
            return unavailable(), None
        except JunctureError as exc:  # a stale session, a refused key: refused, never let in
            return refusal(Decision(outcome="deny", reason=exc.code), request, ""), None
        return refusal(decision, request, self.step_up_url), decision


async def respond(answer: Answer, send: Send) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers]
    headers.append((b"content-length", str(len(answer.body)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def checkpoint(name: str) -> Callable[[Handler], Handler]:
    """Decide ``name`` before a Starlette or FastAPI endpoint runs. The endpoint takes the
    request (a parameter ``request: Request`` in FastAPI) and runs under `JunctureMiddleware`
    (which brings the client); without it, the request fails (500), never runs unchecked."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def decided(*args: Any, **kwargs: Any) -> Any:
            given = (*args, *kwargs.values())
            found = [a for a in given if hasattr(a, "scope") and hasattr(a, "state")]
            request: Any = found[0] if found else None
            enforcer = None if request is None else request.scope.get("juncture")
            if request is None or not isinstance(enforcer, JunctureMiddleware):
                raise RuntimeError(f"@checkpoint({name!r}) needs the request and the middleware")
            answer, decision = await enforcer.decide(name, incoming(request.scope))
            if answer is not None:
                from starlette.responses import Response

                return Response(answer.body, answer.status, headers=dict(answer.headers))
            request.state.juncture = decision
            return await handler(*args, **kwargs)

        return decided  # type: ignore[return-value]

    return wrap
