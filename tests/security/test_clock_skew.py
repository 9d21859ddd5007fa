"""A node whose clock is off the store's must not decide: its proofs and `within` windows
would be stamped by a wrong clock."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from juncture.service.clock import TEST_OFFSET_ENV
from service.server import Server
from service.test_http import admin

JOURNEY = """\
journey: acct
applies_to: [web]
methods:
  password: {kind: password, aal: 1}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {}}]
  browse: [{allow: {}}]
  "*": [{deny: unknown_action}]
"""
BODY = {
    "subject": {"type": "user", "id": "alice"},
    "action": {"name": "browse"},
    "resource": {"type": "page", "id": "home"},
}


def _node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offset: float, args: tuple[str, ...] = ()
) -> Server:
    """A `juncture serve` on the shared database whose clock runs ``offset`` seconds off."""
    monkeypatch.setenv(TEST_OFFSET_ENV, str(offset))
    try:
        return Server(tmp_path / "j.db", tmp_path / "bundle", args=args).start()
    finally:
        monkeypatch.delenv(TEST_OFFSET_ENV)


def test_a_node_with_a_skewed_clock_refuses_to_decide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """I2 (proofs within the window, by a right clock): two nodes on one database; the one
    whose clock is 10 s ahead refuses decisions, sessions and challenge answers with 503
    `unavailable.clock_skew` and says why in /healthz; the one 0.5 s off serves."""
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "acct.yaml").write_text(JOURNEY)
    good = _node(tmp_path, monkeypatch, 0.5)
    try:
        with admin(good) as root:
            made = root.post("/admin/v1/apps", json={"name": "web"})
            assert made.status_code == 201, made.text
        key = made.json()["key"]
        bad = _node(tmp_path, monkeypatch, 10)
        try:
            health = httpx.get(f"{bad.url}/healthz")
            assert health.status_code == 503, health.text
            clock = health.json()["clock"]
            assert clock["status"] == "skewed"
            assert 9 < clock["offset_seconds"] < 11
            assert clock["max_skew_seconds"] == 2
            bad_app = bad.client(key)
            refused = bad_app.post("/access/v1/evaluation", json=BODY)
            assert refused.status_code == 503, refused.text
            assert refused.json()["code"] == "unavailable.clock_skew"
            started = bad_app.post(
                "/v1/sessions", json={"subject": {"type": "user", "id": "alice"}}
            )
            assert (started.status_code, started.json()["code"]) == (
                503,
                "unavailable.clock_skew",
            )
            # the good node serves, and sees the bad one among its peers
            good_app = good.client(key)
            served = good_app.post("/access/v1/evaluation", json=BODY)
            assert served.status_code == 200, served.text
            assert served.json()["decision"] is True
            started = good_app.post(
                "/v1/sessions", json={"subject": {"type": "user", "id": "alice"}}
            )
            assert started.status_code == 201, started.text
            deadline = time.monotonic() + 10  # its next heartbeat lists the bad node
            while True:
                health = httpx.get(f"{good.url}/healthz")
                assert health.status_code == 200, health.text
                clock = health.json()["clock"]
                assert clock["status"] == "ok"
                assert 0 < clock["offset_seconds"] < 1
                if any(9 < p["offset_seconds"] < 11 for p in clock["peers"]):
                    break
                assert time.monotonic() < deadline, clock
                time.sleep(0.2)
            assert "unavailable.clock_skew" in _log(bad)
        finally:
            bad.stop()
    finally:
        good.stop()


ROUTED = JOURNEY.replace(
    "checkpoints:\n",
    "routes:\n  web:\n    match:\n      - {path: /, checkpoint: browse}\ncheckpoints:\n",
)


def test_a_skewed_node_refuses_proxies_and_the_hosted_pages_that_decide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Forward auth and the hosted login and step-up pages decide or take proofs: a node 10 s
    off refuses them (503 `unavailable.clock_skew`, a page for a browser), where the node on
    time answers; its logout, script and themes still serve."""
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "acct.yaml").write_text(ROUTED)
    good = _node(tmp_path, monkeypatch, 0.5)
    origin = "https://web.example"
    try:
        with admin(good) as root:
            made = root.post("/admin/v1/apps", json={"name": "web", "origins": [origin]})
            assert made.status_code == 201, made.text
        key = made.json()["key"]
        proxy = {"X-Juncture-Key": key, "X-Original-Method": "GET", "X-Original-URI": "/",
                 "X-Forwarded-Proto": "https", "X-Forwarded-Host": "web.example"}  # fmt: skip
        page = {"X-Juncture-Key": key}
        back = {"return_to": origin + "/"}
        bad = _node(tmp_path, monkeypatch, 10)
        try:
            asked = httpx.get(f"{good.url}/forward-auth/v1/nginx", headers=proxy)
            assert asked.status_code == 401, asked.text  # on time: to the login page
            refused = httpx.get(f"{bad.url}/forward-auth/v1/nginx", headers=proxy)
            assert refused.status_code == 503, refused.text
            assert refused.json()["code"] == "unavailable.clock_skew"
            # the same over a connection kept alive (answered past the router, api/direct.py)
            with httpx.Client(base_url=bad.url) as kept:
                for _ in range(2):
                    again = kept.get("/forward-auth/v1/nginx", headers=proxy)
                    assert again.status_code == 503, again.text
            for path, method in (("/hosted/v1/login", "GET"), ("/hosted/v1/login", "POST"),
                                 ("/hosted/v1/step-up", "GET"),
                                 ("/hosted/v1/enroll/totp", "POST")):  # fmt: skip
                shown = httpx.request(method, f"{bad.url}{path}", headers=page, params=back)
                assert shown.status_code == 503, (path, shown.text)
                assert "unavailable.clock_skew" in shown.text
                assert shown.headers["content-type"].startswith("text/html")
            form = httpx.get(f"{good.url}/hosted/v1/login", headers=page, params=back)
            assert form.status_code == 200, form.text
            for path in ("/hosted/v1/logout", "/hosted/v1/static/webauthn.js"):
                served = httpx.get(f"{bad.url}{path}", headers=page, params=back)
                assert served.status_code == 200, (path, served.text)
        finally:
            bad.stop()
    finally:
        good.stop()


def test_the_bound_is_an_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`--max-clock-skew 15`: a node 10 s off serves."""
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "acct.yaml").write_text(JOURNEY)
    node = _node(tmp_path, monkeypatch, 10, args=("--max-clock-skew", "15"))
    try:
        health = httpx.get(f"{node.url}/healthz")
        assert health.status_code == 200, health.text
        assert health.json()["clock"]["status"] == "ok"
        assert health.json()["clock"]["max_skew_seconds"] == 15
    finally:
        node.stop()


def _log(server: Server) -> str:
    server.stop()
    return server.output.decode(errors="replace")
