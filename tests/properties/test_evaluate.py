"""Properties of evaluate(): it never raises, errors deny, and it fails closed."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from juncture.engine import Facts, evaluate
from juncture.errors import FactsError
from juncture.policy import compile_plan, load_sources

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PLAN = compile_plan(
    load_sources(
        {
            "j.yaml": b"""\
journey: j
methods: {password: {kind: password}, totp: {kind: totp}, passkey: {kind: webauthn}}
networks: {corp: [10.0.0.0/8, "2001:db8::/32"]}
risk:
  - {when: "network.segment == 'unknown'", add: 30, reason: unfamiliar_network}
  - {when: "geo.speed_kmh > 900", add: 60, reason: impossible_travel}
  - {when: "signals.risk_elevated", add: 70, reason: fraud}
guard:
  - {if: "signals.credential_compromised", revoke: compromised}
  - {if: "context.blocked", deny: blocked}
checkpoints:
  strict:
    - if: "geo.country == 'DE' && device.managed"
      allow: {}
    - deny: untrusted
  either:
    - if: "geo.country == 'DE' || device.managed"
      allow: {}
    - deny: untrusted
  gated:
    - {if: "risk.score >= 70", deny: risky}
    - require: {any: [totp, passkey], within: 10m}
    - if: "network.segment == 'corp' && session.aal >= 2"
      allow: {}
    - deny: outside
  "*": [{deny: unknown}]
"""
        }
    )
)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=5)
)
junk = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
times = st.sampled_from(["-1m", "-9m", "-11m", "-2h", "+1m", "2026-11-29T09:55:00Z", "junk"])


def maybe(strategy):
    return st.one_of(strategy, junk)


def optional(mapping):
    return st.fixed_dictionaries({}, optional=mapping)


facts_documents = optional(
    {
        "app": maybe(st.sampled_from(["web", "other"])),
        "subject": maybe(optional({"type": st.sampled_from(["user", "agent", "x"])})),
        "session": maybe(
            optional(
                {
                    "proofs": st.lists(
                        optional(
                            {
                                "method": st.sampled_from(["password", "totp", "passkey", "x"]),
                                "at": times,
                                "aal": st.integers(0, 3),
                            }
                        ),
                        max_size=3,
                    )
                }
            )
        ),
        "network": maybe(
            optional(
                {
                    "ip": st.sampled_from(
                        ["10.1.2.3", "8.8.8.8", "2001:db8::1", "::1", "300.1.1.1", "", "x"]
                    ),
                    "segment": st.sampled_from(["corp", "unknown", "lab"]),
                }
            )
        ),
        "geo": maybe(
            optional(
                {
                    "country": st.sampled_from(["DE", "FR"]),
                    "speed_kmh": st.floats(0, 2000),
                }
            )
        ),
        "device": maybe(optional({"managed": st.booleans(), "posture_at": times})),
        "context": maybe(optional({"blocked": maybe(st.booleans())})),
        "signals": maybe(
            st.dictionaries(
                st.sampled_from(["credential_compromised", "risk_elevated", "other"]),
                maybe(st.booleans()),
                max_size=3,
            )
        ),
    }
)
actions = st.sampled_from(["strict", "either", "gated", "other"])


def decide(document, action):
    try:
        facts = Facts.from_document(document, NOW)
    except FactsError:
        return None
    return evaluate(PLAN, action, facts, NOW)


@SETTINGS
@given(document=st.one_of(facts_documents, junk), action=actions)
def test_random_facts_never_make_evaluate_raise(document, action):
    decision = decide(document, action)
    if decision is not None:
        assert decision.outcome in ("allow", "deny", "step_up", "reroute", "revoke")
        assert decision.version == PLAN.version


@SETTINGS
@given(document=facts_documents, action=actions)
def test_an_error_in_the_guard_or_checkpoint_is_a_deny(document, action):
    decision = decide(document, action)
    if decision is None:
        return
    errors = [t for t in decision.explanation if t.result == "error" and t.step.kind != "risk"]
    if errors:
        assert (decision.outcome, decision.reason) == ("deny", "evaluation_error")
        assert decision.explanation[-1].result == "error"


def _value(document, *path):
    for key in path:
        if not isinstance(document, dict) or key not in document:
            return None
        document = document[key]
    return document


@SETTINGS
@given(document=facts_documents, action=actions)
def test_never_allow_when_a_needed_fact_was_missing(document, action):
    decision = decide(document, action)
    if decision is None or decision.outcome != "allow":
        return
    country = _value(document, "geo", "country")
    managed = _value(document, "device", "managed")
    if action == "strict":
        assert country == "DE" and managed is True
    elif action == "either":
        assert country == "DE" or managed is True
    elif action == "gated":
        assert decision.step_up is None
        assert any(t.step.kind == "require" and t.result == "met" for t in decision.explanation)
        assert _value(document, "network") is not None
    blocked = _value(document, "context", "blocked")
    assert blocked is False
    compromised = _value(document, "signals", "credential_compromised")
    assert compromised in (None, False)


@SETTINGS
@given(document=facts_documents, action=actions)
def test_same_inputs_same_decision(document, action):
    assert decide(document, action) == decide(document, action)
