"""A journey's `jwks_uri` goes through the SSRF guard for outgoing requests.

An issuer's key set URL on a loopback or private address (the metadata service, an internal
admin port) is refused: Juncture sends it no request, and the verification answers 503
`method.unavailable.keys`. `--ssf-allow-private` (development and tests) allows it, as it
does for Shared Signals endpoints. Over HTTP, with a real key set server on 127.0.0.1.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from methods.issuer import EC_KEY, jwks, jwks_server, sign
from service.server import Server
from service.test_http import admin

ISSUER = "https://idp.example.com"


def _journey(url: str) -> str:
    return f"""\
journey: acct
applies_to: [web]
methods:
  sso: {{kind: external_jwt, issuer: "{ISSUER}", audience: web, algorithms: [ES256],
         jwks_uri: "{url}"}}
checkpoints:
  login: [{{require: {{any: [sso]}}}}, {{allow: {{}}}}]
  "*": [{{deny: unknown_action}}]
"""


@pytest.fixture
def keys() -> Iterator[object]:
    with jwks_server(jwks(EC_KEY)) as served:
        yield served


def _verify(root: Path, url: str, *args: str) -> tuple[int, str]:
    bundle = root / "bundle"
    bundle.mkdir()
    (bundle / "acct.yaml").write_text(_journey(url))
    server = Server(root / "j.db", bundle, args=args).start()
    try:
        with admin(server) as client:
            made = client.post("/admin/v1/apps", json={"name": "web"})
        app = server.client(made.json()["key"])
        started = app.post("/v1/sessions", json={"subject": {"type": "user", "id": "alice"}})
        challenge = started.json()["decision"]["challenge"]["id"]
        now = int(time.time())
        token = sign({"iss": ISSUER, "aud": "web", "sub": "alice", "iat": now, "exp": now + 60})
        answer = app.post(f"/v1/challenges/{challenge}/verify",
                          json={"method": "sso", "proof": token})  # fmt: skip
        return answer.status_code, answer.json().get("code", "") if answer.status_code != 200 \
            else answer.json()["decision"]["outcome"]  # fmt: skip
    finally:
        server.stop()


def test_jwks_uri_on_loopback_refused_by_the_ssrf_guard(tmp_path: Path, keys):
    status, code = _verify(tmp_path, keys.url)
    assert (status, code) == (503, "method.unavailable.keys")
    assert keys.requests == 0  # no request reached the loopback server


def test_jwks_uri_on_loopback_allowed_with_allow_private(tmp_path: Path, keys):
    status, outcome = _verify(tmp_path, keys.url, "--ssf-allow-private")
    assert (status, outcome) == (200, "allow")
    assert keys.requests == 1
