"""A circuit breaker, so that a Juncture that is down does not stall every request.

Closed: calls go through; ``threshold`` failures in a row open it. Open: calls fail at once
(`CircuitOpen`) for ``cooldown`` seconds. Then half-open: one call (the probe) goes through,
the others still fail at once; the probe's success closes it, its failure opens it again.
Safe to share between threads and between a sync and an async client."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from juncture.sdk.errors import CircuitOpen

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1 or cooldown < 0:
            raise ValueError("threshold must be at least 1 and cooldown not negative")
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> State:
        with self._lock:
            return self._state()

    def _state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._probing or self._clock() - self._opened_at >= self.cooldown:
            return "half_open"
        return "open"

    def before(self) -> None:
        """Before a call: raise `CircuitOpen` unless it may go through."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return
            if state == "half_open" and not self._probing:
                self._probing = True  # this call is the probe
                return
            raise CircuitOpen("Juncture failed repeatedly; not called during the cool-down")

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._probing = False

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._probing or self._failures >= self.threshold:
                self._opened_at = self._clock()
                self._probing = False
