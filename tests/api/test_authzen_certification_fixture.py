"""The AuthZEN 1.0 certification scenario against examples/authzen, through the wire layer.

Cases (tests/api/authzen_cases.json) are the requests and expected answers of openid/authzen
`certification/authorization-api-1_0-scenario.md`: each is decoded, turned into facts,
decided by the compiled bundle and answered as AuthZEN, as the decision service does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from typer.testing import CliRunner

from juncture.api import authzen
from juncture.cli import app
from juncture.engine import Facts, evaluate
from juncture.policy import compile_plan, load
from juncture.policy.plan import Plan

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "examples" / "authzen"
CASES: dict[str, Any] = json.loads((Path(__file__).parent / "authzen_cases.json").read_text())
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def plan() -> Plan:
    return compile_plan(load(BUNDLE))


def _decider(plan: Plan) -> Any:
    def decide(request: authzen.EvaluationRequest) -> authzen.EvaluationResponse:
        facts = authzen.to_facts(request, app=None)
        decision = evaluate(
            plan, request.action.name, Facts.from_document(facts), NOW, decision_id="d-1"
        )
        return authzen.to_response(decision, challenge_id=None, www_authenticate=None)

    return decide


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [case["id"] for case in cases]


def test_the_bundle_checks_and_its_policy_tests_pass() -> None:
    runner = CliRunner()
    checked = runner.invoke(app, ["check", str(BUNDLE), "--format", "json"])
    assert checked.exit_code == 0, checked.stdout
    tested = runner.invoke(app, ["test", str(BUNDLE), "--format", "json"])
    assert tested.exit_code == 0, tested.stdout
    (bundle,) = json.loads(tested.stdout)["bundles"]
    assert bundle["failed"] == 0 and bundle["errors"] == [] and bundle["uncovered"] == []
    assert bundle["passed"] >= len(CASES["evaluation"])


@pytest.mark.parametrize("case", CASES["evaluation"], ids=_ids(CASES["evaluation"]))
def test_basic_evaluation(plan: Plan, case: dict[str, Any]) -> None:
    request = authzen.decode_evaluation(json.dumps(case["request"]).encode())
    response = _decider(plan)(request)
    assert response.decision is case["decision"]
    body = json.loads(msgspec.json.encode(response))
    assert isinstance(body["decision"], bool) and isinstance(body["context"], dict)


def test_evaluation_is_idempotent(plan: Plan) -> None:
    body = json.dumps(CASES["evaluation"][0]["request"]).encode()
    decide = _decider(plan)
    answers = {decide(authzen.decode_evaluation(body)).decision for _ in range(5)}
    assert answers == {True}


@pytest.mark.parametrize("case", CASES["invalid_evaluation"], ids=_ids(CASES["invalid_evaluation"]))
def test_basic_errors_are_request_errors_with_a_path(case: dict[str, Any]) -> None:
    for decode in (authzen.decode_evaluation, authzen.decode_evaluations):
        with pytest.raises(authzen.AuthZenError) as raised:
            decode(case["body"].encode())
        assert raised.value.code == case.get("code", "request.invalid")
        assert raised.value.path == case["path"]


@pytest.mark.parametrize("case", CASES["batch"], ids=_ids(CASES["batch"]))
def test_batch(plan: Plan, case: dict[str, Any]) -> None:
    request = authzen.decode_evaluations(json.dumps(case["request"]).encode())
    response = authzen.run_evaluations(request, _decider(plan))
    body = json.loads(msgspec.json.encode(response))
    if "decision" in case:  # no items: answered as a single evaluation
        assert "evaluations" not in body
        assert body["decision"] is case["decision"]
        return
    assert "decision" not in body
    items = body["evaluations"]
    assert len(items) == len(case["request"]["evaluations"])
    for item, expected in zip(items, case["decisions"], strict=True):
        assert isinstance(item["decision"], bool)
        if expected is not None:
            assert item["decision"] is expected


def test_a_failed_batch_item_carries_its_error(plan: Plan) -> None:
    (case,) = [c for c in CASES["batch"] if c["id"] == "C.3.4.1"]
    request = authzen.decode_evaluations(json.dumps(case["request"]).encode())
    second = authzen.run_evaluations(request, _decider(plan)).evaluations[1]  # type: ignore[index]
    assert second.context == {
        "error": {
            "status": 400,
            "code": "request.invalid",
            "path": "$.evaluations[1].resource",
            "message": second.context["error"]["message"],  # type: ignore[index]
        }
    }


def _search(plan: Plan, kind: str, body: bytes) -> dict[str, Any]:
    search = authzen.decode_search(kind, body)  # type: ignore[arg-type]
    declared = plan.data["entities"][
        {"subject": "subjects", "resource": "resources"}.get(kind, "actions")
    ]
    result = authzen.run_search(search, declared, _decider(plan))
    out: dict[str, Any] = json.loads(msgspec.json.encode(result))
    return out


@pytest.mark.parametrize("case", CASES["search"], ids=_ids(CASES["search"]))
def test_search(plan: Plan, case: dict[str, Any]) -> None:
    body = _search(plan, case["kind"], json.dumps(case["request"]).encode())
    results = body["results"]
    assert isinstance(results, list)
    key = "name" if case["kind"] == "action" else "id"
    found = [r[key] for r in results]
    if case["kind"] != "action":
        wanted = case["request"][case["kind"]]["type"]
        assert all(r["type"] == wanted and isinstance(r["id"], str) for r in results)
    if "exactly" in case:
        assert found == case["exactly"]
    assert set(case.get("includes", [])) <= set(found)
    assert isinstance(body["page"], dict) and isinstance(body["page"]["next_token"], str)


def test_search_pages_follow_their_token_to_the_end(plan: Plan) -> None:
    (case,) = [c for c in CASES["search"] if c["id"] == "C.4.5.1"]
    first = _search(plan, "subject", json.dumps(case["request"]).encode())
    assert [r["id"] for r in first["results"]] == ["alice"]
    token = first["page"]["next_token"]
    assert token
    follow = {k: v for k, v in case["request"].items() if k != "page"} | {"page": {"token": token}}
    second = _search(plan, "subject", json.dumps(follow).encode())
    assert [r["id"] for r in second["results"]] == ["bob"]
    assert second["page"]["next_token"] == ""


@pytest.mark.parametrize("case", CASES["invalid_search"], ids=_ids(CASES["invalid_search"]))
def test_search_errors(case: dict[str, Any]) -> None:
    with pytest.raises(authzen.AuthZenError) as raised:
        authzen.decode_search(case["kind"], case["body"].encode())
    assert (raised.value.code, raised.value.path) == ("request.invalid", case["path"])


def test_discovery() -> None:
    document = authzen.metadata("https://pdp.example.com/")
    assert document["policy_decision_point"] == "https://pdp.example.com"
    assert document["access_evaluation_endpoint"] == "https://pdp.example.com/access/v1/evaluation"
    for key in (
        "access_evaluations_endpoint",
        "search_subject_endpoint",
        "search_resource_endpoint",
        "search_action_endpoint",
    ):
        assert document[key].startswith("https://pdp.example.com/access/v1/")
