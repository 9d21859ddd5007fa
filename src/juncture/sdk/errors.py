"""What the SDK raises. Every server error carries its stable ``code`` (docs/errors.md)."""

from __future__ import annotations

from typing import Any


class JunctureError(Exception):
    """Anything the SDK raises."""

    code: str = "sdk.error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class JunctureUnavailable(JunctureError):
    """Juncture could not answer: not reachable, timed out, or 5xx. No decision was made, so
    nothing may be allowed on it."""

    code = "unavailable"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message, code=code)
        self.status = status


class CircuitOpen(JunctureUnavailable):
    """The circuit breaker is open: Juncture failed repeatedly and is not called until the
    cool-down ends (then one probe goes through)."""

    code = "unavailable.circuit_open"


class JunctureProtocolError(JunctureError):
    """An answer of a shape the SDK does not know (another server, a proxy's page)."""

    code = "sdk.protocol"


class ApiError(JunctureError):
    """A problem document (RFC 9457) from the server: ``status``, the stable ``code``,
    ``detail`` and the whole ``problem``."""

    def __init__(self, status: int, code: str, detail: str, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {code}: {detail}", code=code)
        self.status = status
        self.detail = detail
        self.problem = problem


class BadRequest(ApiError):
    """400 or 422: the request is wrong; sending it again will not help."""


class Unauthorized(ApiError):
    """401: the app key is missing, wrong or revoked (or a credential was refused)."""


class Forbidden(ApiError):
    """403."""


class NotFound(ApiError):
    """404: no such session or challenge for this app."""


class Conflict(ApiError):
    """409: e.g. ``session.not_active``, ``challenge.not_started``."""


class Busy(ApiError):
    """429: try again after ``retry_after`` seconds; nothing was spent."""

    retry_after: float | None = None


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    422: BadRequest, 429: Busy,
}  # fmt: skip


def api_error(status: int, problem: dict[str, Any]) -> ApiError:
    code = problem.get("code")
    detail = problem.get("detail") or problem.get("title") or ""
    kind = _BY_STATUS.get(status, ApiError)
    return kind(status, code if isinstance(code, str) else "unknown", str(detail), problem)
