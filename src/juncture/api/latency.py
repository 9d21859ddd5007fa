"""Decision latency as a Prometheus histogram, counted in process and rendered at scrape time.

`prometheus_client.Histogram.observe` takes a lock and walks its buckets on every decision
(about 3 µs, `bench/RESULTS.md`); here a decision adds one to the count of its bucket (found by
bisection) under a lock of our own, and `/metrics` renders the cumulative counts.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

#: The buckets' upper bounds in seconds (``le``), as the histogram had them.
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class Latencies(Collector):
    """``juncture_decision_seconds``: how long the API's decision handler took."""

    name = "juncture_decision_seconds"
    documentation = "Decision latency (API handler)"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = [0] * (len(BUCKETS) + 1)  # the last: above every bound
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        index = bisect_left(BUCKETS, seconds)  # the first bound >= seconds: `le` holds
        with self._lock:
            self._counts[index] += 1
            self._sum += seconds

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, count in zip((*map(str, BUCKETS), "+Inf"), counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets, sum_value=total)
