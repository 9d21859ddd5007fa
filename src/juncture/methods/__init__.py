"""Authentication methods: each verifies one kind of proof and says what it is worth (AAL, amr).

Importing the package registers every built-in kind in `KINDS`.
"""

from juncture.methods import (  # noqa: F401  (each registers its kind)
    api_key,
    client_assertion,
    device_attestation,
    email_code,
    external_jwt,
    password,
    recovery_code,
    totp,
    webauthn,
)
from juncture.methods.base import (
    KINDS,
    Context,
    Enrollment,
    Environment,
    Issued,
    MethodError,
    Proof,
    Result,
    build,
)

__all__ = [
    "KINDS",
    "Context",
    "Enrollment",
    "Environment",
    "Issued",
    "MethodError",
    "Proof",
    "Result",
    "build",
]
