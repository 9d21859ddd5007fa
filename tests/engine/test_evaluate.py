"""evaluate(): checkpoints, the guard, gates, outcomes, journey selection, explanations."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from juncture.engine import Decision, Facts, StepUp, evaluate
from juncture.engine.evaluate import network_view, select_journey, session_view

from .helpers import NOW, build_plan, decide

METHODS = """
methods:
  password: {kind: password, aal: 1}
  email: {kind: email_code}
  totp: {kind: totp, aal: 2}
  passkey: {kind: webauthn, aal: 3}
"""


def journey(body: str, head: str = "journey: j\n") -> str:
    return head + METHODS + body


def proofs(*items: tuple[str, str]) -> dict[str, object]:
    return {"session": {"proofs": [{"method": m, "at": at} for m, at in items]}}


# -- checkpoint lookup ----------------------------------------------------------------------------

GLOBS = build_plan(
    journey(
        """
checkpoints:
  "tool:transfer_funds": [{allow: {scopes: [exact]}}]
  "tool:*": [{allow: {scopes: [tool_star]}}]
  "tool:tr*": [{allow: {scopes: [tool_tr]}}]
  "tool:x?": [{allow: {scopes: [one_char]}}]
  "*": [{deny: unknown_action}]
"""
    )
)


@pytest.mark.parametrize(
    ("action", "checkpoint", "scopes"),
    [
        ("tool:transfer_funds", "tool:transfer_funds", ("exact",)),
        ("tool:trade", "tool:tr*", ("tool_tr",)),
        ("tool:xy", "tool:x?", ("one_char",)),
        ("tool:x", "tool:*", ("tool_star",)),
        ("tool:read", "tool:*", ("tool_star",)),
    ],
)
def test_checkpoint_exact_then_most_specific_glob(action, checkpoint, scopes):
    decision = decide(GLOBS, action)
    assert decision.outcome == "allow"
    assert decision.checkpoint == checkpoint
    assert decision.scopes == scopes


def test_checkpoint_star_catches_the_rest():
    decision = decide(GLOBS, "login")
    assert (decision.outcome, decision.reason, decision.checkpoint) == (
        "deny",
        "unknown_action",
        "*",
    )


def test_no_checkpoint_denies():
    plan = build_plan(journey("checkpoints:\n  browse: [{allow: {}}]\n"))
    decision = decide(plan, "delete_account")
    assert (decision.outcome, decision.reason) == ("deny", "no_checkpoint")
    assert decision.checkpoint is None
    assert decision.journey == "j"


def test_falling_off_the_checkpoint_denies():
    plan = build_plan(
        journey(
            'checkpoints:\n  a: [{if: "signals.risk_elevated", allow: {}}, {require: {aal: 1}}]\n'
        )
    )
    decision = decide(plan, "a", proofs(("password", "-1m")))
    assert (decision.outcome, decision.reason) == ("deny", "no_rule_matched")
    assert decision.checkpoint == "a"


# -- evaluation errors ----------------------------------------------------------------------------

ERRORS = build_plan(
    journey(
        """
checkpoints:
  geo: [{if: "geo.country == 'DE'", allow: {}}, {deny: elsewhere}]
  ctx: [{if: "context.tier > 2", allow: {}}, {deny: low}]
"""
    )
)


def test_evaluation_error_denies_and_names_the_missing_fact():
    decision = decide(ERRORS, "geo")
    assert (decision.outcome, decision.reason) == ("deny", "evaluation_error")
    assert decision.missing == ("geo",)
    assert decision.explanation[-1].result == "error"
    assert "geo" in decision.explanation[-1].detail


def test_missing_field_is_named_with_its_path():
    decision = decide(ERRORS, "geo", {"geo": {"city": "Berlin"}})
    assert (decision.outcome, decision.reason) == ("deny", "evaluation_error")
    assert decision.missing == ("geo.country",)


def test_type_error_denies_without_missing():
    decision = decide(ERRORS, "ctx", {"context": {"tier": "gold"}})
    assert (decision.outcome, decision.reason) == ("deny", "evaluation_error")
    assert decision.missing == ()


def test_known_facts_decide_normally():
    assert decide(ERRORS, "geo", {"geo": {"country": "DE"}}).outcome == "allow"
    assert decide(ERRORS, "geo", {"geo": {"country": "FR"}}).reason == "elsewhere"


def test_an_unexpected_failure_is_a_deny_not_an_exception():
    # A naive `now` cannot be compared with the aware proof times: the engine must still answer.
    plan = build_plan(
        journey("checkpoints:\n  a: [{require: {any: [password], within: 1h}}, {allow: {}}]\n")
    )
    facts = Facts.from_document(proofs(("password", "-1m")), NOW)
    decision = evaluate(plan, "a", facts, NOW.replace(tzinfo=None), decision_id="d-1")
    assert (decision.outcome, decision.reason) == ("deny", "evaluation_error")
    assert decision.id == "d-1"
    assert decision.version == plan.version
    assert decision.explanation[0].result == "error"
    assert "internal error" in decision.explanation[0].detail


# -- the guard ------------------------------------------------------------------------------------


def test_guard_outcome_decides_before_the_checkpoint():
    plan = build_plan(
        journey(
            """
guard:
  - {if: "signals.credential_compromised", revoke: credential_compromised}
checkpoints:
  browse: [{allow: {}}]
"""
        )
    )
    decision = decide(plan, "browse", {"signals": {"credential_compromised": True}})
    assert (decision.outcome, decision.reason) == ("revoke", "credential_compromised")
    assert decision.checkpoint is None
    assert not decision.permitted
    # falling off the guard goes on to the checkpoint
    decision = decide(plan, "browse")
    assert (decision.outcome, decision.checkpoint) == ("allow", "browse")
    assert [t.result for t in decision.explanation] == ["false", "entered", "outcome"]


def test_guard_require_gates_every_checkpoint():
    plan = build_plan(
        journey(
            """
guard:
  - require: {any: [password, passkey]}
checkpoints:
  browse: [{allow: {}}]
  "*": [{allow: {}}]
"""
        )
    )
    for action in ("browse", "anything"):
        decision = decide(plan, action)
        assert decision.outcome == "step_up"
        assert decision.step_up.methods == ("password", "passkey")
        assert decision.checkpoint is None
    assert decide(plan, "browse", proofs(("password", "-1h"))).outcome == "allow"


def test_guard_error_denies_even_without_a_checkpoint():
    plan = build_plan(
        journey(
            "guard: [{if: \"geo.country == 'RU'\", deny: embargo}]\n"
            "checkpoints: {a: [{allow: {}}]}\n"
        )
    )
    decision = decide(plan, "zzz")
    assert (decision.outcome, decision.reason, decision.missing) == (
        "deny",
        "evaluation_error",
        ("geo",),
    )


# -- require --------------------------------------------------------------------------------------

GATES = build_plan(
    journey(
        """
checkpoints:
  any: [{require: {any: [totp, passkey]}}, {allow: {}}]
  all: [{require: {all: [password, totp]}}, {allow: {}}]
  within: [{require: {any: [totp, passkey], within: 5m}}, {allow: {}}]
  aal2: [{require: {aal: 2}}, {allow: {}}]
  aal_any: [{require: {any: [password, totp, passkey], aal: 2, within: 1h}}, {allow: {}}]
  aal_all: [{require: {all: [password, passkey], aal: 3}}, {allow: {}}]
"""
    )
)


def test_require_any_met_and_not_met():
    assert decide(GATES, "any", proofs(("totp", "-1d"))).outcome == "allow"
    decision = decide(GATES, "any", proofs(("password", "-1m")))
    assert (decision.outcome, decision.reason) == ("step_up", "step_up_required")
    assert decision.step_up == StepUp(
        methods=("totp", "passkey"),
        mode="any",
        acr_values="urn:juncture:aal2 urn:juncture:aal3",
        amr_values=("otp", "hwk"),
    )
    assert decision.step_up.max_age is None


def test_require_all_offers_only_what_is_lacking():
    decision = decide(GATES, "all", proofs(("password", "-1m")))
    assert decision.outcome == "step_up"
    assert decision.step_up.methods == ("totp",)
    assert decision.step_up.mode == "all"
    assert decision.step_up.amr_values == ("otp",)
    assert decide(GATES, "all", proofs(("password", "-1m"), ("totp", "-1m"))).outcome == "allow"


def test_require_within_ignores_stale_proofs():
    assert decide(GATES, "within", proofs(("totp", "-4m"))).outcome == "allow"
    assert decide(GATES, "within", proofs(("totp", "-5m"))).outcome == "allow"
    decision = decide(GATES, "within", proofs(("totp", "-6m")))
    assert decision.outcome == "step_up"
    assert decision.step_up.within == 300
    assert decision.step_up.max_age == 300
    assert decision.to_dict()["step_up"]["max_age"] == 300


def test_require_aal_counts_the_journeys_rating():
    decision = decide(GATES, "aal2", proofs(("password", "-1m"), ("email", "-1m")))
    assert decision.outcome == "step_up"
    # every method that reaches the level, weakest first
    assert decision.step_up.methods == ("totp", "passkey")
    assert decision.step_up.aal == 2
    assert decision.step_up.acr_values == "urn:juncture:aal2 urn:juncture:aal3"
    assert decide(GATES, "aal2", proofs(("passkey", "-30d"))).outcome == "allow"


def test_require_aal_with_methods_offers_only_those_reaching_it():
    decision = decide(GATES, "aal_any", proofs(("password", "-1m")))
    assert decision.outcome == "step_up"
    assert decision.step_up.methods == ("totp", "passkey")
    assert (decision.step_up.aal, decision.step_up.within) == (2, 3600)
    # a strong proof that is too old does not count towards the level either
    assert decide(GATES, "aal_any", proofs(("passkey", "-2h"))).outcome == "step_up"
    assert decide(GATES, "aal_any", proofs(("totp", "-2m"))).outcome == "allow"


def test_require_all_with_aal():
    decision = decide(GATES, "aal_all", proofs(("password", "-1m"), ("totp", "-1m")))
    assert decision.outcome == "step_up"
    assert decision.step_up.methods == ("passkey",)
    assert decision.step_up.acr_values == "urn:juncture:aal3"
    assert decision.step_up.mode == "all"
    both = proofs(("password", "-1m"), ("passkey", "-1m"))
    assert decide(GATES, "aal_all", both).outcome == "allow"


def test_proof_of_a_method_the_journey_does_not_know_uses_its_own_aal():
    assert decide(GATES, "aal2", proofs(("okta", "-1m"))).outcome == "step_up"
    doc = {"session": {"proofs": [{"method": "okta", "at": "-1m", "aal": 2}]}}
    assert decide(GATES, "aal2", doc).outcome == "allow"


def test_step_up_requires_reevaluation_of_the_same_checkpoint():
    plan = build_plan(
        journey(
            """
checkpoints:
  pay:
    - require: {any: [password]}
    - require: {any: [totp], within: 5m}
    - allow: {scopes: [pay]}
"""
        )
    )
    first = decide(plan, "pay")
    assert first.step_up.methods == ("password",)
    second = decide(plan, "pay", proofs(("password", "-1m")))
    assert second.step_up.methods == ("totp",)
    third = decide(plan, "pay", proofs(("password", "-1m"), ("totp", "-0s")))
    assert (third.outcome, third.scopes) == ("allow", ("pay",))


# -- outcomes -------------------------------------------------------------------------------------

OUTCOMES = build_plan(
    journey(
        """
checkpoints:
  a: [{allow: {scopes: [read, write], ttl: 1h30m, obligations: [{log: audit}, notify]}}]
  r: [{reroute: {path: /limited, scopes: [read], ttl: 10m}}]
  v: [{revoke: session_hijack}]
  d: [{deny: nope}]
  e: [{allow: {}}]
"""
    )
)


def test_allow_carries_scopes_ttl_obligations():
    decision = decide(OUTCOMES, "a")
    assert decision.outcome == "allow" and decision.permitted
    assert decision.scopes == ("read", "write")
    assert decision.ttl == 5400
    assert decision.obligations == ({"log": "audit"}, "notify")
    assert decision.step_up is None


def test_plain_allow_has_nothing_extra():
    decision = decide(OUTCOMES, "e")
    assert (decision.scopes, decision.ttl, decision.obligations) == ((), None, ())


def test_reroute_carries_path_and_scopes():
    decision = decide(OUTCOMES, "r")
    assert (decision.outcome, decision.reason, decision.path) == ("reroute", "rerouted", "/limited")
    assert decision.scopes == ("read",) and decision.ttl == 600
    assert decision.permitted


def test_revoke_and_deny():
    assert (decide(OUTCOMES, "v").outcome, decide(OUTCOMES, "v").reason) == (
        "revoke",
        "session_hijack",
    )
    decision = decide(OUTCOMES, "d")
    assert (decision.outcome, decision.reason, decision.permitted) == ("deny", "nope", False)


# -- journey selection ----------------------------------------------------------------------------

SHOP = "journey: shop\napplies_to: [shop-web]\nsubjects: [user]\ncheckpoints: {a: [{deny: shop}]}\n"
DEFAULT = "journey: default\nsubjects: [user, service]\ncheckpoints: {a: [{deny: default}]}\n"
AGENTS = "journey: agents\nsubjects: [agent]\ncheckpoints: {a: [{deny: agents}]}\n"
AGENTS2 = "journey: agents2\nsubjects: [agent]\ncheckpoints: {a: [{deny: agents2}]}\n"


def test_explicit_app_beats_default():
    plan = build_plan(SHOP, DEFAULT)
    assert decide(plan, "a", {"app": "shop-web"}).journey == "shop"
    assert decide(plan, "a", {"app": "other"}).journey == "default"
    assert decide(plan, "a").journey == "default"
    assert decide(plan, "a", {"app": "shop-web", "subject": {"type": "service"}}).journey == (
        "default"
    )


def test_no_journey_for_the_subject_type():
    plan = build_plan(SHOP, DEFAULT)
    decision = decide(plan, "a", {"subject": {"type": "agent"}})
    assert (decision.outcome, decision.reason, decision.journey) == ("deny", "no_journey", None)
    assert decision.version == plan.version


def test_ambiguous_journeys_deny():
    plan = build_plan(AGENTS, AGENTS2, DEFAULT)
    decision = decide(plan, "a", {"subject": {"type": "agent"}})
    assert (decision.outcome, decision.reason) == ("deny", "ambiguous_journey")
    assert select_journey(plan, Facts.from_document({"subject": {"type": "agent"}})) == (
        None,
        "ambiguous_journey",
    )


def test_explicit_journey_argument():
    plan = build_plan(AGENTS, AGENTS2)
    assert decide(plan, "a", {"subject": {"type": "agent"}}, journey="agents2").reason == "agents2"
    assert decide(plan, "a", journey="nope").reason == "no_journey"


# -- facts the engine derives ---------------------------------------------------------------------

NETWORKS = build_plan(
    journey(
        """
networks:
  corp: [10.0.0.0/8]
  lab: [10.1.0.0/16, "2001:db8::/32", 10.1.2.0/24]
checkpoints:
  seg: [{if: "network.segment == 'lab'", allow: {scopes: [lab]}},
        {if: "network.segment == 'corp'", allow: {scopes: [corp]}},
        {if: "network.segment == 'unknown'", deny: unknown}]
  all: [{if: "network.segments == ['lab', 'corp']", allow: {}}, {deny: other}]
  inside: [{if: "in_network(network.ip, 'corp')", allow: {}}, {deny: outside}]
"""
    )
)


@pytest.mark.parametrize(
    ("ip", "scope"),
    [("10.1.2.3", ("lab",)), ("10.2.0.1", ("corp",)), ("2001:db8::1", ("lab",))],
)
def test_network_segment_longest_prefix(ip, scope):
    assert decide(NETWORKS, "seg", {"network": {"ip": ip}}).scopes == scope


def test_network_segments_lists_every_match_longest_first():
    assert decide(NETWORKS, "all", {"network": {"ip": "10.1.0.9"}}).outcome == "allow"
    # two ranges of the same network match: it is listed once
    assert decide(NETWORKS, "all", {"network": {"ip": "10.1.2.9"}}).outcome == "allow"
    assert decide(NETWORKS, "all", {"network": {"ip": "10.9.0.9"}}).reason == "other"


@pytest.mark.parametrize("ip", ["8.8.8.8", "2001:db9::1"])
def test_network_segment_unknown(ip):
    assert decide(NETWORKS, "seg", {"network": {"ip": ip}}).reason == "unknown"


def test_unparsable_ip_is_a_missing_fact():
    decision = decide(NETWORKS, "seg", {"network": {"ip": "10.1.2.300"}})
    assert (decision.outcome, decision.reason) == ("deny", "evaluation_error")
    assert decision.missing == ("network.segment",)
    assert decide(NETWORKS, "inside", {"network": {"ip": "nope"}}).missing == ("network.ip",)


def test_segment_given_by_the_caller_is_kept():
    decision = decide(NETWORKS, "seg", {"network": {"ip": "8.8.8.8", "segment": "corp"}})
    assert decision.scopes == ("corp",)


def test_network_view_without_ip_is_unchanged():
    j = NETWORKS.journeys["j"]
    facts = Facts.from_document({"network": {}})
    assert network_view(j, facts, {}) == {}
    assert decide(NETWORKS, "seg", {"network": {}}).missing == ("network.segment",)
    assert decide(NETWORKS, "seg").missing == ("network",)


SESSION = build_plan(
    journey(
        """
checkpoints:
  aal: [{if: "session.aal >= 2", allow: {}}, {deny: weak}]
  fresh: [{if: "has(session.methods.totp) && session.methods.totp.age < duration('5m')",
           allow: {}}, {deny: stale}]
  amr: [{if: "'otp' in session.amr && 'pwd' in session.amr", allow: {}}, {deny: amr}]
  age: [{if: "session.age > duration('1h')", deny: too_old}, {allow: {}}]
  id: [{if: "session.id == 's-1'", allow: {}}, {deny: other}]
"""
    )
)


def test_session_aal_comes_from_the_journeys_method_table():
    # the proof claims aal 3, but the journey rates totp at 2 and password at 1
    doc = {"session": {"proofs": [{"method": "password", "at": "-1m", "aal": 3}]}}
    assert decide(SESSION, "aal", doc).reason == "weak"
    assert decide(SESSION, "aal", proofs(("totp", "-1h"))).outcome == "allow"
    assert decide(SESSION, "aal").reason == "weak"


def test_session_methods_map_with_age():
    assert decide(SESSION, "fresh", proofs(("totp", "-4m"))).outcome == "allow"
    assert decide(SESSION, "fresh", proofs(("totp", "-6m"))).reason == "stale"
    # the latest proof of a method wins, whatever the order
    assert decide(SESSION, "fresh", proofs(("totp", "-1m"), ("totp", "-1h"))).outcome == "allow"
    assert decide(SESSION, "fresh", proofs(("totp", "-1h"), ("totp", "-1m"))).outcome == "allow"
    assert decide(SESSION, "fresh", proofs(("password", "-1m"))).reason == "stale"


def test_session_amr():
    assert decide(SESSION, "amr", proofs(("password", "-1m"), ("totp", "-1m"))).outcome == "allow"
    assert decide(SESSION, "amr", proofs(("password", "-1m"))).reason == "amr"


def test_session_view_details():
    j = SESSION.journeys["j"]
    doc = {
        "session": {
            "id": "s-1",
            "started_at": "-2h",
            "proofs": [
                {"method": "totp", "at": "-10m"},
                {"method": "okta", "at": "-5m", "kind": "external_jwt", "aal": 2, "amr": ["mfa"]},
                {"method": "legacy", "at": "-5m"},
            ],
        }
    }
    view = session_view(j, Facts.from_document(doc, NOW), NOW)
    assert view["id"] == "s-1"
    assert view["started_at"] == NOW - timedelta(hours=2)
    assert view["age"] == timedelta(hours=2)
    assert view["aal"] == 2
    assert view["amr"] == ["mfa", "otp"]
    assert view["methods"]["totp"] == {
        "kind": "totp",
        "aal": 2,
        "at": NOW - timedelta(minutes=10),
        "amr": ["otp"],
        "age": timedelta(minutes=10),
    }
    assert view["methods"]["okta"]["kind"] == "external_jwt"
    assert view["methods"]["legacy"]["kind"] == "external"
    assert view["methods"]["legacy"]["aal"] == 0
    assert [p["method"] for p in view["proofs"]] == ["totp", "okta", "legacy"]
    bare = session_view(j, Facts.from_document({"session": {}}), NOW)
    assert "id" not in bare and "age" not in bare and bare["aal"] == 0
    assert decide(SESSION, "age", doc).reason == "too_old"
    assert decide(SESSION, "id", doc).outcome == "allow"
    assert decide(SESSION, "id").missing == ("session.id",)


def test_device_posture_age():
    plan = build_plan(
        journey(
            "checkpoints:\n  a: [{if: \"device.posture_age < duration('1h') && device.compliant\","
            " allow: {}}, {deny: posture}]\n"
        )
    )
    doc = {"device": {"compliant": True, "posture_at": "-30m"}}
    assert decide(plan, "a", doc).outcome == "allow"
    doc = {"device": {"compliant": True, "posture_at": "-2h"}}
    assert decide(plan, "a", doc).reason == "posture"
    decision = decide(plan, "a", {"device": {"compliant": True}})
    assert decision.missing == ("device.posture_age",)


SIGNALS = build_plan(
    journey(
        """
checkpoints:
  a: [{if: "signals.session_revoked", revoke: revoked}, {allow: {}}]
  b: [{if: "signals.custom_flag", deny: flagged}, {allow: {}}]
"""
    )
)


def test_signals_with_defaults_are_known_false():
    assert decide(SIGNALS, "a").outcome == "allow"
    assert decide(SIGNALS, "a", {"signals": {"session_revoked": True}}).outcome == "revoke"


def test_signals_without_default_are_missing():
    decision = decide(SIGNALS, "b")
    assert (decision.reason, decision.missing) == ("evaluation_error", ("signals.custom_flag",))
    assert decide(SIGNALS, "b", {"signals": {"custom_flag": False}}).outcome == "allow"


def test_data_documents_are_readable():
    plan = build_plan(
        journey(
            'checkpoints:\n  a: [{if: "data.users[subject.id].vip", allow: {}}, {deny: plain}]\n'
        ),
        data={"users.yaml": "alice: {vip: true}\nbob: {vip: false}\n"},
    )
    assert decide(plan, "a", {"subject": {"id": "alice"}}).outcome == "allow"
    assert decide(plan, "a", {"subject": {"id": "bob"}}).reason == "plain"
    assert decide(plan, "a", {"subject": {"id": "eve"}}).missing == ("data.users['eve']",)


# -- explanations, to_dict, determinism -----------------------------------------------------------


def test_explanation_is_ordered_with_file_line_and_results():
    plan = build_plan(
        """\
journey: j
methods: {totp: {kind: totp}}
risk:
  - {when: "signals.risk_elevated", add: 50, reason: fraud}
guard:
  - {if: "signals.account_disabled", deny: disabled}
checkpoints:
  pay:
    - use: strong
    - allow: {}
fragments:
  strong:
    - if: "risk.score >= 40"
      then: [{require: {any: [totp]}}]
"""
    )
    decision = decide(plan, "pay", {"signals": {"risk_elevated": True}})
    got = [(t.step.kind, t.step.where(), t.result) for t in decision.explanation]
    assert got == [
        ("risk", "j0.yaml:4", "true"),
        ("if", "j0.yaml:6", "false"),
        ("checkpoint", "j0.yaml:9", "entered"),
        ("use", "j0.yaml:9", "entered"),
        ("if", "j0.yaml:13", "true"),
        ("require", "j0.yaml:14", "not_met"),
    ]
    assert decision.explanation[0].step.text == "risk +50 fraud when signals.risk_elevated"
    assert decision.explanation[-1].step.text == "require any(totp)"
    decision = decide(plan, "pay", proofs(("totp", "-1m")))
    assert [t.result for t in decision.explanation] == [
        "false",
        "false",
        "entered",
        "entered",
        "false",
        "outcome",
    ]


def test_to_dict_is_json_ready_and_adds_max_age():
    decision = decide(GATES, "within", proofs(("totp", "-1h")), decision_id="dec-1")
    out = json.loads(json.dumps(decision.to_dict()))
    assert out["outcome"] == "step_up"
    assert out["id"] == "dec-1"
    assert out["step_up"] == {
        "methods": ["totp", "passkey"],
        "within": 300,
        "max_age": 300,
        "acr_values": "urn:juncture:aal2 urn:juncture:aal3",
        "amr_values": ["otp", "hwk"],
    }
    assert out["risk"] == {"score": 0, "level": "low", "reasons": []}
    assert out["explanation"][-1]["result"] == "not_met"
    assert "max_age" not in decide(GATES, "any").to_dict()["step_up"]
    assert "step_up" not in decide(GATES, "any", proofs(("totp", "-1m"))).to_dict()


def test_same_inputs_same_decision():
    doc = {"signals": {"risk_elevated": True}, **proofs(("password", "-1m"))}
    facts = Facts.from_document(doc, NOW)
    first = evaluate(GATES, "within", facts, NOW, decision_id="x")
    for _ in range(3):
        again = evaluate(GATES, "within", Facts.from_document(doc, NOW), NOW, decision_id="x")
        assert again == first
        assert again.to_dict() == first.to_dict()
    assert isinstance(first, Decision)


def test_now_is_the_callers_moment():
    facts = Facts.from_document(
        {"session": {"proofs": [{"method": "totp", "at": NOW.isoformat()}]}}
    )
    assert evaluate(GATES, "within", facts, NOW + timedelta(minutes=4)).outcome == "allow"
    later = datetime(2026, 11, 29, 10, 6, tzinfo=UTC)
    assert evaluate(GATES, "within", facts, later).outcome == "step_up"


def test_a_verified_proof_that_says_less_counts_for_less():
    # a passkey used without user verification: the journey's AAL 3 is a ceiling, not a gift
    weak = {"session": {"proofs": [{"method": "passkey", "at": "-1m", "kind": "webauthn",
                                    "aal": 1, "amr": ["swk"]}]}}  # fmt: skip
    assert decide(SESSION, "aal", weak).reason == "weak"
    assert decide(GATES, "aal2", weak).outcome == "step_up"
    strong = {"session": {"proofs": [{"method": "passkey", "at": "-1m", "kind": "webauthn",
                                      "aal": 3, "amr": ["hwk", "user"]}]}}  # fmt: skip
    assert decide(SESSION, "aal", strong).outcome == "allow"
    assert decide(GATES, "aal2", strong).outcome == "allow"


def test_a_proof_of_another_kind_under_the_same_name_proves_nothing_here():
    # another journey's `totp` that is a password: it does not answer this journey's `totp`
    other = {"session": {"proofs": [{"method": "totp", "at": "-1m", "kind": "password",
                                     "aal": 1}]}}  # fmt: skip
    assert decide(SESSION, "aal", other).reason == "weak"
    assert decide(SESSION, "fresh", other).reason == "stale"
    assert decide(GATES, "within", other).outcome == "step_up"
    same = {"session": {"proofs": [{"method": "totp", "at": "-1m", "kind": "totp"}]}}
    assert decide(SESSION, "aal", same).outcome == "allow"
    assert decide(GATES, "within", same).outcome == "allow"
