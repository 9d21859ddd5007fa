"""The AuthZEN wire layer: decoding, defaults, semantics, facts, responses, metadata."""

from __future__ import annotations

import json
from typing import Any, Literal

import msgspec
import pytest

from juncture.api import authzen
from juncture.engine import Decision, Facts, StepUp

ALICE = {"type": "user", "id": "alice"}
READ = {"name": "read"}
DOC = {"type": "doc", "id": "d1"}


def _body(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_unknown_members_are_ignored_at_every_level() -> None:
    request = authzen.decode_evaluation(
        _body(
            {
                "subject": {**ALICE, "extra": 1},
                "action": {**READ, "x": [1]},
                "resource": DOC,
                "future": {"nested": True},
            }
        )
    )
    assert request.subject == authzen.Subject(type="user", id="alice")
    assert request.context is None


@pytest.mark.parametrize(
    ("value", "path"),
    [
        (
            {"subject": {**ALICE, "properties": []}, "action": READ, "resource": DOC},
            "$.subject.properties",
        ),
        ({"subject": ALICE, "action": READ, "resource": DOC, "context": "x"}, "$.context"),
        ({"subject": ALICE, "action": READ, "resource": {"type": 1, "id": "d"}}, "$.resource.type"),
        ([], "$"),
    ],
)
def test_wrong_types_are_request_invalid_with_a_path(value: Any, path: str) -> None:
    with pytest.raises(authzen.AuthZenError) as raised:
        authzen.decode_evaluation(_body(value))
    assert (raised.value.code, raised.value.path) == ("request.invalid", path)
    assert path in str(raised.value)


def test_merge_defaults_replaces_entities_whole_but_keeps_required_members() -> None:
    defaults = {
        "subject": {**ALICE, "properties": {"a": 1}},
        "action": READ,
        "resource": {"type": "doc", "properties": {"x": 1}},
        "context": {"time": "t0", "keep": True},
    }
    item = {"resource": {"id": "d2"}, "subject": {"id": "bob"}, "context": {"time": "t1"}}
    merged = authzen.merge_defaults(defaults, item)
    assert merged.resource == authzen.Resource(type="doc", id="d2")  # properties not merged
    assert merged.subject == authzen.Subject(type="user", id="bob")
    assert merged.action == authzen.Action(name="read")
    assert merged.context == {"time": "t1"}
    assert authzen.merge_defaults(
        defaults, {"resource": {"id": "d3"}, "context": None}
    ).context == {
        "time": "t0",
        "keep": True,
    }
    with pytest.raises(authzen.AuthZenError) as raised:
        authzen.merge_defaults({"subject": ALICE}, {"action": READ}, path="$.evaluations[0]")
    assert raised.value.path == "$.evaluations[0].resource"


def _batch(semantic: str | None, count: int = 3) -> authzen.EvaluationsRequest:
    body: dict[str, Any] = {
        "subject": ALICE,
        "action": READ,
        "evaluations": [{"resource": {"type": "doc", "id": str(i)}} for i in range(count)],
    }
    if semantic is not None:
        body["options"] = {"evaluations_semantic": semantic, "other": 1}
    return authzen.decode_evaluations(_body(body))


def _decide(answers: dict[str, bool]) -> Any:
    seen: list[str] = []

    def decide(request: authzen.EvaluationRequest) -> authzen.EvaluationResponse:
        seen.append(request.resource.id)
        return authzen.EvaluationResponse(decision=answers[request.resource.id])

    decide.seen = seen  # type: ignore[attr-defined]
    return decide


@pytest.mark.parametrize(
    ("semantic", "expected"),
    [
        (None, [True, False, True]),
        ("execute_all", [True, False, True]),
        ("deny_on_first_deny", [True, False]),
        ("permit_on_first_permit", [True]),
    ],
)
def test_semantics(semantic: str | None, expected: list[bool]) -> None:
    decide = _decide({"0": True, "1": False, "2": True})
    response = authzen.run_evaluations(_batch(semantic), decide)
    assert [e.decision for e in response.evaluations or []] == expected
    assert len(decide.seen) == len(expected)  # short-circuited items are not evaluated
    assert response.decision is None


def test_a_malformed_item_is_false_and_a_deny_for_deny_on_first_deny() -> None:
    request = authzen.decode_evaluations(
        _body(
            {
                "subject": ALICE,
                "action": READ,
                "options": {"evaluations_semantic": "deny_on_first_deny"},
                "evaluations": ["x", {"resource": DOC}],
            }
        )
    )
    response = authzen.run_evaluations(request, _decide({"d1": True}))
    (only,) = response.evaluations or []
    assert only.decision is False
    assert only.context and only.context["error"]["path"] == "$.evaluations[0]"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (
            {"options": {"evaluations_semantic": "any"}, "evaluations": [{}]},
            "$.options.evaluations_semantic",
        ),
        ({"evaluations": {}}, "$.evaluations"),
        ({"subject": "alice", "evaluations": [{}]}, "$.subject"),
        ({"subject": ALICE, "action": READ}, "$.resource"),  # no items: a single evaluation
    ],
)
def test_whole_batch_errors(body: Any, path: str) -> None:
    with pytest.raises(authzen.AuthZenError) as raised:
        authzen.decode_evaluations(_body(body))
    assert (raised.value.code, raised.value.path) == ("request.invalid", path)


S1 = "s_" + "0" * 12 + "a" * 20
S2 = "s_" + "0" * 12 + "b" * 20


@pytest.mark.parametrize(
    ("context", "properties", "path"),
    [
        ({"session_id": ""}, None, "$.context.session_id"),
        ({"session_id": 7}, None, "$.context.session_id"),
        ({"session_id": [S1]}, None, "$.context.session_id"),
        ({"session_id": {"id": S1}}, None, "$.context.session_id"),
        ({"session_id": None}, None, "$.context.session_id"),
        ({"session_id": S1.upper()}, None, "$.context.session_id"),
        ({"session_id": S1 + "0"}, None, "$.context.session_id"),
        ({"session_id": "ch" + S1[1:]}, None, "$.context.session_id"),
        (None, {"session_id": True}, "$.subject.properties.session_id"),
        ({"session_id": S1}, {"session_id": S2}, "$.subject.properties.session_id"),
    ],
)
def test_a_malformed_session_handle_is_refused_never_ignored(context, properties, path) -> None:
    """A request that names a session is bound to it or refused: never decided sessionless."""
    request = authzen.decode_evaluation(
        _body(
            {
                "subject": {**ALICE, **({"properties": properties} if properties else {})},
                "action": READ,
                "resource": DOC,
                **({"context": context} if context is not None else {}),
            }
        )
    )
    with pytest.raises(authzen.AuthZenError) as raised:
        authzen.session_id_of(request)
    assert (raised.value.code, raised.value.path) == ("request.invalid", path)


def test_to_facts_lifts_well_typed_context_and_decodes_as_facts() -> None:
    request = authzen.decode_evaluation(
        _body(
            {
                "subject": {**ALICE, "properties": {"device_id": "lt-1", "session_id": S1}},
                "action": {"name": "read", "properties": {"m": "GET"}},
                "resource": DOC,
                "context": {
                    "ip": "10.0.0.1",
                    "geo": {"country": "DE", "lat": 52.5},
                    "device": {"managed": "yes"},
                    "session_id": S1,
                },
            }
        )
    )
    facts = authzen.to_facts(request, app="shop")
    assert facts["app"] == "shop"
    assert facts["network"] == {"ip": "10.0.0.1"}
    assert "geo" not in facts  # observed from the IP, never taken from the caller
    assert facts["context"]["geo"] == {"country": "DE", "lat": 52.5}
    assert facts["device"] == {"id": "lt-1"}  # context.device is ill-typed: not lifted
    assert facts["action"] == {"name": "read", "properties": {"m": "GET"}}
    assert facts["resource"] == {"type": "doc", "id": "d1", "properties": {}}
    Facts.from_document(facts)  # a valid facts document
    assert authzen.session_id_of(request) == S1
    plain = authzen.decode_evaluation(
        _body({"subject": ALICE, "action": READ, "resource": DOC, "context": {"ip": "nope"}})
    )
    facts = authzen.to_facts(plain, app=None)
    assert "app" not in facts and "device" not in facts
    # Reported as given: the observation turns an address that does not parse into a missing
    # fact (never the session's remembered IP, never a default).
    assert facts["network"] == {"ip": "nope"}
    assert "ip" not in Facts.from_document(facts).base["network"]
    assert authzen.session_id_of(plain) is None


STEP_UP = StepUp(
    methods=("totp", "passkey"),
    within=300,
    aal=2,
    acr_values="urn:juncture:aal2 urn:juncture:aal3",
    amr_values=("otp", "hwk"),
)


def test_to_response_for_each_outcome() -> None:
    base = {"id": "d-1", "version": "sha256:ab"}
    allow = authzen.to_response(
        Decision(outcome="allow", scopes=("a",), ttl=60, id="d-1", version="sha256:ab"),
        challenge_id=None,
        www_authenticate=None,
    )
    assert allow.decision is True
    assert allow.context == {"outcome": "allow", **base, "scopes": ["a"], "ttl": 60}
    reroute = authzen.to_response(
        Decision(
            outcome="reroute",
            reason="rerouted",
            path="/lite",
            scopes=("r",),
            id="d-1",
            version="sha256:ab",
        ),
        challenge_id=None,
        www_authenticate=None,
    )
    assert reroute.decision is False  # true only for allow: a PEP reading it alone refuses
    assert reroute.context is not None
    assert (reroute.context["outcome"], reroute.context["path"]) == ("reroute", "/lite")
    assert reroute.context["scopes"] == ["r"]
    outcomes: tuple[Literal["deny", "revoke"], ...] = ("deny", "revoke")
    for outcome in outcomes:
        answer = authzen.to_response(
            Decision(outcome=outcome, reason="nope", scopes=("x",), id="d-1", version="sha256:ab"),
            challenge_id=None,
            www_authenticate=None,
        )
        assert answer.decision is False
        assert answer.context == {"outcome": outcome, "reason": "nope", **base}
    step = authzen.to_response(
        Decision(
            outcome="step_up",
            reason="step_up_required",
            step_up=STEP_UP,
            id="d-1",
            version="sha256:ab",
        ),
        challenge_id="ch_1",
        www_authenticate=None,
    )
    assert step.decision is False
    assert step.context == {
        "outcome": "step_up",
        "reason": "step_up_required",
        **base,
        "challenge_id": "ch_1",
        "methods": ["totp", "passkey"],
        "acr_values": "urn:juncture:aal2 urn:juncture:aal3",
        "amr_values": "otp hwk",
        "max_age": 300,
        "www_authenticate": authzen.www_authenticate(STEP_UP),
    }
    given = authzen.to_response(
        Decision(outcome="step_up", step_up=STEP_UP), challenge_id=None, www_authenticate="X"
    )
    assert given.context and given.context["www_authenticate"] == "X"
    assert "challenge_id" not in given.context
    assert json.loads(msgspec.json.encode(given))["decision"] is False


def test_www_authenticate_is_rfc_9470_and_quotes() -> None:
    assert authzen.www_authenticate(STEP_UP) == (
        'Bearer error="insufficient_user_authentication", '
        'error_description="stronger or fresher authentication is required", '
        'acr_values="urn:juncture:aal2 urn:juncture:aal3", max_age="300"'
    )
    bare = StepUp(methods=("x",))
    assert authzen.www_authenticate(bare, 'say "hi" \\ now\n') == (
        'Bearer error="insufficient_user_authentication", error_description="say \\"hi\\" \\\\ now"'
    )


def test_metadata() -> None:
    assert authzen.metadata("https://pdp.example.com/tenant1/") == {
        "policy_decision_point": "https://pdp.example.com/tenant1",
        "access_evaluation_endpoint": "https://pdp.example.com/tenant1/access/v1/evaluation",
        "access_evaluations_endpoint": "https://pdp.example.com/tenant1/access/v1/evaluations",
        "search_subject_endpoint": "https://pdp.example.com/tenant1/access/v1/search/subject",
        "search_resource_endpoint": "https://pdp.example.com/tenant1/access/v1/search/resource",
        "search_action_endpoint": "https://pdp.example.com/tenant1/access/v1/search/action",
    }


def test_search_tokens_are_bound_to_their_search() -> None:
    subjects = [authzen.Subject(type="user", id=str(i)) for i in range(5)]
    body = {"subject": {"type": "user"}, "action": READ, "resource": DOC, "page": {"limit": 2}}
    request = authzen.decode_subject_search(_body(body))

    def allow_all(_: authzen.EvaluationRequest) -> authzen.EvaluationResponse:
        return authzen.EvaluationResponse(decision=True)

    first = authzen.search_subjects(request, subjects, allow_all)
    assert [r.id for r in first.results] == ["0", "1"]
    assert first.page and first.page["count"] == 2
    other = {**body, "action": {"name": "write"}, "page": {"token": first.page["next_token"]}}
    with pytest.raises(authzen.AuthZenError) as raised:
        authzen.search_subjects(authzen.decode_subject_search(_body(other)), subjects, allow_all)
    assert raised.value.path == "$.page.token"
    forged = {**body, "page": {"token": "not-a-token"}}
    with pytest.raises(authzen.AuthZenError):
        authzen.search_subjects(authzen.decode_subject_search(_body(forged)), subjects, allow_all)


def test_catalog_reads_the_entities_document_and_skips_bad_items() -> None:
    found = authzen.catalog(
        {"entities": {"subjects": [ALICE, {"id": "x"}], "resources": [DOC], "actions": [READ, 1]}}
    )
    assert found.subjects == (authzen.Subject(type="user", id="alice"),)
    assert found.resources == (authzen.Resource(type="doc", id="d1"),)
    assert found.actions == (authzen.Action(name="read"),)
    assert authzen.catalog({}) == authzen.Catalog()
