"""The registry of method kinds the journey language reads (policy/kinds.py)."""

from __future__ import annotations

import pytest

from juncture.errors import BundleError
from juncture.policy import compile_plan, kinds, load_sources

JOURNEY = """
journey: j
methods:
  magic: {kind: magic_link}
checkpoints:
  login:
    - require: {any: [magic]}
    - allow: {}
"""


def test_a_registered_kind_is_known_with_its_default_aal_and_amr() -> None:
    kind = kinds.register(kinds.Kind(name="magic_link", aal=2, amr=("otp", "mca")))
    try:
        assert kinds.register(kind) is kind  # the same descriptor again: a no-op
        assert kinds.default_aal("magic_link") == 2 and kinds.amr("magic_link") == ("otp", "mca")
        plan = compile_plan(load_sources({"j.yaml": JOURNEY.encode()}))
        info = plan.journeys["j"].methods["magic"]
        assert (info.kind, info.aal, info.amr) == ("magic_link", 2, ("otp", "mca"))
    finally:
        kinds.unregister("magic_link")
    with pytest.raises(BundleError) as caught:
        load_sources({"j.yaml": JOURNEY.encode()})
    assert "unknown method kind `magic_link`" in str(caught.value.errors[0])


def test_the_built_in_kinds_are_known_without_their_methods() -> None:
    assert list(kinds.KINDS)[:2] == ["password", "email_code"]
    assert kinds.built_in("password") == kinds.Kind(
        name="password", aal=1, amr=("pwd",), counter="password"
    )
    assert kinds.default_aal("webauthn") == 3 and kinds.amr("client_assertion") == ("swk",)


def test_a_built_in_kind_takes_a_richer_descriptor_with_the_same_data() -> None:
    bare = kinds.KINDS["totp"]
    richer = kinds.Kind(name="totp", aal=2, amr=("otp",))
    try:
        assert kinds.register(richer) is richer and kinds.KINDS["totp"] is richer
        kinds.unregister("totp")  # a built-in kind stays, as the language's bare descriptor
        assert kinds.KINDS["totp"] is kinds.built_in("totp")
    finally:
        kinds.register(bare)  # as it was (the totp module's descriptor, when imported)


def test_a_kind_is_registered_consistently_with_an_aal_in_range() -> None:
    with pytest.raises(ValueError, match="known already with aal 1"):
        kinds.register(kinds.Kind(name="password", aal=2, amr=("pwd",)))
    with pytest.raises(ValueError, match="no lockout counter `pin`"):
        kinds.register(kinds.Kind(name="strong", aal=2, counter="pin"))
    with pytest.raises(ValueError, match="aal must be 0"):
        kinds.register(kinds.Kind(name="strong", aal=4))
    assert "strong" not in kinds.KINDS
