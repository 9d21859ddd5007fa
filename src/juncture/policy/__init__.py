"""The journey language: load and check bundles, compile them into plans."""

from juncture.errors import BundleError, PolicyError
from juncture.policy.check import check
from juncture.policy.compile import compile_plan
from juncture.policy.loader import load, load_sources
from juncture.policy.model import Bundle
from juncture.policy.plan import Plan

__all__ = [
    "Bundle",
    "BundleError",
    "Plan",
    "PolicyError",
    "check",
    "compile_plan",
    "load",
    "load_sources",
]
