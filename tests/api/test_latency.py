"""Decision latencies counted in process (api/latency.py): each in the first bucket whose
bound it does not exceed, rendered cumulative as Prometheus has them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from juncture.api.latency import BUCKETS, Latencies


def test_each_latency_counts_in_the_first_bucket_it_fits_and_renders_cumulative():
    latencies = Latencies()
    registry = CollectorRegistry()
    registry.register(latencies)
    for seconds in (0.0001, 0.0005, 0.0006, 0.02, 0.9, 1.0, 7.5):
        latencies.observe(seconds)
    text = generate_latest(registry).decode()
    expected = {"0.0005": 2, "0.001": 3, "0.002": 3, "0.005": 3, "0.01": 3, "0.025": 4,
                "0.05": 4, "0.1": 4, "0.25": 4, "1.0": 6, "+Inf": 7}  # fmt: skip
    assert set(expected) == {*map(str, BUCKETS), "+Inf"}
    for bound, count in expected.items():
        assert f'juncture_decision_seconds_bucket{{le="{bound}"}} {count:.1f}' in text, bound
    assert "juncture_decision_seconds_count 7.0" in text
    assert "juncture_decision_seconds_sum 9.4212" in text
