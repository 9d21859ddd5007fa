"""The public API is small and pinned: widening it shows up in review."""

from __future__ import annotations

import re
from pathlib import Path

import juncture.engine
import juncture.policy

SRC = Path(juncture.policy.__file__).resolve().parents[1]


def test_policy_exports():
    assert juncture.policy.__all__ == [
        "Bundle",
        "BundleError",
        "Plan",
        "PolicyError",
        "check",
        "compile_plan",
        "load",
        "load_sources",
    ]


def test_engine_exports():
    assert juncture.engine.__all__ == [
        "Decision",
        "Facts",
        "FactsDocument",
        "RiskResult",
        "StepUp",
        "Trace",
        "evaluate",
    ]


def test_every_export_exists():
    for module in (juncture.policy, juncture.engine):
        for name in module.__all__:
            assert getattr(module, name) is not None


CLOCK = re.compile(
    r"datetime\.now|utcnow|date\.today|\btime\.\w+\(|^\s*(import|from)\s+(time|random|uuid)\b"
    r"|\brandom\b|\buuid\b"
)


def test_the_pure_core_calls_no_clock_and_no_randomness():
    files = sorted((SRC / "policy").glob("*.py")) + sorted((SRC / "engine").glob("*.py"))
    assert files
    offenders = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if CLOCK.search(code):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert offenders == []
