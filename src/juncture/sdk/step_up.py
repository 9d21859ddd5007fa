"""RFC 9470 (OAuth 2.0 Step Up Authentication Challenge) from Juncture's answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class StepUpHint:
    """What a client must obtain: ACRs acceptable (space-separated, in order of preference)
    and the maximum age of the authentication in seconds (None: any)."""

    acr_values: str | None
    max_age: int | None


def step_up_hint(answer: Mapping[str, Any]) -> StepUpHint | None:
    """The hint of a `step_up` answer, or None for any other outcome.

    ``answer`` is an AuthZEN evaluation response's ``context`` (``outcome``, ``acr_values``,
    ``max_age``) or a native API ``decision`` (``outcome``, ``step_up.acr_values``,
    ``step_up.max_age``); a whole AuthZEN response (with ``context``) is accepted too.
    """
    if "context" in answer and isinstance(answer["context"], Mapping):
        answer = answer["context"]
    if answer.get("outcome") != "step_up":
        return None
    nested = answer.get("step_up")
    source: Mapping[str, Any] = nested if isinstance(nested, Mapping) else answer
    acr = source.get("acr_values")
    age = source.get("max_age")
    return StepUpHint(
        acr_values=acr if isinstance(acr, str) and acr else None,
        max_age=age if isinstance(age, int) and not isinstance(age, bool) and age >= 0 else None,
    )


def _quoted(text: str) -> str:
    clean = "".join(c for c in text if c == "\t" or (" " <= c and c != "\x7f"))
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def step_up_challenge(
    answer: Mapping[str, Any],
    *,
    realm: str | None = None,
    description: str = "stronger or fresher authentication is required",
) -> str | None:
    """The ``WWW-Authenticate`` value for a `step_up` answer (None for any other outcome):
    ``Bearer error="insufficient_user_authentication", error_description="...",
    acr_values="...", max_age="..."``."""
    hint = step_up_hint(answer)
    if hint is None:
        return None
    parts = []
    if realm is not None:
        parts.append(f"realm={_quoted(realm)}")
    parts.append('error="insufficient_user_authentication"')
    parts.append(f"error_description={_quoted(description)}")
    if hint.acr_values:
        parts.append(f"acr_values={_quoted(hint.acr_values)}")
    if hint.max_age is not None:
        parts.append(f'max_age="{hint.max_age}"')
    return "Bearer " + ", ".join(parts)
