"""Authentication methods: each verifies one kind of proof and says what it is worth (AAL, amr).

Importing the package registers every built-in kind in `KINDS`.
"""

from juncture.methods import email_code, password, totp, webauthn  # noqa: F401  (registration)
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
