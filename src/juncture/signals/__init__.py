"""Context enrichers: the facts of each request, observed afresh.

The built-in enrichers give the network, geo and device facts; a plug-in adds its own with
`register_enricher` (`juncture.signals.enrichers` says what an enricher declares).
"""

from juncture.records import Posture
from juncture.signals.enrich import Enricher, EnricherSettings, Enrichment
from juncture.signals.enrichers import (
    FactEnricher,
    History,
    Observation,
    Request,
    register_enricher,
    unregister_enricher,
)
from juncture.signals.reputation import ReputationError
from juncture.signals.velocity import Located
from juncture.signals.watch import SourceStatus

__all__ = [
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
