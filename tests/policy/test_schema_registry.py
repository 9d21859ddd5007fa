"""The fact schema is one table; enrichers add their variables to it (policy/schema.py)."""

from __future__ import annotations

import pytest

from juncture.engine import Facts
from juncture.engine.facts import FactsDocument, document_type
from juncture.errors import FactsError
from juncture.policy import check, compile_plan, load_sources, schema
from juncture.policy.schema import Field, Variable

FRAUD = Variable(
    name="fraud",
    fields={
        "score": Field(type="int", written=int, owned=True),
        "model": Field(type="string", written=str),
        "seen": Field(type=None),  # computed, never written
    },
)
JOURNEY = """
journey: j
checkpoints:
  login:
    - if: fraud.score >= 50
      deny: fraud
    - allow: {}
"""


def test_the_derived_tables_follow_the_table() -> None:
    assert schema.CLOSED["device"]["posture_age"] == "duration"
    assert "posture_at" not in schema.CLOSED["device"]  # written, read as posture_age
    assert schema.OWNED["geo"] is None and schema.owned("network", "labels")
    assert not schema.owned("network", "ip") and not schema.owned("subject")
    assert schema.OWNED["signals"] == frozenset(schema.SIGNAL_DEFAULTS)
    assert "now" in schema.VARIABLES and "data" in schema.VARIABLES
    assert len(schema.VARIABLES) == len(list(schema.VARIABLES))
    assert schema.field_type("geo", "lat") == "double" and schema.field_type("data", "x") is None
    assert schema.registered() == ()


def test_an_enricher_variable_joins_the_schema_and_the_facts_document() -> None:
    assert schema.register_variable(FRAUD) is FRAUD
    try:
        assert schema.register_variable(FRAUD) is FRAUD  # again: a no-op
        assert schema.registered() == (FRAUD,)
        assert "fraud" in schema.VARIABLES and schema.CLOSED["fraud"]["score"] == "int"
        assert schema.owned("fraud", "score") and not schema.owned("fraud", "model")
        plan = compile_plan(load_sources({"j.yaml": JOURNEY.encode()}))
        assert not check(load_sources({"j.yaml": JOURNEY.encode()}))
        assert document_type() is document_type()  # built once per set of variables
        assert "fraud" in document_type().__struct_fields__
        assert "fraud" not in FactsDocument.__struct_fields__
        facts = Facts.from_document({"fraud": {"score": 70, "model": "m1"}})
        assert facts.base["fraud"] == {"score": 70, "model": "m1"}
        assert "fraud" not in Facts.from_document({}).base
        with pytest.raises(FactsError):
            Facts.from_document({"fraud": {"seen": True}})  # not a written field
        assert plan.journeys["j"].reads >= {"fraud"}
    finally:
        schema.unregister_variable("fraud")
    schema.unregister_variable("geo")  # a built-in variable stays
    schema.unregister_variable("nothing")
    assert "fraud" not in schema.VARIABLES and "geo" in schema.CLOSED
    with pytest.raises(FactsError):
        Facts.from_document({"fraud": {"score": 70}})


@pytest.mark.parametrize(
    "variable",
    [
        Variable(name="geo", fields={"x": Field(type="int", written=int)}),
        Variable(name="extra", closed=False),
        Variable(name="now"),
    ],
)
def test_a_variable_is_new_and_closed(variable: Variable) -> None:
    with pytest.raises(ValueError, match="fact variable"):
        schema.register_variable(variable)
