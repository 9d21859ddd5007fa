"""Context enrichers: the network, geo and device facts of each request, observed afresh."""

from juncture.records import Posture
from juncture.signals.enrich import Enricher, EnricherSettings, Enrichment, History, Observation
from juncture.signals.reputation import ReputationError
from juncture.signals.velocity import Located
from juncture.signals.watch import SourceStatus

__all__ = [
    "Enricher",
    "EnricherSettings",
    "Enrichment",
    "History",
    "Located",
    "Observation",
    "Posture",
    "ReputationError",
    "SourceStatus",
]
