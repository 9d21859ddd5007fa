"""An external issuer's RSA key under 2048 bits is never used (RFC 7518 §3.3, RFC 8725 §3.5).

A key set holding only a 1024-bit RSA key configures no issuer; over HTTP, with a strong key
beside it, a token the weak key signed does not verify.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from juncture.jose import IssuerOptions, build_issuer
from juncture.methods.base import ConfigError
from methods.issuer import EC_KEY, jwks
from service.server import Server
from service.test_http import admin

ISSUER = "https://idp.example.com"
WEAK = rsa.generate_private_key(public_exponent=65537, key_size=1024)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def weak_jwk() -> dict[str, Any]:
    numbers = WEAK.public_key().public_numbers()
    return {"kty": "RSA", "kid": "weak", "use": "sig", "n": _int(numbers.n), "e": _int(numbers.e)}


def weak_token(claims: dict[str, Any]) -> str:
    header = _b64(json.dumps({"alg": "RS256", "kid": "weak", "typ": "JWT"}).encode())
    signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
    signature = WEAK.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def journey(keys: dict[str, Any]) -> str:
    return f"""\
journey: acct
applies_to: [web]
methods:
  sso: {{kind: external_jwt, issuer: "{ISSUER}", audience: web, algorithms: [RS256, ES256],
         jwks: {json.dumps(keys)}}}
checkpoints:
  login: [{{require: {{any: [sso]}}}}, {{allow: {{}}}}]
  "*": [{{deny: unknown_action}}]
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("weak")
    bundle = root / "bundle"
    bundle.mkdir()
    both = {"keys": [weak_jwk(), *jwks(EC_KEY)["keys"]]}
    (bundle / "acct.yaml").write_text(journey(both))
    made = Server(root / "j.db", bundle).start()
    yield made
    made.stop()


def test_weak_rsa_issuer_key_refused_in_configuration():
    """A key set holding only a weak RSA key configures no issuer: the error says why."""
    options = IssuerOptions(issuer=ISSUER, audience="web", jwks={"keys": [weak_jwk()]})
    with pytest.raises(ConfigError, match="under 2048 bits"):
        build_issuer("sso", options, need_audience=True)


def test_token_signed_by_weak_rsa_issuer_key_refused(server: Server):
    with admin(server) as client:
        made = client.post("/admin/v1/apps", json={"name": "web"})
    assert made.status_code == 201, made.text
    app = server.client(made.json()["key"])
    started = app.post("/v1/sessions", json={"subject": {"type": "user", "id": "alice"}})
    assert started.status_code == 201, started.text
    assert "challenge" in started.json()["decision"], started.text
    challenge = started.json()["decision"]["challenge"]["id"]
    now = int(time.time())
    token = weak_token({"iss": ISSUER, "aud": "web", "sub": "alice", "iat": now, "exp": now + 60})
    answer = app.post(f"/v1/challenges/{challenge}/verify", json={"method": "sso", "proof": token})
    assert (answer.status_code, answer.json()["code"]) == (401, "challenge.failed"), answer.text
    read = app.get(f"/v1/sessions/{started.json()['session']['id']}").json()
    assert read["proofs"] == [] and read["aal"] == 0
