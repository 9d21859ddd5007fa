"""Services and agents end to end, over HTTP against a real `juncture serve` on SQLite.

The reference scenario (DESIGN.md, 4): an agent within its task reads freely; a transfer above
the task's limit needs the delegating user's approval; a tool outside the task is denied; when
the task changes mid-journey the next decisions follow. Then: revoking the user's session
revokes the agent's, grants expire, approvals rejected, expired or answered by someone else,
API key rotation with an overlap, a disabled service denied everywhere, a replayed client
assertion refused. Client assertions are signed here with `cryptography`, not with the JOSE
library Juncture uses.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from .server import Server

AUDIENCE = "https://juncture.test"

OPS = f"""\
journey: ops
applies_to: [ops]
subjects: [agent, service]
methods:
  agent_key: {{kind: api_key, aal: 1}}
  signed: {{kind: client_assertion, aal: 2, audience: "{AUDIENCE}"}}
  manager_approval: {{kind: approval, ttl: 3s}}
guard:
  - if: "subject.type == 'agent' && !has(agent.delegated_by)"
    deny: no_delegation
  - if: "signals.risk_elevated"
    deny: risk_elevated
checkpoints:
  login:
    - require: {{any: [agent_key, signed]}}
    - allow: {{}}
  "tool:read_*":
    - require: {{any: [agent_key, signed]}}
    - allow: {{scopes: ["tools:read"], ttl: 5m}}
  "tool:transfer_funds":
    - require: {{any: [agent_key, signed]}}
    - if: "subject.type == 'agent' && !(action.name in agent.task.tools)"
      deny: tool_outside_task
    - if: "action.properties.amount > agent.task.limit"
      then:
        - require: {{any: [manager_approval], within: 10m}}
        - allow: {{scopes: ["payments:large"]}}
    - allow: {{scopes: ["payments:transfer"], ttl: 2m}}
  "tool:open_vault":
    - require: {{any: [agent_key, signed]}}
    - allow: {{scopes: ["vault:read"], ttl: 2s}}
  "tool:open_archive":
    - require: {{any: [agent_key, signed]}}
    - allow: {{scopes: ["archive:read"], ttl: 10m}}
  "tool:read_vault_item":
    - if: "'vault:read' in grants"
      allow: {{}}
    - deny: no_grant
  "tool:*":
    - require: {{any: [agent_key, signed]}}
    - if: "subject.type == 'agent' && !(action.name in agent.task.tools)"
      deny: tool_outside_task
    - allow: {{scopes: ["tools:call"], ttl: 5m}}
  "*": [{{deny: unknown_action}}]
"""

PEOPLE = """\
journey: people
applies_to: [ops]
subjects: [user]
methods:
  password: {kind: password, aal: 1}
  totp: {kind: totp, aal: 2}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {}}]
  approval.approve:
    - require: {any: [totp], within: 5m}
    - allow: {}
  "*": [{deny: unknown_action}]
"""

PAYMENT_TASK = {
    "id": "t-501",
    "purpose": "vendor_payment",
    "tools": ["tool:match_invoice", "tool:transfer_funds"],
    "expires_in": "1h",
    "details": {"limit": 1000},
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Signer:
    """A service's P-256 key: its public JWK, and client assertions signed with it."""

    def __init__(self, kid: str = "k1") -> None:
        self.kid = kid
        self.key = ec.generate_private_key(ec.SECP256R1())

    def jwk(self) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        return {"kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256",
                "x": _b64(numbers.x.to_bytes(32, "big")),
                "y": _b64(numbers.y.to_bytes(32, "big"))}  # fmt: skip

    def assertion(self, subject: str, *, jti: str | None = None, aud: str = AUDIENCE) -> str:
        now = int(time.time())
        header = {"alg": "ES256", "typ": "JWT", "kid": self.kid}
        claims = {"iss": subject, "sub": subject, "aud": aud, "iat": now, "exp": now + 120,
                  "jti": jti or uuid.uuid4().hex}  # fmt: skip
        signing_input = (_b64(json.dumps(header).encode()) + "." +
                         _b64(json.dumps(claims).encode()))  # fmt: skip
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


class World:
    """A server with the two journeys, an `ops` app, a delegating user and their session."""

    def __init__(self, root: Path) -> None:
        bundle = root / "bundle"
        bundle.mkdir()
        (bundle / "ops.yaml").write_text(OPS)
        (bundle / "people.yaml").write_text(PEOPLE)
        self.server = Server(root / "j.db", bundle).start()
        self.admin = self.server.client(self.server.admin_token())
        made = self.admin.post("/admin/v1/apps", json={
            "name": "ops", "assertable_methods": ["password", "totp"]})  # fmt: skip
        assert made.status_code == 201, made.text
        self.app = self.server.client(made.json()["key"])

    def stop(self) -> None:
        self.server.stop()

    def nhi(self, subject_type: str, subject_id: str, **extra: Any) -> None:
        made = self.admin.post("/admin/v1/subjects", json={
            "type": subject_type, "id": subject_id, **extra})  # fmt: skip
        assert made.status_code == 201, made.text

    def key(self, subject_type: str, subject_id: str, **body: Any) -> dict[str, Any]:
        issued = self.admin.post(f"/admin/v1/subjects/{subject_id}/keys",
                                 params={"type": subject_type}, json=body)  # fmt: skip
        assert issued.status_code == 201, issued.text
        answer: dict[str, Any] = issued.json()
        return answer

    def user_session(self, user: str = "ana") -> str:
        started = self.app.post("/v1/sessions", json={
            "subject": {"type": "user", "id": user},
            "proofs": [{"method": "password"}]})  # fmt: skip
        assert started.status_code == 201, started.text
        assert started.json()["decision"]["outcome"] == "allow"
        return str(started.json()["session"]["id"])

    def agent_session(self, key: str, user_session: str, task: dict[str, Any] | None = None,
                      **extra: Any) -> httpx.Response:  # fmt: skip
        return self.app.post("/v1/sessions", json={
            "credential": {"api_key": key},
            "delegation": {"session_id": user_session},
            "task": task or PAYMENT_TASK,
            "context": {"network": {"ip": "203.0.113.9"}},
            **extra,
        })  # fmt: skip

    def tool(self, session: str, tool: str, subject: tuple[str, str] = ("agent", "bot"),
             **properties: Any) -> dict[str, Any]:  # fmt: skip
        """One tool call, as an agent framework asks before it runs it (AuthZEN)."""
        answer = self.app.post("/access/v1/evaluation", json={
            "subject": {"type": subject[0], "id": subject[1]},
            "action": {"name": tool, "properties": properties},
            "resource": {"type": "tool", "id": tool},
            "context": {"session_id": session},
        })  # fmt: skip
        assert answer.status_code == 200, answer.text
        context: dict[str, Any] = answer.json()["context"]
        context["decision"] = answer.json()["decision"]
        return context

    def session(self, session_id: str) -> dict[str, Any]:
        read = self.app.get(f"/v1/sessions/{session_id}")
        assert read.status_code == 200, read.text
        body: dict[str, Any] = read.json()
        return body

    def approvals(self, user_session: str, **params: Any) -> list[dict[str, Any]]:
        listed = self.app.get("/v1/approvals", params={"session_id": user_session, **params})
        assert listed.status_code == 200, listed.text
        found: list[dict[str, Any]] = listed.json()["approvals"]
        return found

    def answer(self, approval: str, user_session: str, answer: str) -> httpx.Response:
        return self.app.post(f"/v1/approvals/{approval}",
                             json={"session_id": user_session, "answer": answer})  # fmt: skip

    def verify(self, challenge: str, method: str, **body: Any) -> httpx.Response:
        return self.app.post(f"/v1/challenges/{challenge}/verify", json={"method": method, **body})


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    try:
        made.nhi("agent", "bot", owner="user:ana", description="operations assistant")
        yield made
    finally:
        made.stop()


def approve_as(world: World, user_session: str, approval: str) -> httpx.Response:
    """Approve from the user's session: the journey asks for a fresh TOTP first."""
    first = world.answer(approval, user_session, "approve")
    assert first.status_code == 200, first.text
    decision = first.json()["decision"]
    assert decision["outcome"] == "step_up" and "approval" not in first.json()
    verified = world.verify(decision["challenge"]["id"], "totp")  # the app's own TOTP check
    assert verified.status_code == 200, verified.text
    return world.answer(approval, user_session, "approve")


# -- the reference scenario ------------------------------------------------------------------------


def test_an_agent_follows_its_task_and_a_large_transfer_waits_for_the_users_approval(
    world: World,
):
    key = world.key("agent", "bot", label="ops bot")["key"]
    ana = world.user_session("ana")
    started = world.agent_session(key, ana)
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["decision"]["outcome"] == "allow"
    agent = body["session"]["id"]
    assert body["session"]["delegation"] == {"subject_id": "ana", "session_id": ana,
                                             "subject_type": "user"}  # fmt: skip
    assert body["session"]["task"]["purpose"] == "vendor_payment"

    # reads freely, within the task
    assert world.tool(agent, "tool:read_ledger")["decision"] is True
    assert world.tool(agent, "tool:match_invoice")["decision"] is True
    # a tool outside the task is denied
    outside = world.tool(agent, "tool:send_email")
    assert outside["decision"] is False and outside["reason"] == "tool_outside_task"
    # a transfer under the limit goes
    small = world.tool(agent, "tool:transfer_funds", amount=200)
    assert small["decision"] is True
    # above the limit: the user is asked
    large = world.tool(agent, "tool:transfer_funds", amount=4000)
    assert large["decision"] is False
    challenge = large["challenge_id"]
    assert large["methods"] == ["manager_approval"]
    pending = world.verify(challenge, "manager_approval")
    assert pending.status_code == 409 and pending.json()["code"] == "approval.pending"
    [asked] = world.approvals(ana)
    assert asked["action"] == "tool:transfer_funds"
    assert asked["request"]["action"]["properties"] == {"amount": 4000}
    assert asked["agent"] == {"type": "agent", "id": "bot", "session_id": agent}
    assert asked["task"]["purpose"] == "vendor_payment"
    approved = approve_as(world, ana, asked["id"])
    assert approved.status_code == 200, approved.text
    assert approved.json()["approval"]["status"] == "approved"
    # the agent verifies its challenge and goes on
    went = world.verify(challenge, "manager_approval")
    assert went.status_code == 200, went.text
    assert went.json()["decision"]["outcome"] == "allow"
    assert went.json()["decision"]["scopes"] == ["payments:large"]
    # single use: the approval answered that one request
    again = world.verify(challenge, "manager_approval")
    assert again.status_code == 409
    next_large = world.tool(agent, "tool:transfer_funds", amount=4000)
    assert next_large["decision"] is False and "challenge_id" in next_large
    assert world.approvals(ana)[0]["status"] == "pending"  # a new question, the old one spent

    # the task changes mid-journey: the next decisions follow
    changed = world.app.post(f"/v1/sessions/{agent}/task", json={"task": {
        "id": "t-502", "purpose": "reconciliation", "tools": ["tool:send_email"],
        "expires_in": "30m", "details": {"limit": 0}}})  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert world.tool(agent, "tool:send_email")["decision"] is True
    moved = world.tool(agent, "tool:transfer_funds", amount=1)
    assert moved["decision"] is False and moved["reason"] == "tool_outside_task"


def test_revoking_the_users_session_revokes_the_agent_sessions_acting_for_it(world: World):
    key = world.key("agent", "bot")["key"]
    ana, other = world.user_session("ana"), world.user_session("ana")
    first = world.agent_session(key, ana).json()["session"]["id"]
    second = world.agent_session(key, ana).json()["session"]["id"]
    unrelated = world.agent_session(key, other).json()["session"]["id"]
    ended = world.app.post(f"/v1/sessions/{ana}/end", json={"revoke_reason": "stolen_laptop"})
    assert ended.status_code == 200, ended.text
    for agent in (first, second):
        state = world.session(agent)
        assert (state["status"], state["status_reason"]) == ("revoked", "delegation_ended")
        denied = world.tool(agent, "tool:read_ledger")
        assert denied["decision"] is False
    assert world.session(unrelated)["status"] == "active"
    assert world.tool(unrelated, "tool:read_ledger")["decision"] is True
    # a logout ends them too, and a new agent session cannot act for an ended one
    world.app.post(f"/v1/sessions/{other}/end", json={})
    assert world.session(unrelated)["status"] == "revoked"
    refused = world.agent_session(key, other)
    assert refused.status_code == 403 and refused.json()["code"] == "delegation.invalid"


def test_a_grant_reads_as_a_fact_until_it_expires(world: World):
    key = world.key("agent", "bot")["key"]
    agent = world.agent_session(key, world.user_session("ana")).json()["session"]["id"]
    no_grant = world.tool(agent, "tool:read_vault_item")
    assert no_grant["decision"] is False and no_grant["reason"] == "no_grant"
    opened = world.tool(agent, "tool:open_vault")
    assert opened["decision"] is True
    assert world.tool(agent, "tool:read_vault_item")["decision"] is True
    grant = world.session(agent)["standing"]["tool:open_vault"]
    assert grant["scopes"] == ["vault:read"] and grant["decision"]
    time.sleep(2.2)  # the grant's ttl is 2 s
    expired = world.tool(agent, "tool:read_vault_item")
    assert expired["decision"] is False and expired["reason"] == "no_grant"


def test_the_guard_and_the_sweep_withdraw_grants_that_no_longer_hold(world: World):
    key = world.key("agent", "bot")["key"]
    ana = world.user_session("ana")
    first = world.agent_session(key, ana).json()["session"]["id"]
    second = world.agent_session(key, ana).json()["session"]["id"]
    for agent in (first, second):
        assert world.tool(agent, "tool:open_archive")["decision"] is True
        assert "tool:open_archive" in world.session(agent)["standing"]
    # a signal: the guard now denies, and the grant is withdrawn at once
    flagged = world.app.post(f"/v1/sessions/{first}/signals",
                             json={"signals": {"risk_elevated": True}})  # fmt: skip
    assert flagged.status_code == 200, flagged.text
    assert "tool:open_archive" not in flagged.json()["session"]["standing"]
    assert "tool:open_archive" in world.session(second)["standing"]  # only that session's
    # a publish that takes the archive away: the sweep withdraws the other grant too
    stricter = OPS.replace(
        """  "tool:open_archive":
    - require: {any: [agent_key, signed]}
    - allow: {scopes: ["archive:read"], ttl: 10m}""",
        """  "tool:open_archive":
    - deny: archive_closed""",
    )
    assert stricter != OPS
    published = world.admin.post("/admin/v1/versions", json={
        "files": {"ops.yaml": stricter, "people.yaml": PEOPLE}, "activate": True})  # fmt: skip
    assert published.status_code == 201, published.text
    deadline = time.monotonic() + 30
    while "tool:open_archive" in world.session(second)["standing"]:
        assert time.monotonic() < deadline, "the sweep did not withdraw the grant"
        time.sleep(0.1)
    assert world.session(second)["status"] == "active"


# -- approvals ---------------------------------------------------------------------------------


def _ask(world: World, key: str, ana: str) -> tuple[str, str, dict[str, Any]]:
    agent = world.agent_session(key, ana).json()["session"]["id"]
    large = world.tool(agent, "tool:transfer_funds", amount=5000)
    [asked] = [a for a in world.approvals(ana) if a["agent"]["session_id"] == agent]
    return agent, large["challenge_id"], asked


def test_a_rejected_approval_refuses_the_agent(world: World):
    key = world.key("agent", "bot")["key"]
    ana = world.user_session("ana")
    _, challenge, asked = _ask(world, key, ana)
    rejected = world.answer(asked["id"], ana, "reject")  # rejecting needs no step-up
    assert rejected.status_code == 200 and rejected.json()["approval"]["status"] == "rejected"
    refused = world.verify(challenge, "manager_approval")
    assert refused.status_code == 403 and refused.json()["code"] == "approval.rejected"
    twice = world.answer(asked["id"], ana, "approve")
    assert twice.status_code == 409 and twice.json()["code"] == "approval.answered"


def test_an_approval_not_answered_in_time_expires(world: World):
    key = world.key("agent", "bot")["key"]
    ana = world.user_session("ana")
    _, challenge, asked = _ask(world, key, ana)
    time.sleep(3.2)  # the method's ttl is 3 s
    assert world.approvals(ana) == []  # only live questions are listed
    late = world.answer(asked["id"], ana, "reject")
    assert late.status_code == 409 and late.json()["code"] == "approval.expired"
    refused = world.verify(challenge, "manager_approval")
    assert refused.status_code == 409 and refused.json()["code"] == "approval.expired"


def test_a_question_from_an_agent_whose_session_ended_is_not_answered(world: World):
    key = world.key("agent", "bot")["key"]
    ana, ana_phone = world.user_session("ana"), world.user_session("ana")
    _, _, asked = _ask(world, key, ana)
    world.app.post(f"/v1/sessions/{ana}/end", json={})  # the agent's session goes with it
    assert world.approvals(ana_phone) == []
    late = world.answer(asked["id"], ana_phone, "approve")
    assert late.status_code == 409 and late.json()["code"] == "approval.expired"


def test_a_new_task_cuts_the_grants_of_the_old_one_short(world: World):
    key = world.key("agent", "bot")["key"]
    agent = world.agent_session(key, world.user_session("ana")).json()["session"]["id"]
    assert world.tool(agent, "tool:open_archive")["decision"] is True  # a 10-minute grant
    changed = world.app.post(f"/v1/sessions/{agent}/task", json={"task": {
        **PAYMENT_TASK, "id": "t-short", "expires_in": "1m"}})  # fmt: skip
    assert changed.status_code == 200, changed.text
    state = world.session(agent)
    assert state["standing"]["tool:open_archive"]["expires_at"] <= state["task"]["expires_at"]


def test_another_user_cannot_see_or_answer_the_approval(world: World):
    key = world.key("agent", "bot")["key"]
    ana, bea = world.user_session("ana"), world.user_session("bea")
    _, challenge, asked = _ask(world, key, ana)
    assert world.approvals(bea) == []
    read = world.app.get(f"/v1/approvals/{asked['id']}", params={"session_id": bea})
    assert read.status_code == 404 and read.json()["code"] == "approval.not_found"
    answered = world.answer(asked["id"], bea, "approve")
    assert answered.status_code == 404 and answered.json()["code"] == "approval.not_found"
    still = world.verify(challenge, "manager_approval")
    assert still.status_code == 409 and still.json()["code"] == "approval.pending"
    assert world.approvals(ana)[0]["status"] == "pending"


# -- credentials -------------------------------------------------------------------------------


def start_with(world: World, key: str) -> httpx.Response:
    return world.app.post("/v1/sessions", json={"credential": {"api_key": key}})


def test_a_rotated_key_works_beside_the_new_one_for_the_overlap_then_ends(world: World):
    world.nhi("service", "billing", owner="team:payments")
    issued = world.key("service", "billing", scopes=["tool:read_*", "login"], expires_in="90d")
    old_key, old_id = issued["key"], issued["authenticator"]["id"]
    assert issued["authenticator"]["scopes"] == ["tool:read_*", "login"]
    start = {"credential": {"api_key": old_key}}
    before = world.app.post("/v1/sessions", json=start)
    assert before.status_code == 201, before.text
    service = before.json()["session"]["id"]
    assert before.json()["session"]["subject"] == {"type": "service", "id": "billing",
                                                    "properties": {}}  # fmt: skip
    assert world.tool(service, "tool:read_ledger", ("service", "billing"))["decision"] is True
    scoped = world.tool(service, "tool:match_invoice", ("service", "billing"))
    assert scoped["decision"] is False
    assert scoped["reason"] == "outside_credential_scope"

    rotated = world.admin.post(f"/admin/v1/subjects/billing/keys/{old_id}/rotate",
                               params={"type": "service"}, json={"overlap": "2s"})  # fmt: skip
    assert rotated.status_code == 201, rotated.text
    new_key = rotated.json()["key"]
    assert new_key != old_key and rotated.json()["authenticator"]["scopes"] == issued[
        "authenticator"]["scopes"]  # fmt: skip
    for key in (old_key, new_key):  # both work during the overlap
        assert start_with(world, key).status_code == 201
    time.sleep(2.2)
    late = world.app.post("/v1/sessions", json=start)
    assert late.status_code == 401 and late.json()["code"] == "credential.invalid"
    assert start_with(world, new_key).status_code == 201
    # the session the old key started ends with it
    ended = world.tool(service, "tool:read_ledger", ("service", "billing"))
    assert ended["decision"] is False
    assert world.session(service)["status_reason"] == "credential_expired"
    shown = world.admin.get("/admin/v1/subjects/billing", params={"type": "service"}).json()
    used = {a["id"]: a for a in shown["authenticators"]}
    assert used[old_id]["last_used_at"] is not None
    text = json.dumps(shown)  # never a key, its secret part, or its digest
    assert old_key not in text and new_key not in text
    assert old_key.rsplit("_", 1)[1] not in text and "digest" not in text and "record" not in text


def test_a_disabled_service_is_denied_everywhere(world: World):
    world.nhi("service", "billing", owner="team:payments")
    key = world.key("service", "billing")["key"]
    service = world.app.post("/v1/sessions", json={"credential": {"api_key": key}}).json()
    session = service["session"]["id"]
    assert world.tool(session, "tool:read_ledger", ("service", "billing"))["decision"] is True
    disabled = world.admin.patch("/admin/v1/subjects/billing", params={"type": "service"},
                                 json={"status": "disabled"})  # fmt: skip
    assert disabled.status_code == 200, disabled.text
    assert world.session(session)["status"] == "revoked"
    for tool in ("tool:read_ledger", "tool:match_invoice", "login"):
        assert world.tool(session, tool, ("service", "billing"))["decision"] is False
    again = world.app.post("/v1/sessions", json={"credential": {"api_key": key}})
    assert again.status_code == 403 and again.json()["code"] == "subject.disabled"
    sessionless = world.app.post("/access/v1/evaluation", json={
        "subject": {"type": "service", "id": "billing"}, "action": {"name": "tool:read_ledger"},
        "resource": {"type": "tool", "id": "x"}})  # fmt: skip
    assert sessionless.status_code == 200 and sessionless.json()["decision"] is False


def test_a_client_assertion_is_accepted_once(world: World):
    world.nhi("service", "ledger", owner="team:finance")
    signer = Signer()
    registered = world.admin.post("/admin/v1/subjects/ledger/assertion-keys",
                                  params={"type": "service"},
                                  json={"jwks": {"keys": [signer.jwk()]}})  # fmt: skip
    assert registered.status_code == 201, registered.text
    subject = {"type": "service", "id": "ledger"}
    assertion = signer.assertion("ledger", jti="once")
    first = world.app.post("/v1/sessions", json={
        "subject": subject, "credential": {"client_assertion": assertion}})  # fmt: skip
    assert first.status_code == 201, first.text
    assert first.json()["session"]["aal"] == 2
    replayed = world.app.post("/v1/sessions", json={
        "subject": subject, "credential": {"client_assertion": assertion}})  # fmt: skip
    assert replayed.status_code == 401 and replayed.json()["code"] == "credential.invalid"
    other_aud = world.app.post("/v1/sessions", json={"subject": subject, "credential": {
        "client_assertion": signer.assertion("ledger", aud="https://elsewhere")}})  # fmt: skip
    assert other_aud.status_code == 401
    stranger = Signer()
    forged = world.app.post("/v1/sessions", json={"subject": subject, "credential": {
        "client_assertion": stranger.assertion("ledger")}})  # fmt: skip
    assert forged.status_code == 401
    fresh = world.app.post("/v1/sessions", json={"subject": subject, "credential": {
        "client_assertion": signer.assertion("ledger")}})  # fmt: skip
    assert fresh.status_code == 201, fresh.text


def test_racing_client_assertions_each_jti_once_and_distinct_ones_all(world: World):
    world.nhi("service", "ledger", owner="team:finance")
    signer = Signer()
    world.admin.post("/admin/v1/subjects/ledger/assertion-keys", params={"type": "service"},
                     json={"jwks": {"keys": [signer.jwk()]}})  # fmt: skip
    subject = {"type": "service", "id": "ledger"}

    def start(assertion: str) -> int:
        with httpx.Client(base_url=world.server.url, timeout=10,
                          headers=world.app.headers) as client:  # fmt: skip
            body = {"subject": subject, "credential": {"client_assertion": assertion}}
            return client.post("/v1/sessions", json=body).status_code

    same = signer.assertion("ledger", jti="raced")
    with ThreadPoolExecutor(8) as pool:
        replayed = list(pool.map(start, [same] * 8))
        distinct = list(pool.map(start, [signer.assertion("ledger") for _ in range(8)]))
    assert sorted(replayed) == [201] + [401] * 7
    assert distinct == [201] * 8


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"credential": {"api_key": "jct_nope"}}, 401, "credential.invalid"),
        ({"credential": {"api_key": "x", "client_assertion": "y"}}, 400, "request.invalid"),
        ({"credential": {}}, 400, "request.invalid"),
        ({"subject": {"type": "agent", "id": "bot"}, "proofs": []}, 400, "delegation.required"),
        ({"credential": {"api_key": "KEY"}, "delegation": {"session_id": "s_nope"}}, 403,
         "delegation.invalid"),
        ({"credential": {"api_key": "KEY"}, "delegation": {"session_id": "USER"},
          "task": {"id": "t", "purpose": "p"}}, 400, "task.invalid"),
        ({"credential": {"api_key": "KEY"}, "delegation": {"session_id": "USER"},
          "task": {"id": "t", "purpose": "p", "expires_in": "3d"}}, 400, "task.invalid"),
        ({"credential": {"api_key": "KEY"}, "delegation": {"session_id": "USER"},
          "task": {"id": "t", "purpose": "p", "expires_in": "1h", "x": 1}}, 400, "task.invalid"),
    ],
)  # fmt: skip
def test_bad_starts_are_refused_and_make_no_session(
    world: World, body: dict[str, Any], status: int, code: str
):
    key = world.key("agent", "bot")["key"]
    user = world.user_session("ana")
    text = json.dumps(body).replace('"KEY"', json.dumps(key)).replace('"USER"', json.dumps(user))
    answer = world.app.post("/v1/sessions", content=text,
                            headers={"Content-Type": "application/json"})  # fmt: skip
    assert (answer.status_code, answer.json()["code"]) == (status, code), answer.text
    listed = world.admin.get("/admin/v1/decisions", params={"subject_id": "bot"})
    assert listed.status_code == 200
    assert listed.json()["decisions"] == []  # no agent session decided anything


def test_a_key_with_a_label_too_long_is_refused_and_nothing_is_issued(world: World):
    refused = world.admin.post("/admin/v1/subjects/bot/keys", params={"type": "agent"},
                               json={"label": "x" * 201})  # fmt: skip
    assert refused.status_code == 400 and refused.json()["code"] == "request.invalid"
    shown = world.admin.get("/admin/v1/subjects/bot", params={"type": "agent"}).json()
    assert shown["authenticators"] == []
