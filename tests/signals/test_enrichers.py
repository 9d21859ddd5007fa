"""The enricher protocol: plug-in enrichers run after the built-in ones and add their facts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from juncture.engine import Facts
from juncture.policy import schema
from juncture.policy.schema import Field, Variable
from juncture.signals import (
    Enricher,
    EnricherSettings,
    Observation,
    Request,
    register_enricher,
    unregister_enricher,
)
from juncture.signals.enrichers import registered

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


class Hops:
    """Reads what the built-in enrichers found before it."""

    provides = Variable(
        name="hops",
        owned=True,
        fields={"count": Field(type="int", written=int), "ip": Field(type="string", written=str)},
    )

    def enrich(self, request: Request) -> Mapping[str, Any]:
        if request.ip_text is None:
            return {}
        return {"count": 3, "ip": request.facts["network"]["ip"]}


@pytest.fixture
def hops() -> Iterator[Hops]:
    made = Hops()
    register_enricher(made)
    try:
        yield made
    finally:
        unregister_enricher(made)


def test_a_registered_enricher_adds_its_section(hops: Hops) -> None:
    assert registered() == (hops,) and "hops" in schema.CLOSED
    enricher = Enricher(EnricherSettings())
    seen = enricher.enrich(Observation(at=NOW, reported_ip="81.0.0.1"))
    assert seen.extra == {"hops": {"count": 3, "ip": "81.0.0.1"}}
    assert Facts.from_document({"hops": seen.extra["hops"]}).base["hops"]["count"] == 3
    assert enricher.enrich(Observation(at=NOW)).extra == {}  # nothing observed: absent


def test_unregistering_forgets_the_variable() -> None:
    made = Hops()
    register_enricher(made)
    unregister_enricher(made)
    unregister_enricher(made)  # twice: nothing more to forget
    assert registered() == () and "hops" not in schema.VARIABLES


@pytest.mark.parametrize(
    "fields",
    [
        {"count": Field(type="int")},  # computed only: a facts document could not carry it
        {"count": Field(type="int", written=int)},  # not owned: an app could set it
    ],
)
def test_an_enricher_fields_are_written_and_owned(fields: dict[str, Field]) -> None:
    class Bad:
        provides = Variable(name="bad", fields=fields)

        def enrich(self, request: Request) -> Mapping[str, Any]:
            return {}

    with pytest.raises(ValueError, match="must be written and owned"):
        register_enricher(Bad())
    assert "bad" not in schema.VARIABLES
