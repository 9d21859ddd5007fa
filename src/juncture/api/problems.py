"""Errors as RFC 9457 problem details, with stable codes; request body limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from juncture.api.limits import MAX_BODY
from juncture.errors import CodedRefusal, Refusal

MAX_DEPTH = 32


class ApiError(CodedRefusal):
    """A refusal the API itself decides (the request's form, the caller's key): stable
    ``code``, HTTP ``status``, a message without secrets, extra problem members."""

    def __init__(
        self, status: int, code: str, detail: str, *, retry_after: int | None = None, **extra: Any
    ) -> None:
        super().__init__(code, detail, status, extra=extra, retry_after=retry_after)


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem(
    status: int, code: str, detail: str, *, retry_after: int | None = None, **extra: Any
) -> Response:
    """A problem response; ``retry_after`` (seconds) sets the Retry-After header, and for a
    lockout the title says until when."""
    title = _TITLES.get(status, "Error")
    if code == "auth.locked" and retry_after is not None:
        until = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=retry_after)
        title = (
            f"Too many failed attempts: locked until {until.strftime('%Y-%m-%dT%H:%M:%SZ')}; "
            f"retry after {retry_after} s"
        )
    body = {
        "type": f"urn:juncture:error:{code}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    headers = {"WWW-Authenticate": 'Bearer realm="juncture"'} if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return Response(
        msgspec.json.encode(body),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def problem_of(error: Refusal) -> Response:
    """The one mapping of Juncture's errors to the wire: every `Refusal` a handler lets out
    is answered with its own status, code, detail, extra members and Retry-After."""
    return problem(
        error.status, error.code, error.detail, retry_after=error.retry_after, **error.extra
    )


def page_limit(request: Request, default: int = 100, most: int = 1000) -> int:
    """The ``limit`` query parameter of a listing: 1 to ``most``. Raises ApiError."""
    text = request.query_params.get("limit", str(default))
    if not text.isdigit() or not 1 <= int(text) <= most:
        raise ApiError(400, "request.invalid", f"`limit` must be 1 to {most}")
    return int(text)


def too_deep(data: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON ``data`` nests deeper than ``limit`` (cheap when it has few brackets)."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    return _depth(data) > limit


def _depth(data: bytes) -> int:
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:
                escaped = True
            elif byte == 0x22:
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


async def raw_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refused past ``limit`` bytes (413 ``request.too_large``)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise ApiError(413, "request.too_large", f"the body is larger than {limit} bytes")
    chunks = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "request.too_large", f"the body is larger than {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:  # gone, or refused by the server past a limit: nobody to answer
        raise ApiError(400, "request.malformed", "the body ended early") from None
    return b"".join(chunks)


def is_json(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` value declares JSON: ``application/json``, any parameters.

    The AuthZEN API asks for exactly ``application/json`` (Authorization API 1.0, "HTTPS
    binding"), so a structured-syntax type such as ``application/problem+json`` is not taken:
    it names another document format. A ``charset`` parameter, if any, must be UTF-8 (the only
    encoding JSON has, RFC 8259 section 8.1).
    """
    if not content_type:
        return False
    media, *params = content_type.split(";")
    if media.strip().lower() != "application/json":
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            return False
    return True


def require_json(request: Request) -> None:
    """Refuse a request whose body is not declared ``Content-Type: application/json``.

    Raises:
        ApiError: 400 ``request.content_type``.
    """
    declared = request.headers.get("content-type")
    if not is_json(declared):
        shown = f"`{declared}`" if declared else "none"
        raise ApiError(
            400,
            "request.content_type",
            f"the body must be sent with Content-Type: application/json (sent: {shown})",
        )


async def json_body(request: Request, *, required: bool = True) -> Any:
    """The request's JSON body, within the size and nesting limits.

    A body, when there is one, must be declared ``Content-Type: application/json``; an
    endpoint whose body is optional takes an empty one without any ``Content-Type``.

    Raises:
        ApiError: 413 ``request.too_large``, 400 ``request.malformed`` / ``request.too_deep``
            / ``request.content_type``.
    """
    data = await raw_body(request)
    if not data.strip():
        if required:
            require_json(request)
            raise ApiError(400, "request.malformed", "a JSON body is required")
        return {}
    require_json(request)
    if too_deep(data):
        raise ApiError(400, "request.too_deep", f"the body nests deeper than {MAX_DEPTH} levels")
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise ApiError(400, "request.malformed", f"the body is not valid JSON: {exc}") from None


def convert(value: Any, kind: type[Any], where: str = "body") -> Any:
    """Strictly convert decoded JSON into a request struct; errors name the JSON path."""
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "request.invalid", f"invalid {where}: {exc}") from None
