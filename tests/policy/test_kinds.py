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


def test_a_kind_is_registered_once_with_an_aal_in_range() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        kinds.register(kinds.Kind(name="password", aal=1, amr=("pwd",)))
    with pytest.raises(ValueError, match="aal must be 0"):
        kinds.register(kinds.Kind(name="strong", aal=4))
    assert "strong" not in kinds.KINDS
