"""The front of the service: request ids on every answer, and the single-decision routes
answered at once.

A decision is the service's hot path (`bench/http_load.py`, `bench/forward_auth.py`): the
AuthZEN evaluation and forward auth's question from a proxy. `Front` is the ASGI app the server
runs: it sends such a request straight to its handler, past Starlette's router and
middleware, and everything else to the Starlette app. Under `juncture serve`, the server's
protocol (api/protocol.py) goes one step further: once a decision request's body is in, it
asks the route's `Direct` for the answer there and then, on the event loop, and writes it in
one piece: no ASGI task, no receive and send messages. `Direct` declines (None), and the
request goes the ASGI way, whenever the answer could not be made at once: the decision log
is durable (the answer waits for its commit), a store call would wait on the network
(waiting.py: nothing has been changed yet), or this node's clock is off (the ASGI route
answers that). Both ways run the same checks and handler code and give the same answers,
errors included (`tests/api/test_decision_route_http.py`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from juncture.api.boundary import LOOP_TRIED, ServiceCalls
from juncture.api.problems import problem, problem_of
from juncture.errors import CorruptError, Refusal, StoreError
from juncture.service.clock import ClockWatch
from juncture.waiting import WouldWait, no_waiting

log = logging.getLogger("juncture.api")

Handler = Callable[[Request], Awaitable[Response]]
#: A handler's synchronous twin: the same answer to a request whose body is read already.
ReadHandler = Callable[[Request, bytes], Response]


def answer_error(error: Exception) -> Response:
    """The answer to an error a handler let out: a `Refusal` with its own status and code; a
    store failure or a corrupt record as their problems (logged); anything else a 500 that
    shows no stack trace (logged)."""
    if isinstance(error, CorruptError):  # one record, not the store: the rest works on
        log.exception("a stored record is corrupt")
        return problem_of(error)
    if isinstance(error, StoreError):
        log.exception("store unavailable")
        return problem_of(error)
    if isinstance(error, Refusal):
        return problem_of(error)
    log.exception("internal error")
    return problem(500, "internal.error", "internal error")


def skew_refusal(clock: ClockWatch | None) -> Response | None:
    """The answer of a route that decides or stamps proofs while this node's clock is off."""
    if clock is None or not clock.skewed:
        return None
    return problem(
        503,
        "unavailable.clock_skew",
        f"this node's clock is off the store's by more than {clock.settings.max_skew:g} s: "
        "it decides nothing until it is set right",
    )


#: A caller's request id is echoed when it is printable ASCII (a header value may hold no
#: control character) of 128 bytes at most.
_PRINTABLE = re.compile(rb"[\x20-\x7e]+")


class RequestIds:
    """`X-Request-ID` on every answer: the caller's, when it is sane, else a new one."""

    def __init__(self) -> None:
        self.counter = 0

    def of(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        for name, value in headers:
            if name == b"x-request-id":
                if len(value) <= 128 and _PRINTABLE.fullmatch(value):
                    return value
                break
        self.counter += 1
        return f"r{time.time_ns():x}{self.counter:x}".encode()


class Direct:
    """A single-decision route's answer made at once, on the event loop, or None when it must
    go the ASGI way (see the module docstring)."""

    def __init__(self, app: Starlette, read: ReadHandler, *, clocked: bool) -> None:
        self.app = app
        self.read = read
        self.clocked = clocked
        #: Requests answered at once, and declined (gone the ASGI way): `/metrics`.
        self.answered = 0
        self.declined = 0

    def answer(self, scope: Scope, body: bytes) -> Response | None:
        """The answer to the request of ``scope`` whose whole body is ``body`` (within the
        route's limit), or None: nothing was done, the request goes the ASGI way."""
        answer = self._at_once(scope, body)
        if answer is None:
            self.declined += 1
        else:
            self.answered += 1
        return answer

    def _at_once(self, scope: Scope, body: bytes) -> Response | None:
        state = self.app.state
        calls: ServiceCalls = state.service_calls
        if calls.mode == "threads" or state.runtime.log.writer.mode != "batched":
            return None
        if self.clocked and skew_refusal(state.clock) is not None:
            return None
        scope["app"] = self.app
        request = Request(scope)
        if calls.mode == "loop":
            return self._answer(request, body)
        calls.tried_on_loop += 1
        try:
            with no_waiting():
                return self._answer(request, body)
        except WouldWait:  # a cache miss or a write: from the start, in a thread
            calls.moved_to_threads += 1
            scope[LOOP_TRIED] = True
            return None

    def _answer(self, request: Request, body: bytes) -> Response:
        try:
            return self.read(request, body)
        except Exception as error:
            return answer_error(error)


class Front:
    """The ASGI app the server runs (see the module docstring): request ids on every answer,
    the routes answered at once straight to their handler, the rest to the Starlette app.

    ``key_of``: the key of a request's route among those (by its method and path), or None.
    ``routes``: each such route's handler wrapped as its route wraps it (app.py `_errors`: it
    answers every error itself; anything it lets out is a 500 problem, as the server error
    middleware would answer). ``direct``: the same routes' `Direct` answers, for the server's
    protocol.
    """

    def __init__(
        self,
        app: Starlette,
        routes: dict[str, Handler],
        direct: dict[str, Direct],
        key_of: Callable[[str, str], str | None],
    ) -> None:
        self.app = app
        self.routes = routes
        self.direct = direct
        self.key_of = key_of
        self.request_ids = RequestIds()

    def direct_for(self, method: str, path: str) -> Direct | None:
        """The `Direct` of the route a request of ``method`` to ``path`` goes to, if any."""
        key = self.key_of(method, path)
        return self.direct.get(key) if key is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = self.request_ids.of(scope["headers"])
        scope.setdefault("state", {})["request_id"] = given.decode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", given)]
            await send(message)

        key = self.key_of(scope["method"], scope["path"])
        handler = self.routes.get(key) if key is not None else None
        if handler is None:
            await self.app(scope, receive, send_with_id)
            return
        scope["app"] = self.app
        try:
            response = await handler(Request(scope, receive))
        except Exception:  # never a stack trace to a caller
            log.exception("internal error")
            response = problem(500, "internal.error", "internal error")
        await response(scope, receive, send_with_id)
