"""The SDK's RFC 9470 helper, against the answers the API gives."""

from __future__ import annotations

from juncture.api.authzen import to_response, www_authenticate
from juncture.engine import Decision, StepUp
from juncture.sdk import StepUpHint, step_up_challenge, step_up_hint

STEP_UP = StepUp(
    methods=("totp", "passkey"), within=600, aal=2,
    acr_values="urn:juncture:aal2 urn:juncture:aal3", amr_values=("otp",),
)  # fmt: skip


def test_the_sdk_builds_the_same_challenge_the_server_sends():
    decision = Decision(outcome="step_up", reason="step_up_required", action="pay",
                        step_up=STEP_UP, id="d1", version="v")  # fmt: skip
    response = to_response(decision, challenge_id="ch_1", www_authenticate=None)
    context = response.context
    assert step_up_challenge(context) == www_authenticate(STEP_UP) == context["www_authenticate"]
    assert step_up_challenge({"context": context}) == context["www_authenticate"]
    assert step_up_hint(context) == StepUpHint(
        acr_values="urn:juncture:aal2 urn:juncture:aal3", max_age=600
    )


def test_the_native_decision_shape_is_read_too():
    native = {"outcome": "step_up", "step_up": {"acr_values": "urn:juncture:aal3", "max_age": 60}}
    assert step_up_challenge(native, realm="shop") == (
        'Bearer realm="shop", error="insufficient_user_authentication", '
        'error_description="stronger or fresher authentication is required", '
        'acr_values="urn:juncture:aal3", max_age="60"'
    )


def test_other_outcomes_and_odd_values_give_no_challenge_or_no_hint_part():
    assert step_up_challenge({"outcome": "allow"}) is None
    assert step_up_hint({"outcome": "deny", "acr_values": "x"}) is None
    odd = {"outcome": "step_up", "acr_values": 5, "max_age": True}
    assert step_up_hint(odd) == StepUpHint(acr_values=None, max_age=None)
    assert step_up_challenge(odd, description='say "hi"\n') == (
        'Bearer error="insufficient_user_authentication", error_description="say \\"hi\\""'
    )
