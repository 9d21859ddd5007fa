"""The AuthZEN 1.0 certification scenario, every case, against a real `juncture serve`.

The cases (requests and expected answers) are those of openid/authzen
`certification/authorization-api-1_0-scenario.md`, kept in tests/api/authzen_cases.json;
the fixture bundle is examples/authzen.
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


@pytest.mark.parametrize("case", CASES["evaluation"], ids=ids(CASES["evaluation"]))
def test_evaluation(pdp: tuple[Server, httpx.Client], case: dict[str, Any]) -> None:
    _, client = pdp
    response = client.post("/access/v1/evaluation", json=case["request"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["decision"] is case["decision"]


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


@pytest.mark.parametrize("case", CASES["batch"], ids=ids(CASES["batch"]))
def test_batch(pdp: tuple[Server, httpx.Client], case: dict[str, Any]) -> None:
    _, client = pdp
    response = client.post("/access/v1/evaluations", json=case["request"])
    assert response.status_code == 200
    body = response.json()
    if "decision" in case:
        assert body["decision"] is case["decision"] and "evaluations" not in body
        return
    items = body["evaluations"]
    assert len(items) == len(case["request"]["evaluations"])
    for item, expected in zip(items, case["decisions"], strict=True):
        assert isinstance(item["decision"], bool)
        if expected is not None:
            assert item["decision"] is expected


@pytest.mark.parametrize("case", CASES["search"], ids=ids(CASES["search"]))
def test_search(pdp: tuple[Server, httpx.Client], case: dict[str, Any]) -> None:
    _, client = pdp
    response = client.post(f"/access/v1/search/{case['kind']}", json=case["request"])
    assert response.status_code == 200
    body = response.json()
    key = "name" if case["kind"] == "action" else "id"
    found = [r[key] for r in body["results"]]
    if "exactly" in case:
        assert found == case["exactly"]
    assert set(case.get("includes", [])) <= set(found)
    assert isinstance(body["page"]["next_token"], str)


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


def test_discovery_and_request_ids(pdp: tuple[Server, httpx.Client]) -> None:
    server, client = pdp
    meta = httpx.get(f"{server.url}/.well-known/authzen-configuration")
    assert meta.status_code == 200
    assert meta.json()["access_evaluation_endpoint"] == f"{server.url}/access/v1/evaluation"
    request = CASES["evaluation"][0]["request"]
    echoed = client.post("/access/v1/evaluation", json=request, headers={"X-Request-ID": "cert-42"})
    assert echoed.headers["x-request-id"] == "cert-42"
    generated = client.post("/access/v1/evaluation", json=request)
    assert generated.status_code == 200 and generated.headers["x-request-id"]
