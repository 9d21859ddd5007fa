"""A test token issuer: real keys, real signatures, and the forgeries attackers try."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

ISSUER = "https://idp.example.com"
AUDIENCE = "https://shop.example.com"

# Key generation is slow for RSA: one set of keys for the whole test run.
RSA_KEY = RSAKey.generate_key(2048, parameters={"kid": "rsa1", "use": "sig"})
EC_KEY = ECKey.generate_key("P-256", parameters={"kid": "ec1", "alg": "ES256"})
OTHER_EC = ECKey.generate_key("P-256", parameters={"kid": "ec1", "alg": "ES256"})
NEW_EC = ECKey.generate_key("P-256", parameters={"kid": "ec2", "alg": "ES256"})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwks(*keys: Any) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False) for key in keys]}


def sign(claims: dict[str, Any], key: Any = EC_KEY, **header: Any) -> str:
    alg = header.pop("alg", "ES256" if isinstance(key, ECKey) else "RS256")
    head = {"alg": alg, "kid": key.kid, **header}
    return jwt.encode(
        {k: v for k, v in head.items() if v is not None}, claims, key, algorithms=[alg]
    )


def sign_raw(header: dict[str, Any], claims: dict[str, Any], key: Any = EC_KEY) -> str:
    """ES256 by hand, for headers a JOSE library would refuse to write."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    der = key.private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def unsigned(claims: dict[str, Any], **header: Any) -> str:
    """An `alg: none` token (RFC 7519 §6): no signature at all."""
    head = {"alg": "none", "typ": "JWT", **header}
    return f"{b64(json.dumps(head).encode())}.{b64(json.dumps(claims).encode())}."


def hmac_with_public_key(claims: dict[str, Any], secret: bytes, alg: str = "HS256") -> str:
    """The key-confusion forgery: HMAC with the issuer's *public* key as the secret."""
    head = {"alg": alg, "typ": "JWT", "kid": RSA_KEY.kid}
    signing_input = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(claims).encode())}"
    digest = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(digest)}"


def claims(now: Any, **extra: Any) -> dict[str, Any]:
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "u1",
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + 300,
    }
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


@dataclass
class JwksServer:
    """A real HTTP server on 127.0.0.1 serving a key set; counts the requests."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    url: str = ""

    def serve(self, document: Any) -> None:
        self.body = json.dumps(document).encode()
        self.status = 200


@contextmanager
def jwks_server(document: Any) -> Iterator[JwksServer]:
    state = JwksServer()
    state.serve(document)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            self.send_response(state.status)
            for name, value in state.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
