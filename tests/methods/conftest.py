"""Shared helpers for the method tests: a fixed clock, an environment, a builder."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from juncture.errors import Location
from juncture.methods import Environment, build
from juncture.methods.secretbox import SecretBox
from juncture.policy.kinds import default_aal
from juncture.policy.model import Method as Declaration

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))


def make(
    kind: str,
    env: Environment | None = None,
    *,
    name: str | None = None,
    aal: int | None = None,
    **options: Any,
) -> Any:
    """Configure a method as a journey's `methods:` entry would."""
    declaration = Declaration(
        name=name or kind,
        kind=kind,
        aal=default_aal(kind) if aal is None else aal,
        options=options,
        location=Location(),
    )
    return build(declaration, env or Environment())


@pytest.fixture
def box() -> SecretBox:
    return SecretBox({"a": KEY_A}, "a")


@pytest.fixture
def env(box: SecretBox) -> Environment:
    return Environment(secretbox=box, code_key=bytes(range(100, 132)))
