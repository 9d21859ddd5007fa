"""A software WebAuthn authenticator for tests: real keys, real CBOR, real signatures.

It answers the options our server sends the way a browser and an authenticator would:
an EC P-256 key (COSE alg -7), authenticator data with the flags and counter of W3C
WebAuthn §6.1, a "none" attestation object in CBOR, clientDataJSON, and an ECDSA
signature over authenticatorData || SHA-256(clientDataJSON). Every knob a test needs to
play an attacker (another origin, another RP id, an old counter) is an argument.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    origin: str
    rp_id: str | None = None  # None: take the RP id from the options
    user_verified: bool = True
    backup_eligible: bool = False
    sign_count: int = 0
    counting: bool = True
    aaguid: bytes = bytes(16)
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = field(default_factory=lambda: os.urandom(16))
    user_handle: bytes | None = None

    # -- pieces ---------------------------------------------------------------------------------

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def flags(self, *, present: bool = True, attested: bool = False) -> int:
        value = UP if present else 0
        value |= UV if self.user_verified else 0
        value |= (BE | BS) if self.backup_eligible else 0
        return value | (AT if attested else 0)

    def auth_data(self, rp_id: str, flags: int, attested: bytes = b"") -> bytes:
        rp_hash = hashlib.sha256(rp_id.encode()).digest()
        return rp_hash + bytes([flags]) + struct.pack(">I", self.sign_count) + attested

    @staticmethod
    def client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}
        ).encode()

    # -- ceremonies -----------------------------------------------------------------------------

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        present: bool = True,
        kind: str = "webauthn.create",
    ) -> dict[str, Any]:
        """Answer creation options as ``navigator.credentials.create()`` would."""
        rp_id = self.rp_id or options["rp"]["id"]
        self.user_handle = unb64url(options["user"]["id"])
        attested = (
            self.aaguid
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self.cose_key()
        )
        auth_data = self.auth_data(rp_id, self.flags(present=present, attested=True), attested)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client = self.client_data(kind, options["challenge"], origin or self.origin)
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client),
                "attestationObject": b64url(attestation),
                "transports": ["internal", "hybrid"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        present: bool = True,
        kind: str = "webauthn.get",
        challenge: str | None = None,
        key: ec.EllipticCurvePrivateKey | None = None,
    ) -> dict[str, Any]:
        """Answer request options as ``navigator.credentials.get()`` would."""
        rp_id = self.rp_id or options["rpId"]
        if self.counting:
            self.sign_count += 1
        auth_data = self.auth_data(rp_id, self.flags(present=present))
        client = self.client_data(kind, challenge or options["challenge"], origin or self.origin)
        signed = auth_data + hashlib.sha256(client).digest()
        signature = (key or self.key).sign(signed, ec.ECDSA(hashes.SHA256()))
        response = {
            "clientDataJSON": b64url(client),
            "authenticatorData": b64url(auth_data),
            "signature": b64url(signature),
        }
        if self.user_handle is not None:
            response["userHandle"] = b64url(self.user_handle)
        return {
            "id": b64url(self.credential_id),
            "rawId": b64url(self.credential_id),
            "type": "public-key",
            "response": response,
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }
