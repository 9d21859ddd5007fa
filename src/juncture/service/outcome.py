"""What a service answers: an `Outcome` (a decision and what was done about it), or a
`ServiceError` refusing the request with a stable code and an HTTP status."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import msgspec

from juncture.engine import Decision
from juncture.errors import CodedRefusal
from juncture.records import App, Challenge, Session
from juncture.service.authn import AuthnError
from juncture.store.protocols import CorruptError, StoreError

log = logging.getLogger("juncture.runtime")
_T = TypeVar("_T")


class ServiceError(CodedRefusal):
    """A request the runtime refuses: carries a stable code and an HTTP status."""

    @classmethod
    def of(cls, error: AuthnError, **extra: Any) -> ServiceError:
        return cls(
            error.code, error.message, error.status, extra=extra, retry_after=error.retry_after
        )


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """A decision with what the runtime did about it."""

    decision: Decision
    session: Session | None = None
    challenge: Challenge | None = None


def unavailable(
    action: str, version: str = "", decision_id: str | None = None, reason: str = "store"
) -> Decision:
    """Deny: the store (or the active version) could not be had, so nothing may be allowed."""
    return Decision(
        outcome="deny",
        reason=f"unavailable.{reason}",
        action=action,
        version=version,
        id=decision_id,
    )


def store_failure(error: StoreError) -> str:
    """The reason a decision the store failed is deny: ``unavailable.<this>``."""
    if isinstance(error, CorruptError):
        log.error("a stored record is corrupt: %s", error)
        return "corrupt"
    return "store"


def require_active(session: Session) -> None:
    """409 for an ended or revoked session (a pending one is still on its way in)."""
    if session.status in ("ended", "revoked"):
        raise ServiceError("session.not_active", f"the session is {session.status}: ended and "
                           "revoked sessions are final", 409)  # fmt: skip


def owned_error(name: str) -> ServiceError:
    return ServiceError("facts.owned", f"`{name}` is a fact Juncture owns (observed, computed "
                        "or recorded by Juncture): an app cannot set it", 400)  # fmt: skip


def check_assertable(app: App, method: str) -> None:
    if method not in app.assertable_methods:
        raise ServiceError(
            "auth.method_not_assertable", f"this app may not assert method `{method}`", 403
        )


def store_failed(action: str, version: str, decision_id: str, error: StoreError) -> Outcome:
    """The outcome of a decision the store failed: deny, ``unavailable.<why>``."""
    return Outcome(decision=unavailable(action, version, decision_id, store_failure(error)))
