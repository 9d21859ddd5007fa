"""One test per attack pattern: hostile journey files and facts must fail closed."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest

from juncture.engine import Facts, evaluate
from juncture.errors import BundleError, FactsError
from juncture.policy import compile_plan, load_sources

NOW = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def plan_of(text: str):
    return compile_plan(load_sources({"j.yaml": textwrap.dedent(text).encode()}))


def load_codes(content: bytes) -> list[str]:
    with pytest.raises(BundleError) as info:
        load_sources({"j.yaml": content})
    return [e.code for e in info.value.errors]


def decide(plan, action, document):
    return evaluate(plan, action, Facts.from_document(document, NOW), NOW)


def test_yaml_billion_laughs_rejected():
    bomb = b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    for i in range(1, 9):
        bomb += (
            f"{chr(97 + i)}: &{chr(97 + i)} [*{chr(96 + i)}".encode()
            + (f",*{chr(96 + i)}" * 8).encode()
            + b"]\n"
        )
    assert load_codes(bomb) == ["policy.yaml.alias"]


def test_deep_nesting_rejected():
    assert load_codes(b"journey: " + b"[" * 100 + b"]" * 100 + b"\n") == ["policy.yaml.too_deep"]
    nested_maps = b"".join(b"  " * i + b"k:\n" for i in range(100))
    assert load_codes(nested_maps) == ["policy.yaml.too_deep"]
    # far deeper than any stack: refused (libyaml's own limit may speak first), never a crash
    assert load_codes(b"journey: " + b"[" * 100_000 + b"]" * 100_000 + b"\n") in (
        ["policy.yaml.too_deep"],
        ["policy.yaml.syntax"],
    )
    deep_json = b"[" * 100 + b"]" * 100
    with pytest.raises(BundleError) as info:
        load_sources({"j.yaml": b"journey: j\n", "data/d.json": deep_json})
    assert [e.code for e in info.value.errors] == ["policy.yaml.too_deep"]


def test_huge_file_rejected():
    assert load_codes(b"journey: j\n# " + b"x" * (2 << 20) + b"\n") == ["policy.file.too_large"]


SENSITIVE = plan_of(
    """
    journey: j
    checkpoints:
      geo: [{if: "geo.country == 'DE'", allow: {}}, {deny: elsewhere}]
      not_geo: [{if: "!(geo.country in ['RU', 'KP'])", allow: {}}, {deny: embargo}]
      net: [{if: "network.segment != 'unknown'", allow: {}}, {deny: unknown}]
      flag: [{if: "context.verified", allow: {}}, {deny: unverified}]
      flag_eq: [{if: "context.verified == true", allow: {}}, {deny: unverified}]
      level: [{if: "context.level >= 2", allow: {}}, {deny: low}]
      either: [{if: "geo.country == 'DE' || context.verified", allow: {}}, {deny: no}]
      neither: [{if: "!(geo.country == 'RU' || context.blocked)", allow: {}}, {deny: no}]
      both: [{if: "context.blocked && geo.country == 'RU'", deny: x}, {allow: {}}]
      revoked: [{if: "signals.session_revoked", revoke: revoked}, {allow: {}}]
      custom: [{if: "!signals.vendor_alert", allow: {}}, {deny: alert}]
    """
)


def test_missing_geo_denies():
    for action in ("geo", "not_geo"):
        decision = decide(SENSITIVE, action, {})
        assert (decision.outcome, decision.reason) == ("deny", "evaluation_error")
        assert decision.missing == ("geo",)


def test_unparsable_ip_is_missing_not_default():
    for ip in ("10.0.0.999", "", "::ffff::1", "localhost"):
        decision = decide(SENSITIVE, "net", {"network": {"ip": ip}})
        assert (decision.outcome, decision.missing) == ("deny", ("network.segment",))


@pytest.mark.parametrize("value", ["true", 1, 1.0, [True], {"a": True}, None])
def test_type_confusion_bool_vs_int_denies(value):
    for action in ("flag", "flag_eq"):
        assert decide(SENSITIVE, action, {"context": {"verified": value}}).outcome == "deny"
    assert decide(SENSITIVE, "flag", {"context": {"verified": True}}).outcome == "allow"


def test_type_confusion_bool_for_number_denies():
    for value in (True, "3", None):
        assert decide(SENSITIVE, "level", {"context": {"level": value}}).outcome == "deny"
    assert decide(SENSITIVE, "level", {"context": {"level": 3}}).outcome == "allow"


def test_type_confusion_in_typed_facts_is_rejected():
    for device in ({"managed": "true"}, {"managed": 1}, {"compliant": "yes"}):
        with pytest.raises(FactsError):
            Facts.from_document({"device": device})


def test_error_in_or_does_not_allow_when_the_other_side_is_false():
    decision = decide(SENSITIVE, "either", {"context": {"verified": False}})
    assert (decision.outcome, decision.reason) == ("deny", "evaluation_error")
    # a side that is known to be true decides, as CEL says
    assert decide(SENSITIVE, "either", {"context": {"verified": True}}).outcome == "allow"


def test_error_in_negated_or_does_not_allow():
    decision = decide(SENSITIVE, "neither", {"context": {"blocked": False}})
    assert (decision.outcome, decision.reason) == ("deny", "evaluation_error")
    assert decide(SENSITIVE, "neither", {"context": {"blocked": True}}).outcome == "deny"


def test_error_in_and_guarding_a_deny_does_not_allow():
    decision = decide(SENSITIVE, "both", {"context": {"blocked": True}})
    assert (decision.outcome, decision.reason) == ("deny", "evaluation_error")
    assert decide(SENSITIVE, "both", {"context": {"blocked": False}}).outcome == "allow"


def test_signal_default_false_known():
    assert decide(SENSITIVE, "revoked", {}).outcome == "allow"
    assert decide(SENSITIVE, "revoked", {"signals": {"session_revoked": True}}).outcome == "revoke"
    # a signal with a wrong type is not treated as false
    bad = decide(SENSITIVE, "revoked", {"signals": {"session_revoked": "false"}})
    assert (bad.outcome, bad.reason) == ("deny", "evaluation_error")
    # a signal without a default is missing until an event says otherwise
    assert decide(SENSITIVE, "custom", {}).missing == ("signals.vendor_alert",)


def test_forged_proof_aal_does_not_raise_a_known_methods_level():
    plan = plan_of(
        """
        journey: j
        methods: {password: {kind: password}, passkey: {kind: webauthn}}
        checkpoints: {a: [{require: {aal: 3}}, {allow: {}}]}
        """
    )
    doc = {"session": {"proofs": [{"method": "password", "at": "-1m", "aal": 3}]}}
    assert decide(plan, "a", doc).outcome == "step_up"
