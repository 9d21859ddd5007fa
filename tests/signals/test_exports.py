"""The signals package's public API is small and pinned."""

from __future__ import annotations

import juncture.signals


def test_signals_exports():
    assert juncture.signals.__all__ == [
        "Enricher",
        "EnricherSettings",
        "Enrichment",
        "FactEnricher",
        "History",
        "Located",
        "Observation",
        "Posture",
        "ReputationError",
        "Request",
        "SourceStatus",
        "register_enricher",
        "unregister_enricher",
    ]
    for name in juncture.signals.__all__:
        assert getattr(juncture.signals, name) is not None
