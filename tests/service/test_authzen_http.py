"""The AuthZEN API over real HTTP: batch semantics, search, discovery, bad requests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .server import Server

DOCS = """\
journey: docs
applies_to: [docs]
methods:
  password: {kind: password, aal: 1}
checkpoints:
  read:
    - {if: "resource.id in data.acl[subject.id]", allow: {}}
    - deny: not_shared
  delete:
    - {if: "subject.id == 'root'", allow: {}}
    - deny: not_owner
  "*": [{deny: unknown_action}]
"""
ENTITIES = """\
subjects:
  - {type: user, id: alice}
  - {type: user, id: bob}
  - {type: user, id: root}
  - {type: group, id: staff}
resources:
  - {type: doc, id: d1}
  - {type: doc, id: d2}
  - {type: doc, id: d3}
actions:
  - {name: read}
  - {name: share}
"""
ACL = "alice: [d1, d2]\nbob: [d2]\nroot: [d1, d2, d3]\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "docs"
    (root / "data").mkdir(parents=True)
    (root / "docs.yaml").write_text(DOCS)
    (root / "data" / "entities.yaml").write_text(ENTITIES)
    (root / "data" / "acl.yaml").write_text(ACL)
    running = Server(tmp_path / "a.db", root).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def client(server: Server) -> httpx.Client:
    with httpx.Client(
        base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {server.admin_token()}"}
    ) as admin:
        key = admin.post("/admin/v1/apps", json={"name": "docs"}).json()["key"]
    return server.client(key)


def ask(subject: str, action: str, doc: str) -> dict:
    return {
        "subject": {"type": "user", "id": subject},
        "action": {"name": action},
        "resource": {"type": "doc", "id": doc},
    }


def test_single_evaluation_and_unknown_members_ignored(client: httpx.Client):
    allowed = client.post(
        "/access/v1/evaluation", json={**ask("alice", "read", "d1"), "extension": {"x": 1}}
    )
    assert allowed.status_code == 200 and allowed.json()["decision"] is True
    denied = client.post("/access/v1/evaluation", json=ask("bob", "read", "d1")).json()
    assert denied["decision"] is False and denied["context"]["reason"] == "not_shared"


@pytest.mark.parametrize("missing", ["subject", "action", "resource"])
def test_a_missing_required_member_is_400(client: httpx.Client, missing: str):
    body = ask("alice", "read", "d1")
    del body[missing]
    response = client.post("/access/v1/evaluation", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == "request.invalid"
    assert response.json()["path"] == f"$.{missing}"


def test_batch_defaults_and_the_three_semantics(client: httpx.Client):
    batch = {
        "subject": {"type": "user", "id": "alice"},
        "action": {"name": "read"},
        "evaluations": [
            {"resource": {"type": "doc", "id": "d1"}},
            {"resource": {"type": "doc", "id": "d3"}},
            {"resource": {"type": "doc", "id": "d2"}},
        ],
    }
    every = client.post("/access/v1/evaluations", json=batch).json()["evaluations"]
    assert [e["decision"] for e in every] == [True, False, True]
    batch["options"] = {"evaluations_semantic": "deny_on_first_deny"}
    first_deny = client.post("/access/v1/evaluations", json=batch).json()["evaluations"]
    assert [e["decision"] for e in first_deny] == [True, False]
    batch["options"] = {"evaluations_semantic": "permit_on_first_permit"}
    first_permit = client.post("/access/v1/evaluations", json=batch).json()["evaluations"]
    assert [e["decision"] for e in first_permit] == [True]
    # an item override beats the default
    override = {
        "subject": {"type": "user", "id": "bob"},
        "action": {"name": "read"},
        "evaluations": [
            {"resource": {"type": "doc", "id": "d1"}, "subject": {"type": "user", "id": "root"}}
        ],
    }
    assert (
        client.post("/access/v1/evaluations", json=override).json()["evaluations"][0]["decision"]
        is True
    )


def test_a_malformed_item_is_false_in_place_not_a_failed_batch(client: httpx.Client):
    batch = {
        "subject": {"type": "user", "id": "alice"},
        "evaluations": [
            {"action": {"name": "read"}, "resource": {"type": "doc", "id": "d1"}},
            {"resource": {"type": "doc", "id": "d1"}},
        ],
    }
    response = client.post("/access/v1/evaluations", json=batch)
    assert response.status_code == 200
    first, second = response.json()["evaluations"]
    assert first["decision"] is True
    assert second["decision"] is False and second["context"]["error"]["status"] == 400


def test_no_items_is_a_single_evaluation(client: httpx.Client):
    # AuthZEN certification C.3.4.2/3: without items, the top-level members are the request
    # and the answer has the single-evaluation shape.
    response = client.post("/access/v1/evaluations", json=ask("alice", "read", "d2"))
    assert response.json() == {"decision": True, "context": response.json()["context"]}
    empty = client.post(
        "/access/v1/evaluations", json={**ask("bob", "read", "d1"), "evaluations": []}
    )
    assert empty.json()["decision"] is False
    assert client.post("/access/v1/evaluations", json={"evaluations": []}).status_code == 400


def test_search_subjects_resources_actions_with_paging(client: httpx.Client):
    subjects = client.post(
        "/access/v1/search/subject",
        json={
            "subject": {"type": "user", "id": "ignored"},
            "action": {"name": "read"},
            "resource": {"type": "doc", "id": "d2"},
        },
    ).json()
    assert subjects["results"] == [
        {"type": "user", "id": "alice"},
        {"type": "user", "id": "bob"},
        {"type": "user", "id": "root"},
    ]
    assert subjects["page"]["next_token"] == ""
    query = {
        "subject": {"type": "user", "id": "root"},
        "action": {"name": "read"},
        "resource": {"type": "doc"},
        "page": {"limit": 2},
    }
    first = client.post("/access/v1/search/resource", json=query).json()
    assert [r["id"] for r in first["results"]] == ["d1", "d2"]
    assert first["page"]["next_token"]
    query["page"] = {"limit": 2, "token": first["page"]["next_token"]}
    second = client.post("/access/v1/search/resource", json=query).json()
    assert [r["id"] for r in second["results"]] == ["d3"] and second["page"]["next_token"] == ""
    query["action"] = {"name": "delete"}  # the request changed: the token no longer fits
    assert client.post("/access/v1/search/resource", json=query).status_code == 400
    actions = client.post(
        "/access/v1/search/action",
        json={"subject": {"type": "user", "id": "alice"}, "resource": {"type": "doc", "id": "d1"}},
    ).json()
    assert actions["results"] == [{"name": "read"}]


def test_discovery(server: Server):
    meta = httpx.get(f"{server.url}/.well-known/authzen-configuration").json()
    assert meta["policy_decision_point"] == server.url
    assert meta["access_evaluation_endpoint"] == f"{server.url}/access/v1/evaluation"
    for kind in ("subject", "resource", "action"):
        assert meta[f"search_{kind}_endpoint"] == f"{server.url}/access/v1/search/{kind}"


def test_search_candidates_carry_their_declared_properties(tmp_path: Path):
    root = tmp_path / "records"
    (root / "data").mkdir(parents=True)
    (root / "records.yaml").write_text(
        "journey: records\nsubjects: [user]\ncheckpoints:\n  read:\n"
        '    - {if: "resource.properties.owner == subject.id", allow: {}}\n'
        "    - deny: not_owner\n"
    )
    (root / "data" / "entities.yaml").write_text(
        "resources:\n  - {type: record, id: r1, properties: {owner: alice}}\n"
        "  - {type: record, id: r2, properties: {owner: bob}}\n"
    )
    server = Server(tmp_path / "r.db", root).start()
    try:
        with httpx.Client(
            base_url=server.url,
            timeout=10,
            headers={"Authorization": f"Bearer {server.admin_token()}"},
        ) as admin:
            key = admin.post("/admin/v1/apps", json={"name": "x"}).json()["key"]
        found = (
            server.client(key)
            .post(
                "/access/v1/search/resource",
                json={
                    "subject": {"type": "user", "id": "alice"},
                    "action": {"name": "read"},
                    "resource": {"type": "record"},
                },
            )
            .json()
        )
        assert [r["id"] for r in found["results"]] == ["r1"]
    finally:
        server.stop()
