"""Method kinds are declared once (`MethodKind`) and registered (`register_kind`)."""

from __future__ import annotations

import pytest

from juncture.methods import BUILT_IN, KINDS, METHOD_KINDS, MethodKind, register_kind
from juncture.methods.base import unregister_kind
from juncture.methods.password import Password
from juncture.policy import kinds


def test_every_built_in_kind_is_registered_in_the_language_and_here() -> None:
    for kind in BUILT_IN:
        assert METHOD_KINDS[kind.name] is kind and kinds.KINDS[kind.name] is kind
        assert (kind.implementation is None) == (kind.name not in KINDS)
    assert [k.name for k in BUILT_IN][:3] == ["password", "email_code", "recovery_code"]


def test_the_descriptors_say_what_the_directory_used_to_switch_on() -> None:
    by_name = {k.name: k for k in BUILT_IN}
    assert {n for n, k in by_name.items() if k.record is None and k.implementation} == {
        "external_jwt",
        "device_attestation",
    }
    assert {n for n, k in by_name.items() if k.confirmed_at_enrollment} == {
        "password",
        "recovery_code",
    }
    assert {n for n, k in by_name.items() if k.start is not None} == {"webauthn", "email_code"}
    assert {n for n, k in by_name.items() if k.issued_by_admin} == {"api_key", "client_assertion"}
    assert {n for n, k in by_name.items() if k.confirm is not None} == {
        "totp",
        "webauthn",
        "email_code",
    }


def test_a_kind_is_registered_once_and_consistently() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        register_kind(MethodKind(name="password", aal=1))
    with pytest.raises(ValueError, match="its class says `password`"):
        register_kind(MethodKind(name="other", aal=1, implementation=Password))
    made = register_kind(MethodKind(name="other", aal=1))
    try:
        assert kinds.KINDS["other"] is made and "other" not in KINDS
    finally:
        unregister_kind("other")
    assert "other" not in kinds.KINDS and "other" not in METHOD_KINDS
