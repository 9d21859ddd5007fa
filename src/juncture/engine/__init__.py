"""The decision engine: pure evaluation of a compiled plan against facts."""

from juncture.engine.decision import Decision, RiskResult, StepUp, Trace
from juncture.engine.evaluate import evaluate
from juncture.engine.facts import Facts, FactsDocument

__all__ = ["Decision", "Facts", "FactsDocument", "RiskResult", "StepUp", "Trace", "evaluate"]
