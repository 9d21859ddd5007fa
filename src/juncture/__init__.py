"""Juncture: journey-time orchestration for identity and access decisions."""

__version__ = "0.1.0"
