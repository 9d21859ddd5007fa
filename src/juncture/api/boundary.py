"""Where a request's service calls run: on the server's event loop, or in a worker thread.

Handlers are coroutines; the services and the store under them are synchronous. How a handler
runs is decided once, at start-up, by the store (``Store.remote``), and the same handler code
serves both ways:

- ``loop``: the handler runs on the server's event loop and calls the services in place;
- ``threads``: the handler's body is read on the loop (within the route's limit, the one the
  handler applies too), then the handler runs whole
  in a worker thread, on that thread's own event loop, over a copy of the request that replays
  the body it was given. Every store call it makes is off the server's loop; the server's loop
  only reads requests and writes answers.

The choice is made by measurement (``bench/store_boundary.py``, the "store boundary" section
of ``bench/RESULTS.md``). On the embedded SQLite store a decision's store calls are local point
reads of tens of microseconds: a thread hop costs as much as the whole decision or more, and
threads made between a fifth and a half of the decisions a worker makes on the loop (runs on a
2-CPU machine). With a round trip of a quarter of a millisecond on every store call, as a
networked database has, calls on the loop stop every other request of the worker for each round
trip, and threads made 2.6 to 4.9 times as many decisions. So a local store runs on the loop
and a remote one in threads; `juncture serve --store-calls` may force either (the test suite
runs the reference scenarios in both modes).

We did not make the store Protocols async: every service above the store would have had to
become async too (the engine's callers, the sweep, the command line, the tests), for what the
thread pool already gives a networked backend at the cost of one hop per request.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Literal

import anyio.to_thread
from anyio import CapacityLimiter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from juncture.api.problems import raw_body
from juncture.waiting import WouldWait, no_waiting

#: How a request's service calls run: on the server's event loop, or in worker threads, or
#: (decisions) on the loop until they would wait, then in a thread.
StoreCalls = Literal["loop", "threads", "loop-first"]
Handler = Callable[[Request], Awaitable[Response]]

#: Set in a request's scope once it was tried on the loop and would have waited (api/direct.py
#: tries a decision there before its ASGI task exists): it goes to a thread at once.
LOOP_TRIED = "juncture.loop_tried"

#: Requests in worker threads at most, per server worker process: a networked store's pool of
#: connections should hold at least this many.
THREADS = 32


def store_calls(choice: str, *, remote: bool) -> StoreCalls:
    """The mode for ``choice`` (``auto``, ``loop``, ``threads`` or ``loop-first``); ``auto``
    asks the store: ``loop`` for a local one, ``loop-first`` for a remote one."""
    if choice == "auto":
        return "loop-first" if remote else "loop"
    if choice == "loop":
        return "loop"
    if choice == "threads":
        return "threads"
    if choice == "loop-first":
        return "loop-first"
    raise ValueError(f"store calls must be auto, loop, threads or loop-first, not {choice!r}")


class ServiceCalls:
    """Runs request handlers the way the store asks for; one per ASGI app."""

    def __init__(self, mode: StoreCalls, *, threads: int = THREADS) -> None:
        self.mode: StoreCalls = mode
        self._limiter = CapacityLimiter(threads)
        self._local = threading.local()
        self._loops: list[asyncio.AbstractEventLoop] = []
        self._lock = threading.Lock()
        #: Requests tried on the loop first, and those of them that went on in a thread.
        self.tried_on_loop = 0
        self.moved_to_threads = 0

    async def answer(
        self, handler: Handler, request: Request, *, body_limit: int, loop_first: bool = False
    ) -> Response:
        """``handler``'s answer to ``request``, run where the mode says; ``loop_first``: the
        handler changes nothing before its first store call that waits (waiting.py), so in
        ``loop-first`` mode it is tried on the loop first.

        Raises:
            ApiError: in ``threads`` and ``loop-first`` modes, a body over ``body_limit``
                bytes or one that ended early (as the handler itself answers them).
        """
        if self.mode == "loop":
            return await handler(request)
        body = await raw_body(request, body_limit)
        if loop_first and self.mode == "loop-first" and not request.scope.get(LOOP_TRIED):
            self.tried_on_loop += 1
            try:
                with no_waiting():
                    return await handler(_replaying(request, body))
            except WouldWait:  # a cache miss or a write: from the start, in a thread
                self.moved_to_threads += 1
        replay = _replaying(request, body)
        return await anyio.to_thread.run_sync(self._run, handler, replay, limiter=self._limiter)

    def _run(self, handler: Handler, request: Request) -> Response:
        """In a worker thread: the handler on this thread's event loop (made once a thread)."""
        loop: asyncio.AbstractEventLoop | None = getattr(self._local, "loop", None)
        if loop is None:
            loop = self._local.loop = asyncio.new_event_loop()
            with self._lock:
                self._loops.append(loop)
        return loop.run_until_complete(handler(request))

    def close(self) -> None:
        """Close the worker threads' loops (at shutdown, once no request runs)."""
        with self._lock:
            loops, self._loops = self._loops, []
        for loop in loops:
            if not loop.is_running():
                loop.close()


def _replaying(request: Request, body: bytes) -> Request:
    """A request like ``request`` whose body is ``body``, readable from any event loop."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:  # nothing more arrives: the handler never waits on the connection
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)
