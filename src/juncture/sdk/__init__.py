"""For applications that call Juncture: read its answers and act on them.

`step_up_challenge` turns a `step_up` answer (an AuthZEN response's `context`, or the native
API's `decision`) into the RFC 9470 `WWW-Authenticate` value an API returns with its 401, so a
client knows which authentication to obtain (`acr_values`) and how recent it must be
(`max_age`). It depends on nothing but the standard library.
"""

from __future__ import annotations

from juncture.sdk.step_up import StepUpHint, step_up_challenge, step_up_hint

__all__ = ["StepUpHint", "step_up_challenge", "step_up_hint"]
