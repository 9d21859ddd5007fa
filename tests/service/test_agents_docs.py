"""The agent framework wiring of docs/agents.md, run as written against a real server: the
`Guard` and the decorated tools, with the journey of the same page."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .server import Server

DOC = Path(__file__).resolve().parents[2] / "docs" / "agents.md"
_PYTHON = re.compile(r"^```python\n(.*?)^```", re.M | re.S)
_YAML = re.compile(r"^```yaml\n(.*?)^```", re.M | re.S)
PEOPLE = """\
journey: people
applies_to: [ops]
subjects: [user]
methods:
  password: {kind: password, aal: 1}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {}}]
  approval.approve: [{allow: {}}]
  "*": [{deny: unknown_action}]
"""


def _doc_journey() -> str:
    [block] = [b for b in _YAML.findall(DOC.read_text()) if "# file: ops.yaml" in b]
    journey = block.split("# file: ops.yaml\n", 1)[1].split("# file: ops_test.yaml", 1)[0]
    return journey.replace("manager_approval: {kind: approval, ttl: 10m}",
                           "manager_approval: {kind: approval, ttl: 30s}")  # fmt: skip


@pytest.fixture
def live(tmp_path: Path) -> Iterator[dict[str, Any]]:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "ops.yaml").write_text(_doc_journey())
    (bundle / "people.yaml").write_text(PEOPLE)
    server = Server(tmp_path / "j.db", bundle).start()
    try:
        admin = server.client(server.admin_token())
        app_key = admin.post("/admin/v1/apps", json={
            "name": "ops", "assertable_methods": ["password"]}).json()["key"]  # fmt: skip
        made = admin.post("/admin/v1/subjects", json={
            "type": "agent", "id": "ops-assistant", "owner": "team:finance-ops"})  # fmt: skip
        assert made.status_code == 201, made.text
        key = admin.post("/admin/v1/subjects/ops-assistant/keys", params={"type": "agent"},
                         json={"scopes": ["login", "tool:*"]}).json()["key"]  # fmt: skip
        juncture = server.client(app_key)
        started = juncture.post("/v1/sessions", json={
            "subject": {"id": "ana"}, "proofs": [{"method": "password"}]})  # fmt: skip
        user = started.json()["session"]["id"]
        agent = juncture.post("/v1/sessions", json={
            "credential": {"api_key": key}, "delegation": {"session_id": user},
            "task": {"id": "t-501", "purpose": "vendor_payment", "expires_in": "1h",
                     "tools": ["tool:match_invoice", "tool:transfer_funds"],
                     "details": {"limit": 1000}}})  # fmt: skip
        assert agent.status_code == 201, agent.text
        yield {"juncture": juncture, "user_session": user,
               "agent_session": agent.json()["session"]["id"]}  # fmt: skip
    finally:
        server.stop()


def test_the_documented_guard_runs_tools_only_when_juncture_allows(live: dict[str, Any]):
    guard_code, usage = _PYTHON.findall(DOC.read_text())
    namespace: dict[str, Any] = {"juncture": live["juncture"],
                                 "agent_session": live["agent_session"]}  # fmt: skip
    exec(compile(guard_code, str(DOC), "exec"), namespace)  # the doc's own code
    exec(compile(usage, str(DOC), "exec"), namespace)
    read_ledger, transfer_funds = namespace["read_ledger"], namespace["transfer_funds"]
    refused = namespace["ToolRefused"]

    assert read_ledger(account="ops") == "ledger of ops"
    assert transfer_funds(amount=400, to="ACME") == "sent 400 to ACME"

    # over the limit: the tool waits while the person is asked, and runs once they approve
    juncture: httpx.Client = live["juncture"]

    def approve_when_asked() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pending = juncture.get("/v1/approvals",
                                   params={"session_id": live["user_session"]}).json()  # fmt: skip
            if pending["approvals"]:
                answered = juncture.post(f"/v1/approvals/{pending['approvals'][0]['id']}", json={
                    "session_id": live["user_session"], "answer": "approve"})  # fmt: skip
                assert answered.status_code == 200, answered.text
                return
            time.sleep(0.1)

    person = threading.Thread(target=approve_when_asked)
    person.start()
    assert transfer_funds(amount=4000, to="ACME") == "sent 4000 to ACME"
    person.join(5)

    # a rejection refuses the tool, which never runs
    def reject_when_asked() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pending = juncture.get("/v1/approvals",
                                   params={"session_id": live["user_session"]}).json()  # fmt: skip
            if pending["approvals"]:
                juncture.post(f"/v1/approvals/{pending['approvals'][0]['id']}", json={
                    "session_id": live["user_session"], "answer": "reject"})  # fmt: skip
                return
            time.sleep(0.1)

    person = threading.Thread(target=reject_when_asked)
    person.start()
    with pytest.raises(refused, match=r"approval\.rejected"):
        transfer_funds(amount=9000, to="ACME")
    person.join(5)

    # a tool outside the task never runs either
    @namespace["guard"].tool
    def send_email(to: str) -> str:
        raise AssertionError("must not run")

    with pytest.raises(refused) as outside:
        send_email(to="x@example.com")
    assert outside.value.reason == "tool_outside_task"
