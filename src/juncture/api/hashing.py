"""Calls that may hash a password (argon2id: about 17 ms of CPU with the password method's
defaults, more with a journey's higher parameters) run in a few worker threads, never on the
event loop, and only so many wait: past that, 429 ``auth.busy`` with `Retry-After`.

A burst of password verifications (credential stuffing) thus takes at most
``concurrency`` threads of CPU and ``concurrency + queue`` requests' memory, and every other
request of the node (decisions, health) is answered meanwhile.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from starlette.requests import Request

from juncture.api.problems import ApiError

_T = TypeVar("_T")

#: Seconds a refused caller is told to wait (a hash takes a few hundredths of one).
RETRY_AFTER = 1


class HashPool:
    """A bounded pool for the runtime calls of requests that may hash a password."""

    def __init__(self, concurrency: int, queue: int) -> None:
        self.concurrency = concurrency
        self.capacity = concurrency + queue
        self.admitted = 0  # running or waiting
        # Handlers run on the server's loop, or in worker threads (api/boundary.py).
        self._admitting = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="hash")

    async def run(self, call: Callable[[], _T]) -> _T:
        """``call()`` in a hashing thread.

        Raises:
            ApiError: 429 ``auth.busy`` (with `Retry-After`) when the pool and its queue are
                full; nothing was done.
        """
        with self._admitting:
            if self.admitted >= self.capacity:
                raise ApiError(
                    429,
                    "auth.busy",
                    "too many password verifications are under way on this node; try again",
                    retry_after=RETRY_AFTER,
                )
            self.admitted += 1
        try:
            # The request's context goes along: in durable mode the decision's commit is then
            # awaited by the request (and a failed one refuses the answer), as on the loop.
            context = contextvars.copy_context()
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, context.run, call
            )
        finally:
            with self._admitting:
                self.admitted -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def hash_pool(request: Request) -> HashPool:
    pool: HashPool = request.app.state.hash_pool
    return pool
