"""The AuthZEN 1.0 certification scenario, every test id, against a real `juncture serve`.

The cases (requests and expected answers) are those of openid/authzen
`certification/authorization-api-1_0-scenario.md`, kept in tests/api/authzen_cases.json with
the list of the scenario's test ids (`scenario_ids`); the fixture bundle is examples/authzen.
`test_every_scenario_id_is_exercised` checks that each id is run here: by a case of the
JSON file (its id, or the id before a space) or by a test named in `EXERCISED_BY`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .server import Server

ROOT = Path(__file__).resolve().parents[2]
CASES: dict[str, Any] = json.loads((ROOT / "tests/api/authzen_cases.json").read_text())
FIXTURE = CASES["evaluation"][0]["request"]  # alice reads record-1: true (C.1.4 rule 1)
ENDPOINTS = {
    "/access/v1/evaluation": FIXTURE,
    "/access/v1/evaluations": {**FIXTURE, "evaluations": [{}, {"action": {"name": "write"}}]},
    "/access/v1/search/subject": CASES["search"][0]["request"],
    "/access/v1/search/resource": next(c for c in CASES["search"] if c["id"] == "C.4.3.1")[
        "request"
    ],
    "/access/v1/search/action": next(c for c in CASES["search"] if c["id"] == "C.4.4.1")["request"],
}

# The scenario's ids no case of the JSON file names, and the tests below that exercise them.
EXERCISED_BY = {
    "C.2.1": "test_evaluation",
    "C.2.3.1": "test_evaluation",
    "C.2.3.2": "test_evaluation",
    "C.2.4.3": "test_a_body_not_sent_as_json_is_400",
    "C.2.5.1": "test_request_ids",
    "C.2.5.2": "test_request_ids",
    "C.2.6": "test_idempotency",
    "C.3.1": "test_batch",
    "C.3.3.1": "test_batch",
    "C.3.3.2": "test_batch",
    "C.3.3.3": "test_batch",
    "C.3.3.4": "test_batch",
    "C.4.1": "test_search",
    "C.4.5.2": "test_search_pages_follow_their_token_to_the_end",
    "C.4.5.3": "test_search_pages_follow_their_token_to_the_end",
    # Juncture paginates; what C.4.5.4 asks of a PDP that does not (accept `page`, answer a
    # well-formed one) is checked with the pages.
    "C.4.5.4": "test_search_pages_follow_their_token_to_the_end",
    "C.5": "test_json_is_accepted_with_its_parameters",
    "C.6.1": "test_discovery",
    "C.6.2": "test_discovery",
    "C.6.3": "test_discovery",
    "C.6.4": "test_discovery",
    "C.6.5": "test_discovery",
    "C.6.6": "test_discovery",
}


@pytest.fixture(scope="module")
def pdp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, httpx.Client]]:
    tmp = tmp_path_factory.mktemp("authzen")
    server = Server(tmp / "c.db", ROOT / "examples/authzen").start()
    try:
        with httpx.Client(
            base_url=server.url,
            timeout=10,
            headers={"Authorization": f"Bearer {server.admin_token()}"},
        ) as admin:
            key = admin.post("/admin/v1/apps", json={"name": "certification"}).json()["key"]
        yield server, server.client(key)
    finally:
        server.stop()


def ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["id"] for c in cases]


def ok(response: httpx.Response) -> Any:
    """C.5: a success is 200 with `Content-Type: application/json` and a JSON object."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == "application/json"
    body = response.json()
    assert isinstance(body, dict)
    return body


def test_every_scenario_id_is_exercised() -> None:
    in_cases = {
        case["id"].split(" ")[0]
        for key in ("evaluation", "invalid_evaluation", "batch", "search", "invalid_search")
        for case in CASES[key]
    }
    exercised = in_cases | set(EXERCISED_BY)
    assert exercised == set(CASES["scenario_ids"])
    for test in EXERCISED_BY.values():
        assert callable(globals().get(test)), test


@pytest.mark.parametrize("case", CASES["evaluation"], ids=ids(CASES["evaluation"]))
def test_evaluation(pdp: tuple[Server, httpx.Client], case: dict[str, Any]) -> None:
    _, client = pdp
    body = ok(client.post("/access/v1/evaluation", json=case["request"]))
    assert body["decision"] is case["decision"]  # C.2.3.1: present, a boolean
    assert isinstance(body.get("context", {}), dict)  # C.2.3.2


@pytest.mark.parametrize("case", CASES["invalid_evaluation"], ids=ids(CASES["invalid_evaluation"]))
def test_invalid_evaluation_is_400(pdp: tuple[Server, httpx.Client], case: dict[str, Any]) -> None:
    _, client = pdp
    response = client.post(
        "/access/v1/evaluation",
        content=case["body"].encode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    if case.get("path"):
        assert response.json().get("path", "$") == case["path"]


@pytest.mark.parametrize("content_type", CASES["content_types"]["refused"])
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_a_body_not_sent_as_json_is_400(
    pdp: tuple[Server, httpx.Client], endpoint: str, content_type: str | None
) -> None:
    """C.2.4.3: a request whose Content-Type is not application/json, or that has none, is 400
    on every AuthZEN endpoint, though its body is a valid request."""
    _, client = pdp
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post(endpoint, content=json.dumps(ENDPOINTS[endpoint]), headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "request.content_type"


@pytest.mark.parametrize("content_type", CASES["content_types"]["accepted"])
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_json_is_accepted_with_its_parameters(
    pdp: tuple[Server, httpx.Client], endpoint: str, content_type: str
) -> None:
    _, client = pdp
    body = json.dumps(ENDPOINTS[endpoint])
    ok(client.post(endpoint, content=body, headers={"Content-Type": content_type}))


@pytest.mark.parametrize("case", CASES["batch"], ids=ids(CASES["batch"]))
def test_batch(pdp: tuple[Server, httpx.Client], case: dict[str, Any]) -> None:
    _, client = pdp
    body = ok(client.post("/access/v1/evaluations", json=case["request"]))
    if "decision" in case:  # C.3.4.2, C.3.4.3: no items, the single-evaluation answer
        assert body["decision"] is case["decision"] and "evaluations" not in body
        return
    assert "decision" not in body  # C.3.3.4
    items = body["evaluations"]
    assert len(items) == len(case["request"]["evaluations"])  # C.3.3.1
    for item, expected in zip(items, case["decisions"], strict=True):
        assert isinstance(item["decision"], bool)  # C.3.3.3
        assert isinstance(item.get("context", {}), dict)
        if expected is not None:
            assert item["decision"] is expected  # in order: C.3.3.2


def _found(body: dict[str, Any], kind: str) -> list[str]:
    assert isinstance(body["results"], list)
    key = "name" if kind == "action" else "id"
    return [r[key] for r in body["results"]]


@pytest.mark.parametrize("case", CASES["search"], ids=ids(CASES["search"]))
def test_search(pdp: tuple[Server, httpx.Client], case: dict[str, Any]) -> None:
    _, client = pdp
    kind = case["kind"]
    body = ok(client.post(f"/access/v1/search/{kind}", json=case["request"]))
    found = _found(body, kind)
    if kind != "action":  # each result has the requested type and an id
        wanted = case["request"][kind]["type"]
        assert all(r["type"] == wanted and isinstance(r["id"], str) for r in body["results"])
    if "exactly" in case:
        assert found == case["exactly"]
    assert set(case.get("includes", [])) <= set(found)
    if "same_as" in case:  # context, or the searched entity's id, changes nothing
        (other,) = [c for c in CASES["search"] if c["id"] == case["same_as"]]
        assert found == _found(
            ok(client.post(f"/access/v1/search/{kind}", json=other["request"])), kind
        )
    assert isinstance(body["page"], dict) and isinstance(body["page"]["next_token"], str)
    if case.get("paged"):
        assert len(found) <= case["request"]["page"]["limit"]


def test_search_pages_follow_their_token_to_the_end(pdp: tuple[Server, httpx.Client]) -> None:
    """C.4.5.2, C.4.5.3: a token follows; the last page's `next_token` is ""."""
    _, client = pdp
    (case,) = [c for c in CASES["search"] if c["id"] == "C.4.5.1"]
    first = ok(client.post("/access/v1/search/subject", json=case["request"]))
    assert [r["id"] for r in first["results"]] == ["alice"]
    token = first["page"]["next_token"]
    assert isinstance(token, str) and token
    assert first["page"].get("count", 1) == 1
    follow = {k: v for k, v in case["request"].items() if k != "page"} | {"page": {"token": token}}
    second = ok(client.post("/access/v1/search/subject", json=follow))
    assert [r["id"] for r in second["results"]] == ["bob"]
    assert second["page"]["next_token"] == ""


@pytest.mark.parametrize("case", CASES["invalid_search"], ids=ids(CASES["invalid_search"]))
def test_invalid_search_is_400(pdp: tuple[Server, httpx.Client], case: dict[str, Any]) -> None:
    _, client = pdp
    response = client.post(
        f"/access/v1/search/{case['kind']}",
        content=case["body"].encode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["path"] == case["path"]


def test_request_ids(pdp: tuple[Server, httpx.Client]) -> None:
    """C.2.5.1: an `X-Request-ID` is echoed; C.2.5.2: without one, the answer is made (and
    carries a new id)."""
    _, client = pdp
    echoed = client.post("/access/v1/evaluation", json=FIXTURE, headers={"X-Request-ID": "cert-42"})
    assert ok(echoed)["decision"] is True
    assert echoed.headers["x-request-id"] == "cert-42"
    generated = client.post("/access/v1/evaluation", json=FIXTURE)
    assert ok(generated)["decision"] is True and generated.headers["x-request-id"]


def test_idempotency(pdp: tuple[Server, httpx.Client]) -> None:
    """C.2.6: the same fixture request, sent again and again, gets the same decision."""
    _, client = pdp
    for request in (FIXTURE, CASES["evaluation"][1]["request"]):
        answers = {
            ok(client.post("/access/v1/evaluation", json=request))["decision"] for _ in range(5)
        }
        assert len(answers) == 1


def test_discovery(pdp: tuple[Server, httpx.Client]) -> None:
    """C.6: the metadata is served at the well-known URI, without a key, and names the
    endpoints the other levels use (C.2.1, C.3.1, C.4.1: the default paths)."""
    server, _ = pdp
    meta = ok(httpx.get(f"{server.url}/.well-known/authzen-configuration"))  # C.6.1, C.6.2, C.6.6
    assert meta["policy_decision_point"] == server.url  # C.6.3, C.6.5: the base URL used
    assert meta["access_evaluation_endpoint"] == f"{server.url}/access/v1/evaluation"
    assert meta["access_evaluations_endpoint"] == f"{server.url}/access/v1/evaluations"  # C.6.4
    for kind in ("subject", "resource", "action"):
        assert meta[f"search_{kind}_endpoint"] == f"{server.url}/access/v1/search/{kind}"
    capabilities = meta.get("capabilities", [])
    assert isinstance(capabilities, list) and all(isinstance(c, str) for c in capabilities)
    assert "signed_metadata" not in meta  # none is offered, so none to verify
