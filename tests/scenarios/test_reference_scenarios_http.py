"""The five reference scenarios of DESIGN.md, end to end over HTTP.

Each test runs against a real `juncture serve --bundle examples/journeys` (what `make run`
serves) with only the shipped examples, and makes only the calls docs/api.md and docs/agents.md
document: admin keys from the bootstrap token file, `POST /admin/v1/apps`, sessions started
with the proofs the journey's login needs (`POST /v1/sessions`), decisions through the AuthZEN
evaluation API, challenges answered with `POST /v1/challenges/{id}/verify`, context updates,
approvals, the inventory, and `juncture publish` as the README shows it.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.server import JUNCTURE, Server
from service.test_http import admin
from service.test_signals_http import write_city_db

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "journeys"
WORKFORCE_V2 = ROOT / "examples" / "versions" / "workforce_v2"

OFFICE = "10.1.2.3"  # the shop's and the workforce's trusted network
BERLIN = "81.0.0.7"  # DE in the test geolocation database
TOKYO = "83.0.0.9"  # JP: not an allowed country for finance
ACME_HQ = "198.51.100.5"  # the partner acme's registered network `acme_hq`
HOTEL = "203.0.113.200"  # no partner's network


class Deployment:
    """The shipped examples served as `make run` serves them (plus a geolocation database, as
    `juncture serve --geo-db` documents)."""

    def __init__(self, root: Path, store_calls: str, db: str | None = None) -> None:
        geo = write_city_db(root / "city.mmdb")
        args = ("--geo-db", str(geo), "--store-calls", store_calls)
        # On PostgreSQL the server keeps its key files in its directory (docs/deploy.md).
        where, cwd = (db, root) if db is not None else (root / "juncture.db", None)
        self.server = Server(where, EXAMPLES, args=args, cwd=cwd).start()

    def app(self, name: str, methods: tuple[str, ...]) -> httpx.Client:
        with admin(self.server) as client:
            made = client.post(
                "/admin/v1/apps", json={"name": name, "assertable_methods": list(methods)}
            )
        assert made.status_code == 201, made.text
        return self.server.client(made.json()["key"])


# Requests call the store on the event loop (SQLite's default) or in worker threads (what a
# database server gets, api/boundary.py): every scenario holds both ways, and on PostgreSQL.
@pytest.fixture(params=["loop", "threads", "postgres"])
def deployment(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Deployment]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_server").create_database()
        made = Deployment(tmp_path, "auto", db=url)
    else:
        made = Deployment(tmp_path, request.param)
    yield made
    made.server.stop()


def login(client: httpx.Client, subject: dict[str, Any], proofs: list[str], **context: Any) -> str:
    """Start a session with the proofs the journey's login requires: the login is allowed and
    the session is active."""
    answer = client.post(
        "/v1/sessions",
        json={"subject": subject, "proofs": [{"method": m} for m in proofs], "context": context},
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["decision"]["outcome"] == "allow", body
    assert body["session"]["status"] == "active", body
    return str(body["session"]["id"])


def ask(
    client: httpx.Client,
    session: str,
    subject: dict[str, Any],
    action: str,
    properties: dict[str, Any] | None = None,
    **context: Any,
) -> dict[str, Any]:
    """One AuthZEN evaluation bound to the session: Juncture's answer, and `decision`."""
    answer = client.post(
        "/access/v1/evaluation",
        json={
            "subject": {"type": subject["type"], "id": subject["id"]},
            "action": {"name": action, **({"properties": properties} if properties else {})},
            "resource": {"type": "app", "id": action},
            "context": {"session_id": session, **context},
        },
    )
    assert answer.status_code == 200, answer.text
    out: dict[str, Any] = answer.json()["context"]
    out["decision"] = answer.json()["decision"]
    assert out["decision"] is (out["outcome"] == "allow")
    return out


def verify(client: httpx.Client, challenge_id: str, method: str) -> httpx.Response:
    """Answer a challenge with a method the app's identity provider verified (asserted)."""
    return client.post(f"/v1/challenges/{challenge_id}/verify", json={"method": method})


def posture(**fields: Any) -> dict[str, Any]:
    """A device posture as the MDM reports it, fresh."""
    return {
        "id": "lt-1",
        "managed": True,
        "compliant": True,
        "posture_at": datetime.now(UTC).isoformat(),
        **fields,
    }


# -- 1. the shop: step-up only for sensitive changes ----------------------------------------------

ALICE = {"type": "user", "id": "alice"}


def test_scenario_1_a_shopper_browses_freely_and_steps_up_only_to_change_the_email(
    deployment: Deployment,
) -> None:
    shop = deployment.app("shop-web", ("password", "totp"))
    session = login(shop, ALICE, ["password"], network={"ip": OFFICE}, device=posture())
    for action in ("browse", "view_orders", "browse"):
        answer = ask(shop, session, ALICE, action, ip=OFFICE)
        assert answer["outcome"] == "allow", answer
    change = ask(shop, session, ALICE, "change_email", ip=OFFICE)
    assert (change["outcome"], change["methods"]) == ("step_up", ["totp", "passkey"])
    assert change["decision"] is False and change["www_authenticate"]
    verified = verify(shop, change["challenge_id"], "totp")
    assert verified.status_code == 200, verified.text
    after = verified.json()
    assert after["decision"]["outcome"] == "allow"
    assert after["decision"]["scopes"] == ["account:write"]
    assert after["session"]["aal"] == 2
    # Within the five minutes, the payment method needs no second step-up; browsing never did.
    payment = ask(shop, session, ALICE, "change_payment_method", ip=OFFICE)
    assert payment["outcome"] == "allow", payment
    assert ask(shop, session, ALICE, "browse", ip=OFFICE)["outcome"] == "allow"


# -- 2. the portal: posture and geolocation re-checked before a sensitive dashboard ---------------


def finance_dashboard(
    portal: httpx.Client, session: str, subject: dict[str, Any], ip: str
) -> dict[str, Any]:
    """Ask for the finance dashboard, answering its step-ups (a passkey, then the device's
    attestation) as the portal's identity provider and MDM would."""
    answer = ask(portal, session, subject, "dashboard:finance-q3", ip=ip)
    for _ in range(2):
        if answer["outcome"] != "step_up":
            break
        verified = verify(portal, answer["challenge_id"], answer["methods"][0])
        assert verified.status_code == 200, verified.text
        answer = ask(portal, session, subject, "dashboard:finance-q3", ip=ip)
    return answer


def test_scenario_2_the_portal_rechecks_posture_and_location_instead_of_the_login(
    deployment: Deployment,
) -> None:
    portal = deployment.app("portal", ("corp_sso", "passkey", "device_cert", "totp"))
    session = login(portal, ALICE, ["corp_sso"], network={"ip": BERLIN}, device=posture())
    assert ask(portal, session, ALICE, "home", ip=BERLIN)["outcome"] == "allow"
    assert ask(portal, session, ALICE, "dashboard:sales", ip=BERLIN)["outcome"] == "allow"
    # The finance dashboard asks for a passkey and the device's attestation now, whatever the
    # login was.
    finance = finance_dashboard(portal, session, ALICE, BERLIN)
    assert finance["outcome"] == "allow", finance
    assert finance["scopes"] == ["dashboard:read", "finance:read"]
    # The same session seconds later from Tokyo: whoever holds it now, it is not the employee.
    away = ask(portal, session, ALICE, "dashboard:finance-q3", ip=TOKYO)
    assert (away["outcome"], away["reason"]) == ("revoke", "impossible_travel")
    # An employee who logged in from Tokyo: the country of this request is not allowed.
    carol = {"type": "user", "id": "carol"}
    far = login(portal, carol, ["corp_sso"], network={"ip": TOKYO}, device=posture())
    finance = finance_dashboard(portal, far, carol, TOKYO)
    assert (finance["outcome"], finance["reason"]) == ("deny", "country_not_allowed")
    # Another employee whose laptop the MDM now reports out of compliance: dashboards close.
    bob = {"type": "user", "id": "bob"}
    other = login(portal, bob, ["corp_sso"], network={"ip": BERLIN}, device=posture())
    assert ask(portal, other, bob, "dashboard:sales", ip=BERLIN)["outcome"] == "allow"
    updated = portal.post(
        f"/v1/sessions/{other}/signals", json={"context": {"device": posture(compliant=False)}}
    )
    assert updated.status_code == 200, updated.text
    refused = ask(portal, other, bob, "dashboard:sales", ip=BERLIN)
    assert (refused["outcome"], refused["reason"]) == ("deny", "device_not_compliant")
    assert ask(portal, other, bob, "home", ip=BERLIN)["outcome"] == "allow"


# -- 3. the partner app: an unfamiliar network is rerouted to a lower-privilege path --------------

PARTNER = {"type": "user", "id": "acme:jdoe", "properties": {"org": "acme"}}


def test_scenario_3_a_partner_session_from_an_unfamiliar_network_is_rerouted(
    deployment: Deployment,
) -> None:
    partner = deployment.app("partner-app", ("partner_idp", "passkey", "password"))
    session = login(partner, PARTNER, ["partner_idp"], network={"ip": ACME_HQ})
    assert ask(partner, session, PARTNER, "orders:read", ip=ACME_HQ)["outcome"] == "allow"
    moved = ask(partner, session, PARTNER, "orders:read", ip=HOTEL)
    assert moved["outcome"] == "reroute" and moved["decision"] is False
    assert (moved["path"], moved["scopes"]) == ("/partner/limited", ["orders:read:summary"])
    limited = ask(partner, session, PARTNER, "limited:home", ip=HOTEL)
    assert limited["outcome"] == "allow", limited
    writing = ask(partner, session, PARTNER, "orders:write", ip=HOTEL)
    assert (writing["outcome"], writing["path"]) == ("reroute", "/partner/limited")
    # Back on the registered network, the full app again.
    assert ask(partner, session, PARTNER, "orders:read", ip=ACME_HQ)["outcome"] == "allow"


# -- 4. the AI agent: task, delegation, approval and grants decide, not a role --------------------

ANA = {"type": "user", "id": "u-17"}
AGENT = {"type": "agent", "id": "ops-assistant"}
TRANSFER = "tool:transfer_funds"


def agent_key(deployment: Deployment) -> str:
    with admin(deployment.server) as client:
        made = client.post(
            "/admin/v1/subjects",
            json={**AGENT, "owner": "team:finance-ops", "description": "operations assistant"},
        )
        assert made.status_code == 201, made.text
        key = client.post(
            "/admin/v1/subjects/ops-assistant/keys?type=agent",
            json={"label": "prod", "scopes": ["login", "tool:*"], "expires_in": "90d"},
        )
    assert key.status_code == 201, key.text
    return str(key.json()["key"])


def live_grants(deployment: Deployment) -> list[dict[str, Any]]:
    with admin(deployment.server) as client:
        found = client.get("/admin/v1/identities/agent/ops-assistant")
    assert found.status_code == 200, found.text
    grants: list[dict[str, Any]] = found.json()["live_grants"]
    return grants


def pending(client: httpx.Client, user_session: str) -> list[dict[str, Any]]:
    listed = client.get("/v1/approvals", params={"session_id": user_session})
    assert listed.status_code == 200, listed.text
    approvals: list[dict[str, Any]] = listed.json()["approvals"]
    return approvals


def approve(client: httpx.Client, user_session: str, approval_id: str) -> dict[str, Any]:
    """The person approves from their own session; approving steps up to a second factor
    first (the ops-users journey), and is recorded once that is verified."""
    body = {"session_id": user_session, "answer": "approve"}
    answered = client.post(f"/v1/approvals/{approval_id}", json=body)
    assert answered.status_code == 200, answered.text
    decision = answered.json()["decision"]
    if decision["outcome"] == "step_up":
        assert decision["step_up"]["methods"] == ["totp", "passkey"]
        assert verify(client, decision["challenge"]["id"], "totp").status_code == 200
        answered = client.post(f"/v1/approvals/{approval_id}", json=body)
        assert answered.status_code == 200, answered.text
    result: dict[str, Any] = answered.json()
    assert result["decision"]["outcome"] == "allow", result
    return result


def test_scenario_4_an_agents_access_follows_its_task_delegation_and_approvals(
    deployment: Deployment,
) -> None:
    key = agent_key(deployment)
    ops = deployment.app("ops-assistant", ("password", "totp"))
    # Ana logs in to the assistant's app and delegates a vendor payment to it.
    ana = login(ops, ANA, ["password"], network={"ip": OFFICE})
    started = ops.post(
        "/v1/sessions",
        json={
            "credential": {"api_key": key},
            "delegation": {"session_id": ana},
            "task": {
                "id": "t-501",
                "purpose": "vendor_payment",
                "tools": ["tool:match_invoice", TRANSFER],
                "expires_in": "1h",
            },
        },
    )
    assert started.status_code == 201, started.text
    assert started.json()["decision"]["outcome"] == "allow", started.json()
    agent = str(started.json()["session"]["id"])

    # The task decides the tools: in scope, out of scope.
    assert ask(ops, agent, AGENT, "tool:read_ledger")["outcome"] == "allow"
    assert ask(ops, agent, AGENT, "tool:match_invoice")["outcome"] == "allow"
    outside = ask(ops, agent, AGENT, "tool:send_email")
    assert (outside["outcome"], outside["reason"]) == ("deny", "tool_outside_task")
    too_much = ask(ops, agent, AGENT, TRANSFER, {"amount": 9000, "payee": "ACME"})
    assert (too_much["outcome"], too_much["reason"]) == ("deny", "over_task_limit")

    # Moving money: Ana is asked to approve this very transfer.
    request = {"amount": 1200, "payee": "ACME"}
    transfer = ask(ops, agent, AGENT, TRANSFER, request)
    assert (transfer["outcome"], transfer["methods"]) == ("step_up", ["manager_approval"])
    waiting = verify(ops, transfer["challenge_id"], "manager_approval")
    assert (waiting.status_code, waiting.json()["code"]) == (409, "approval.pending")
    [question] = pending(ops, ana)
    assert question["action"] == TRANSFER
    assert question["request"]["action"]["properties"] == request
    assert question["agent"]["session_id"] == agent
    approve(ops, ana, question["id"])
    done = verify(ops, transfer["challenge_id"], "manager_approval")
    assert done.status_code == 200, done.text
    allowed = done.json()["decision"]
    assert (allowed["outcome"], allowed["scopes"]) == ("allow", ["payments:transfer"])
    assert allowed["obligations"] == [{"notify": "finance-ops"}]
    # The approval answered that request only: it is spent, and it left no grant behind.
    assert not allowed.get("ttl")
    assert not [g for g in live_grants(deployment) if "payments:transfer" in g["scopes"]]
    again = ask(ops, agent, AGENT, TRANSFER, request)
    assert again["outcome"] == "step_up", again
    other_payee = ask(ops, agent, AGENT, TRANSFER, {"amount": 1200, "payee": "EVIL"})
    assert other_payee["outcome"] == "step_up", other_payee
    [newest] = pending(ops, ana)  # one question at a time: the latest request
    assert newest["request"]["action"]["properties"] == {"amount": 1200, "payee": "EVIL"}
    assert newest["id"] != question["id"]

    # A new task changes the access at once: reconciling may e-mail but not move money.
    moved = ops.post(
        f"/v1/sessions/{agent}/task",
        json={"task": {"id": "t-502", "purpose": "invoice_reconciliation", "expires_in": "1h"}},
    )
    assert moved.status_code == 200, moved.text
    assert ask(ops, agent, AGENT, "tool:send_email")["outcome"] == "allow"
    refused = ask(ops, agent, AGENT, TRANSFER, {"amount": 10, "payee": "ACME"})
    assert (refused["outcome"], refused["reason"]) == ("deny", "tool_outside_task")

    # Ana logs out: the agent acting for her is revoked with her session.
    assert ops.post(f"/v1/sessions/{ana}/end").status_code == 200
    ended = ask(ops, agent, AGENT, "tool:read_ledger")
    assert (ended["outcome"], ended["reason"]) == ("deny", "session_revoked"), ended


# -- 5. a changed journey is published while sessions are live ------------------------------------

EMPLOYEE = {"type": "user", "id": "e-220"}


def active_version(server: Server) -> str:
    return str(httpx.get(f"{server.url}/healthz", timeout=5).json()["version"])


def test_scenario_5_publishing_a_changed_journey_changes_the_very_next_decision(
    deployment: Deployment,
) -> None:
    server = deployment.server
    expenses = deployment.app("expenses", ("password", "totp", "passkey"))
    shop = deployment.app("shop-web", ("password", "totp"))
    on_site = login(expenses, EMPLOYEE, ["password"], network={"ip": "10.8.0.12"})
    remote = login(expenses, EMPLOYEE, ["password"], network={"ip": "198.51.100.3"})
    shopper = login(shop, ALICE, ["password"], network={"ip": OFFICE})
    v1 = active_version(server)
    before = ask(expenses, on_site, EMPLOYEE, "expenses:approve", ip="10.8.0.12")
    assert (before["outcome"], before["version"]) == ("allow", v1)
    assert ask(expenses, remote, EMPLOYEE, "expenses:approve", ip="198.51.100.3")["decision"]
    standing = expenses.get(f"/v1/sessions/{on_site}").json()["standing"]
    assert "expenses:approve" in standing

    # README "A first look": publish version 2 to the running server.
    published = subprocess.run(
        [
            str(JUNCTURE),
            "publish",
            str(WORKFORCE_V2),
            "--server",
            server.url,
            "--token",
            server.admin_token(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert published.returncode == 0, published.stdout + published.stderr
    v2 = active_version(server)
    assert v2 != v1

    # The very next decision of each live session follows version 2.
    after = ask(expenses, on_site, EMPLOYEE, "expenses:approve", ip="10.8.0.12")
    assert (after["outcome"], after["version"]) == ("step_up", v2)
    assert after["methods"] == ["totp", "passkey"]
    away = ask(expenses, remote, EMPLOYEE, "expenses:approve", ip="198.51.100.3")
    assert (away["outcome"], away["reason"], away["version"]) == (
        "deny",
        "off_corporate_network",
        v2,
    )
    # What did not change decides as before, and every other app keeps its journey.
    assert ask(expenses, on_site, EMPLOYEE, "expenses:submit", ip="10.8.0.12")["decision"]
    browse = ask(shop, shopper, ALICE, "browse", ip=OFFICE)
    assert (browse["outcome"], browse["version"]) == ("allow", v2)
    # The session that held approval under v1 lost it: the publish's sweep withdraws it.
    deadline = time.monotonic() + 20
    while "expenses:approve" in expenses.get(f"/v1/sessions/{on_site}").json()["standing"]:
        assert time.monotonic() < deadline, "the sweep did not withdraw the standing allow"
        time.sleep(0.1)
    # Verifying the second factor the new version asks for opens it again.
    verified = verify(expenses, after["challenge_id"], "totp")
    assert verified.status_code == 200, verified.text
    assert verified.json()["decision"]["outcome"] == "allow"


def test_scenario_5_rolls_back_to_version_1(deployment: Deployment) -> None:
    """`juncture rollback` (the other half of the demo) returns every session to v1 at once."""
    server = deployment.server
    expenses = deployment.app("expenses", ("password",))
    session = login(expenses, EMPLOYEE, ["password"], network={"ip": "10.8.0.12"})
    v1 = active_version(server)
    token = server.admin_token()
    for command in (
        ["publish", str(WORKFORCE_V2)],
        ["rollback", v1],
    ):
        ran = subprocess.run(
            [str(JUNCTURE), *command, "--server", server.url, "--token", token],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
    back = ask(expenses, session, EMPLOYEE, "expenses:approve", ip="10.8.0.12")
    assert (back["outcome"], back["version"]) == ("allow", v1)
