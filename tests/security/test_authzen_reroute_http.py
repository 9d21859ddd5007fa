"""AuthZEN `decision` is true only for `allow`: a reroute is no grant of the asked action.

A reroute lets the user go on only elsewhere (its path, with fewer scopes). A PEP that reads
only AuthZEN's boolean (most do) granted the full action when Juncture rerouted. Over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.server import Server
from service.test_http import admin

JOURNEY = """\
journey: j
applies_to: [web]
checkpoints:
  read: [{allow: {scopes: [read]}}]
  orders: [{reroute: {path: /limited, scopes: [summary]}}]
  "*": [{deny: unknown_action}]
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    root = tmp_path_factory.mktemp("reroute")
    bundle = root / "bundle"
    bundle.mkdir()
    (bundle / "j.yaml").write_text(JOURNEY)
    server = Server(root / "j.db", bundle).start()
    with admin(server) as client:
        made = client.post("/admin/v1/apps", json={"name": "web"})
    assert made.status_code == 201, made.text
    yield server.client(made.json()["key"])
    server.stop()


def _request(action: str) -> dict[str, object]:
    return {"subject": {"type": "user", "id": "alice"}, "action": {"name": action},
            "resource": {"type": "doc", "id": "1"}}  # fmt: skip


def test_authzen_reroute_is_not_a_true_decision(app):
    """I5-like fail-safe: only `allow` answers `decision: true`; the reroute is in context."""
    answer = app.post("/access/v1/evaluation", json=_request("orders"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["decision"] is False, body
    context = body["context"]
    assert (context["outcome"], context["path"], context["scopes"]) == (
        "reroute", "/limited", ["summary"])  # fmt: skip
    allowed = app.post("/access/v1/evaluation", json=_request("read")).json()
    assert allowed["decision"] is True


def test_authzen_batch_reroute_is_not_a_permit(app):
    """`permit_on_first_permit` does not stop at a reroute; each item says false for it."""
    answer = app.post(
        "/access/v1/evaluations",
        json={
            **_request("orders"),
            "options": {"evaluations_semantic": "permit_on_first_permit"},
            "evaluations": [{"action": {"name": "orders"}}, {"action": {"name": "read"}}],
        },
    )
    assert answer.status_code == 200, answer.text
    decisions = [e["decision"] for e in answer.json()["evaluations"]]
    assert decisions == [False, True], answer.text
