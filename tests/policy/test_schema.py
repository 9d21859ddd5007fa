"""The fact schema's declaration of the facts Juncture owns (I11)."""

from juncture.policy.schema import CLOSED, OWNED, SIGNAL_DEFAULTS, VARIABLES, owned


def test_owned_facts_are_facts_of_the_schema():
    assert set(OWNED) <= VARIABLES
    for variable, fields in OWNED.items():
        if fields is not None and variable in CLOSED:
            assert fields <= set(CLOSED[variable]), variable
    assert OWNED["signals"] == frozenset(SIGNAL_DEFAULTS)


def test_owned_answers_for_variables_and_fields():
    assert owned("grants") and owned("grants", "payments:transfer")
    assert owned("session", "aal") and owned("geo")
    assert owned("network", "segment") and not owned("network", "ip")
    assert not owned("network")  # the app reports the IP: the section is not owned whole
    assert owned("signals", "credential_compromised") and not owned("signals", "fraud_score")
    assert not owned("context") and not owned("context", "grants")
    assert not owned("subject", "properties")
