"""The circuit breaker's states, on a clock the test moves."""

from __future__ import annotations

import pytest

from juncture.sdk import CircuitBreaker, CircuitOpen


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_it_opens_after_the_threshold_and_lets_one_probe_through_after_the_cooldown():
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown=10, clock=clock)
    for _ in range(2):
        breaker.before()
        breaker.failure()
    breaker.before()
    breaker.success()  # a success in between: the count starts again
    for _ in range(3):
        assert breaker.state == "closed"
        breaker.before()
        breaker.failure()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.before()
    clock.now += 9.9
    with pytest.raises(CircuitOpen):
        breaker.before()
    clock.now += 0.1
    assert breaker.state == "half_open"
    breaker.before()  # the probe
    with pytest.raises(CircuitOpen):
        breaker.before()  # only one at a time
    breaker.failure()  # the probe failed: open again, a new cool-down
    assert breaker.state == "open"
    clock.now += 10
    breaker.before()
    breaker.success()
    assert breaker.state == "closed"
    breaker.before()
    breaker.before()  # closed: everyone goes through
