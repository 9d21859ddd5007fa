"""The decision service end to end over real HTTP: sessions, step-up, live publish, rollback,
who may call, context updates, durability across SIGKILL, bad input."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .server import Server

V1 = """\
journey: acct
applies_to: [web, other]
methods:
  password: {kind: password, aal: 1}
  totp: {kind: totp, aal: 2}
networks:
  blocked: [203.0.113.0/24]
guard:
  - {if: "signals.credential_compromised", revoke: credential_compromised}
  - if: "has(network.ip) && in_network(network.ip, 'blocked')"
    reroute: {path: /limited, scopes: [read]}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {scopes: [app], ttl: 1h}}]
  change_email: [{require: {any: [totp], within: WINDOW}}, {allow: {}}]
  "*": [{deny: unknown_action}]
"""


def bundle(root: Path, window: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "acct.yaml").write_text(V1.replace("WINDOW", window))
    return root


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path / "j.db", bundle(tmp_path / "v1", "10m")).start()
    try:
        yield running
    finally:
        running.stop()


def admin(server: Server, token: str | None = None) -> httpx.Client:
    return httpx.Client(
        base_url=server.url,
        timeout=10,
        headers={"Authorization": f"Bearer {token or server.admin_token()}"},
    )


def new_app(
    server: Server,
    name: str = "web",
    methods: tuple[str, ...] = ("password", "totp"),
    journeys: tuple[str, ...] = (),
) -> tuple[str, httpx.Client]:
    with admin(server) as client:
        response = client.post(
            "/admin/v1/apps",
            json={"name": name, "assertable_methods": list(methods), "journeys": list(journeys)},
        )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["key"].startswith("jct_app_")
    return body["app"]["id"], server.client(body["key"])


def start(client: httpx.Client, subject: str = "alice", **context: object) -> dict:
    response = client.post(
        "/v1/sessions",
        json={
            "subject": {"type": "user", "id": subject},
            "proofs": [{"method": "password"}],
            "context": context,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def evaluation(client: httpx.Client, session_id: str, action: str = "change_email") -> dict:
    response = client.post(
        "/access/v1/evaluation",
        json={
            "subject": {"type": "user", "id": "alice"},
            "action": {"name": action},
            "resource": {"type": "account", "id": "alice"},
            "context": {"session_id": session_id},
        },
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_login_step_up_publish_and_rollback_reach_a_live_session(server: Server, tmp_path: Path):
    _, web = new_app(server)
    started = start(web)
    assert started["decision"]["outcome"] == "allow"
    assert started["decision"]["scopes"] == ["app"]
    session = started["session"]
    assert session["status"] == "active" and session["aal"] == 1 and session["handle"]

    first = evaluation(web, session["id"])
    assert first["decision"] is False
    context = first["context"]
    assert context["outcome"] == "step_up"
    assert context["acr_values"] == "urn:juncture:aal2 urn:juncture:aal3"
    assert context["max_age"] == 600
    assert context["methods"] == ["totp"] and context["challenge_id"].startswith("ch_")
    assert 'error="insufficient_user_authentication"' in context["www_authenticate"]

    verified = web.post(f"/v1/challenges/{context['challenge_id']}/verify", json={"method": "totp"})
    assert verified.status_code == 200, verified.text
    assert verified.json()["decision"]["outcome"] == "allow"
    assert verified.json()["session"]["aal"] == 2
    assert verified.json()["session"]["handle"] != session["handle"]  # AAL rose: new handle
    again = web.post(f"/v1/challenges/{context['challenge_id']}/verify", json={"method": "totp"})
    assert (again.status_code, again.json()["code"]) == (409, "challenge.not_live")

    assert evaluation(web, session["id"])["decision"] is True
    with admin(server) as client:
        versions = client.get("/admin/v1/versions").json()["versions"]
        assert len(versions) == 1 and versions[0]["active"]
        v1 = versions[0]["id"]
        files = {"acct.yaml": (bundle(tmp_path / "v2", "1s") / "acct.yaml").read_text()}
        uploaded = client.post("/admin/v1/versions", json={"files": files, "activate": True})
        assert uploaded.status_code == 201, uploaded.text
        v2 = uploaded.json()["id"]
    time.sleep(1.2)
    tightened = evaluation(web, session["id"])
    assert tightened["decision"] is False
    assert tightened["context"]["outcome"] == "step_up"
    assert tightened["context"]["version"] == v2
    with admin(server) as client:
        assert client.post(f"/admin/v1/versions/{v1}/activate").status_code == 200
        diff = client.get(f"/admin/v1/versions/{v2}/diff", params={"against": v1}).json()["diff"]
    assert "-  change_email: [{require: {any: [totp], within: 10m}}" in diff
    restored = evaluation(web, session["id"])
    assert restored["decision"] is True and restored["context"]["version"] == v1


def test_a_bundle_with_errors_is_refused_with_every_problem(server: Server):
    with admin(server) as client:
        bad = {
            "files": {
                "a.yaml": "journey: a\ncheckpoints:\n  x: [{require: {any: [totpp]}}]\n"
                "  y: [{if: 'foo.bar', allow: {}}]\n"
            }
        }
        response = client.post("/admin/v1/versions", json=bad)
        assert response.status_code == 422
        problems = response.json()["problems"]
        codes = {p["code"] for p in problems if p["severity"] == "error"}
        assert codes == {"policy.ref.unknown_method", "policy.cel.unknown_variable"}
        assert len(client.get("/admin/v1/versions").json()["versions"]) == 1


def test_who_may_call(server: Server):
    app_a, web = new_app(server)
    _, other = new_app(server, "other")
    session = start(web)["session"]["id"]
    anonymous = httpx.post(f"{server.url}/access/v1/evaluation", json={})
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert anonymous.json()["code"] == "auth.missing"
    forged = httpx.get(
        f"{server.url}/v1/sessions/{session}",
        headers={"Authorization": "Bearer jct_app_000000000000.nope"},
    )
    assert (forged.status_code, forged.json()["code"]) == (401, "auth.invalid")
    # another app can neither read nor use this session
    assert other.get(f"/v1/sessions/{session}").status_code == 404
    foreign = other.post(
        "/access/v1/evaluation",
        json={
            "subject": {"type": "user", "id": "alice"},
            "action": {"name": "change_email"},
            "resource": {"type": "account", "id": "alice"},
            "context": {"session_id": session},
        },
    )
    assert foreign.status_code == 404
    # an app key is not an admin key, and admin scopes are enforced
    assert web.get("/admin/v1/versions").status_code == 401
    with admin(server) as client:
        assert client.get("/admin/v1/apps").status_code == 200
    import subprocess

    from .server import JUNCTURE

    reader = subprocess.run(
        [str(JUNCTURE), "admin-key", "--db", str(server.db), "--name", "ro", "--scope", "read"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with admin(server, reader) as client:
        assert client.get("/admin/v1/versions").status_code == 200
        denied = client.post("/admin/v1/versions", json={"files": {}})
        assert (denied.status_code, denied.json()["code"]) == (403, "auth.forbidden")
    # an app bound to other journeys is denied by this one
    _, bound = new_app(server, "web", journeys=("elsewhere",))
    refused = bound.post(
        "/v1/sessions", json={"subject": {"id": "carol"}, "proofs": [{"method": "password"}]}
    ).json()
    assert (refused["decision"]["outcome"], refused["decision"]["reason"]) == (
        "deny",
        "journey_not_allowed",
    )
    # a rotated key keeps working during the overlap only
    with admin(server) as client:
        overlapping = client.post(f"/admin/v1/apps/{app_a}/keys", json={"overlap_seconds": 600})
    assert overlapping.status_code == 201
    assert web.get(f"/v1/sessions/{session}").status_code == 200  # the old key, in the overlap
    with admin(server) as client:
        rotated = client.post(f"/admin/v1/apps/{app_a}/keys", json={"overlap_seconds": 0})
    assert rotated.status_code == 201
    assert web.get(f"/v1/sessions/{session}").status_code == 401
    fresh = httpx.get(
        f"{server.url}/v1/sessions/{session}",
        headers={"Authorization": f"Bearer {rotated.json()['key']}"},
    )
    assert fresh.status_code == 200


def test_context_updates_rerun_the_guard_at_once(server: Server):
    _, web = new_app(server)
    session = start(web)["session"]["id"]
    moved = web.post(
        f"/v1/sessions/{session}/signals", json={"context": {"network": {"ip": "203.0.113.9"}}}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["decision"]["outcome"] == "reroute"
    assert moved.json()["session"]["path"] == "/limited"
    rerouted = evaluation(web, session)  # AuthZEN: false, and where to go on (docs/api.md)
    assert rerouted["decision"] is False
    context = rerouted["context"]
    assert (context["outcome"], context["path"], context["scopes"]) == (
        "reroute",
        "/limited",
        ["read"],
    )
    leaked = web.post(
        f"/v1/sessions/{session}/signals", json={"signals": {"credential_compromised": True}}
    )
    assert leaked.json()["decision"]["outcome"] == "revoke"
    read = web.get(f"/v1/sessions/{session}").json()
    assert (read["status"], read["status_reason"]) == ("revoked", "credential_compromised")
    assert read["signals"]["credential_compromised"] is True
    assert read["observed"]["ip"] == "203.0.113.9"
    assert read["risk"] == {"score": 0, "level": "low", "reasons": []}
    assert read["last_decision"]["action"] == "context_update"
    assert read["last_decision"]["outcome"] == "revoke"
    after = evaluation(web, session, "login")
    assert after["decision"] is False and after["context"]["reason"] == "session_revoked"


def test_acknowledged_changes_survive_sigkill(tmp_path: Path):
    server = Server(tmp_path / "k.db", bundle(tmp_path / "v1", "10m")).start()
    try:
        _, web = new_app(server)
        session = start(web)["session"]["id"]
        challenge = evaluation(web, session)["context"]["challenge_id"]
        assert (
            web.post(f"/v1/challenges/{challenge}/verify", json={"method": "totp"}).status_code
            == 200
        )
        server.kill()
        server.start()
        read = web.get(f"/v1/sessions/{session}").json()
        assert [p["method"] for p in read["proofs"]] == ["password", "totp"]
        assert (
            web.post(
                f"/v1/sessions/{session}/end", json={"revoke_reason": "stolen_device"}
            ).status_code
            == 200
        )
        with admin(server) as client:
            files = {"acct.yaml": (bundle(tmp_path / "v2", "1s") / "acct.yaml").read_text()}
            v2 = client.post("/admin/v1/versions", json={"files": files, "activate": True})
        server.kill()
        server.start()
        read = web.get(f"/v1/sessions/{session}").json()
        assert (read["status"], read["status_reason"]) == ("revoked", "stolen_device")
        with admin(server) as client:
            active = [v for v in client.get("/admin/v1/versions").json()["versions"] if v["active"]]
        assert [v["id"] for v in active] == [v2.json()["id"]]
    finally:
        server.stop()


def test_bad_input_gets_problem_details_and_changes_nothing(server: Server):
    _, web = new_app(server)
    json_type = {"Content-Type": "application/json"}
    malformed = web.post(
        "/v1/sessions", content=b"{not json", headers={"X-Request-ID": "abc-1"} | json_type
    )
    assert (malformed.status_code, malformed.json()["code"]) == (400, "request.malformed")
    assert malformed.headers["x-request-id"] == "abc-1"
    deep = web.post("/v1/sessions", content=b"[" * 100, headers=json_type)
    assert deep.json()["code"] == "request.too_deep"
    huge = web.post("/v1/sessions", content=b" " * (2 << 20))
    assert (huge.status_code, huge.json()["code"]) == (413, "request.too_large")
    wrong = web.post("/v1/sessions", json={"subject": {"id": 5}})
    assert (wrong.status_code, wrong.json()["code"]) == (400, "request.invalid")
    assert "$.subject.id" in wrong.json()["detail"]
    not_assertable = web.post(
        "/v1/sessions", json={"subject": {"id": "a"}, "proofs": [{"method": "passkey"}]}
    )
    assert not_assertable.status_code == 403
    assert web.get("/nope").json()["code"] == "request.not_found"
    with admin(server) as client:
        assert client.get("/admin/v1/decisions").json()["decisions"] == []


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/problem+json",
        "application/json; charset=latin-1",
    ],
)
def test_a_json_body_must_be_declared_json(server: Server, content_type: str | None):
    """A body the native API reads as JSON must say so; nothing is created when it does not."""
    _, web = new_app(server)
    body = json.dumps(
        {"subject": {"type": "user", "id": "alice"}, "proofs": [{"method": "password"}]}
    ).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    refused = web.post("/v1/sessions", content=body, headers=headers)
    assert refused.status_code == 400, refused.text
    assert refused.json()["code"] == "request.content_type"
    assert refused.headers["content-type"] == "application/problem+json"
    with admin(server) as client:
        assert client.get("/admin/v1/decisions").json()["decisions"] == []  # no session began
    for declared in ("application/json", "application/json; charset=utf-8", "Application/JSON"):
        started = web.post("/v1/sessions", content=body, headers={"Content-Type": declared})
        assert started.status_code == 201, started.text
    session = started.json()["session"]["id"]
    ended = web.post(f"/v1/sessions/{session}/end")  # an optional body may be left out
    assert ended.status_code == 200, ended.text


def test_decision_log_metrics_and_openapi(server: Server):
    _, web = new_app(server)
    session = start(web)["session"]["id"]
    evaluation(web, session)
    evaluation(web, session, "delete_everything")
    with admin(server) as client:
        log = client.get("/admin/v1/decisions", params={"session_id": session}).json()
        assert [d["action"] for d in log["decisions"]] == [
            "delete_everything",
            "change_email",
            "login",
        ]
        denied = client.get("/admin/v1/decisions", params={"outcome": "deny"}).json()
        assert [d["decision"]["reason"] for d in denied["decisions"]] == ["unknown_action"]
        page = client.get("/admin/v1/decisions", params={"limit": 2}).json()
        rest = client.get("/admin/v1/decisions", params={"before": page["next"]}).json()
        assert [d["action"] for d in rest["decisions"]] == ["login"]
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'juncture_decisions_total{checkpoint="change_email",outcome="step_up"} 1.0' in metrics
    # the two evaluations' latencies: cumulative buckets up to +Inf, their count and sum
    buckets = [float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("juncture_decision_seconds_bucket{")]  # fmt: skip
    assert len(buckets) == 11 and buckets == sorted(buckets) and buckets[-1] == 2.0
    assert 'juncture_decision_seconds_bucket{le="+Inf"} 2.0' in metrics
    assert "juncture_decision_seconds_count 2.0" in metrics
    (total,) = [float(line.split()[1]) for line in metrics.splitlines()
                if line.startswith("juncture_decision_seconds_sum ")]  # fmt: skip
    assert 0 < total < 10
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert {"/access/v1/evaluation", "/v1/sessions", "/admin/v1/versions"} <= set(spec["paths"])


def test_decision_log_page_from_an_unknown_decision_is_400_not_503(server: Server):
    """I6 (found by the fuzz): a `before` cursor naming no decision is bad input (400), not the
    store being unavailable (503)."""
    with admin(server) as client:
        for cursor in ("", "d_" + "0" * 32, "x"):
            page = client.get("/admin/v1/decisions", params={"before": cursor})
            assert (page.status_code, page.json()["code"]) == (400, "request.invalid"), page.text


def test_a_challenge_answers_only_its_methods_and_only_once(server: Server):
    _, web = new_app(server, methods=("password", "totp", "sms"))
    session = start(web)["session"]["id"]
    challenge = evaluation(web, session)["context"]["challenge_id"]
    for _ in range(6):  # bad input changes nothing: no attempt is spent
        wrong = web.post(f"/v1/challenges/{challenge}/verify", json={"method": "sms"})
        assert (wrong.status_code, wrong.json()["code"]) == (400, "challenge.method_not_accepted")
    answered = web.post(f"/v1/challenges/{challenge}/verify", json={"method": "totp"})
    assert answered.status_code == 200, answered.text
    used = web.post(f"/v1/challenges/{challenge}/verify", json={"method": "totp"})
    assert (used.status_code, used.json()["code"]) == (409, "challenge.not_live")
    read = web.get(f"/v1/sessions/{session}").json()
    assert [p["method"] for p in read["proofs"]] == ["password", "totp"]  # once


def test_metrics_labels_do_not_grow_with_the_action_names_callers_send(server: Server):
    _, web = new_app(server)
    session = start(web)["session"]["id"]
    for i in range(5):
        evaluation(web, session, f"made_up_{i}")
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "made_up" not in metrics
    assert 'juncture_decisions_total{checkpoint="*",outcome="deny"} 5.0' in metrics
