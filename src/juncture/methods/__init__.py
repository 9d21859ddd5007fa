"""Authentication methods: each verifies one kind of proof and says what it is worth (AAL, amr).

Each kind is one module that declares it (`KIND`, a `MethodKind`: the verifying class, the
record type, the enrol / start / confirm / lookup steps, over the kind's name, default AAL and
``amr`` values, which the journey language holds for the built-in kinds:
`juncture.policy.kinds`). Importing the package registers the built-in kinds; a plug-in
registers its own with `register_kind` (see `juncture.plugins`).
"""

from juncture.methods import (
    api_key,
    approval,
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
    METHOD_KINDS,
    Context,
    Enrollment,
    Environment,
    Issued,
    MethodError,
    MethodKind,
    Proof,
    Result,
    build,
    register_kind,
)

#: The built-in kinds (in the journey language's order).
BUILT_IN: tuple[MethodKind, ...] = (
    password.KIND,
    email_code.KIND,
    recovery_code.KIND,
    totp.KIND,
    webauthn.KIND,
    external_jwt.KIND,
    device_attestation.KIND,
    approval.KIND,
    api_key.KIND,
    client_assertion.KIND,
)
for _kind in BUILT_IN:
    register_kind(_kind)

__all__ = [
    "BUILT_IN",
    "KINDS",
    "METHOD_KINDS",
    "Context",
    "Enrollment",
    "Environment",
    "Issued",
    "MethodError",
    "MethodKind",
    "Proof",
    "Result",
    "build",
    "register_kind",
]
