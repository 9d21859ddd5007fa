"""Forward auth (`/forward-auth/v1/{proxy}`): a reverse proxy asks, for each request it is
about to forward to an app, whether it may, and with which identity headers (docs/proxy.md).

The proxy authenticates as the app with the app's key in `X-Juncture-Key` (its config adds the
header; the client's own is replaced). The proxy's kind is part of the path, so each reads
the original request only from the headers that proxy sets itself: nginx `X-Original-Method`
and `X-Original-URI` (and `X-Forwarded-Proto`, `X-Forwarded-Host` from the config), Traefik and
Caddy `X-Forwarded-Method`, `-Proto`, `-Host`, `-Uri`, Envoy's `ext_authz` the request itself
(its method, and its path after `/forward-auth/v1/envoy`). A header another proxy would set
is never read, so a client cannot name the request it is asked about.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from juncture.api.auth import authenticate_app_key
from juncture.api.hosted.cookies import SESSION_COOKIE, SessionCookies
from juncture.api.hosted.pages import refused_page
from juncture.api.problems import ApiError
from juncture.service.forward import Original, Verdict
from juncture.service.runtime import Runtime

KINDS = ("nginx", "traefik", "caddy", "envoy")
BASE = "/forward-auth/v1/"
PREFIX = BASE + "envoy"
#: The methods OpenAPI describes (HEAD comes with GET; OPTIONS is not served: refused).
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_HEADERS = {
    # proxy -> (method, uri, proto, host, client ip) header names; None: from the request
    "nginx": ("x-original-method", "x-original-uri", "x-forwarded-proto", "x-forwarded-host",
              "x-real-ip"),
    "traefik": ("x-forwarded-method", "x-forwarded-uri", "x-forwarded-proto", "x-forwarded-host",
                "x-forwarded-for"),
    "caddy": ("x-forwarded-method", "x-forwarded-uri", "x-forwarded-proto", "x-forwarded-host",
              "x-forwarded-for"),
}  # fmt: skip


def _one(request: Request, name: str) -> str:
    values = request.headers.getlist(name)
    if len(values) != 1 or not values[0].strip():
        raise ApiError(400, "proxy.request", f"the proxy must send one `{name}` header")
    return values[0].strip()


def original_of(request: Request, kind: str) -> tuple[Original, str | None]:
    """The request the proxy asks about, and the client's IP as the proxy says it.

    Raises:
        ApiError: 400 ``proxy.request``, a header the proxy must send is missing or repeated.
    """
    if kind == "envoy":
        # the path as sent (Starlette's `url.path` is decoded: `%2F` would read as `/`)
        raw = request.scope.get("raw_path") or request.url.path.encode()
        suffix = raw.decode("latin-1")[len(PREFIX) :] or "/"
        query = request.url.query
        original = Original(
            method=request.method,
            scheme=_one(request, "x-forwarded-proto").lower(),
            host=_one(request, "host"),
            uri=suffix + (f"?{query}" if query else ""),
        )
        forwarded = request.headers.get("x-forwarded-for")
    else:
        method, uri, proto, host, ip = _HEADERS[kind]
        original = Original(
            method=_one(request, method).upper(),
            scheme=_one(request, proto).lower(),
            host=_one(request, host),
            uri=_one(request, uri),
        )
        forwarded = request.headers.get(ip)
    client = forwarded.split(",")[-1].strip() if forwarded else None
    return original, client or None


def answer(request: Request, kind: str, verdict: Verdict) -> Response:
    """The verdict as the proxy understands it: 200 with the identity headers; a redirect
    (302 with `Location`; for nginx, whose `auth_request` passes only 2xx, 401 and 403, a
    401 with `Location` that its `error_page 401` turns into the redirect); 403 and a page."""
    headers = {"Cache-Control": "no-store"}
    if verdict.decision is not None and verdict.decision.id is not None:
        headers["X-Juncture-Decision"] = verdict.decision.id
    headers["X-Juncture-Outcome"] = verdict.kind
    if verdict.kind == "allow":
        return Response(status_code=200, headers={**headers, **verdict.headers})
    if verdict.location is not None:
        headers["Location"] = verdict.location
        return Response(status_code=401 if kind == "nginx" else 302, headers=headers)
    response = refused_page(request, verdict.reason)
    response.headers.update(headers)
    return response


def kind_of(path: str) -> str | None:
    """The proxy a forward-auth path names (`/forward-auth/v1/{proxy}`, Envoy's with the
    request's path after it), or None: no such proxy (404)."""
    if path == PREFIX or path.startswith(PREFIX + "/"):
        return "envoy"
    kind = path[len(BASE) :] if path.startswith(BASE) else None
    return kind if kind in _HEADERS else None


def forward_auth_read(request: Request, body: bytes) -> Response:
    """The answer to the proxy's question (its body, if any, is not read: ``body`` is there
    for api/direct.py, which answers this route at once past Starlette's router)."""
    runtime: Runtime = request.app.state.runtime
    kind = kind_of(request.scope["path"])
    if kind is None:
        raise ApiError(404, "request.not_found", f"the proxy is one of {', '.join(KINDS)}")
    with runtime.consistent_reads():  # the key, the version and the session: one look
        app = authenticate_app_key(request, runtime)
        original, client_ip = original_of(request, kind)
        cookies: SessionCookies = request.app.state.session_cookies
        session = cookies.read(request.cookies.get(SESSION_COOKIE), app.id)
        verdict = runtime.forward.decide(app, original, session, client_ip)
    return answer(request, kind, verdict)


async def forward_auth(request: Request) -> Response:
    return forward_auth_read(request, b"")


#: The route's twin for api/direct.py (a request it may try on the event loop first: one
#: decision, which changes nothing before its first store call that waits).
LOOP_FIRST: dict[Callable[[Request], Awaitable[Response]], Callable[[Request, bytes], Response]]
LOOP_FIRST = {forward_auth: forward_auth_read}

ROUTES = [
    ("/forward-auth/v1/envoy", forward_auth, METHODS),
    ("/forward-auth/v1/envoy/{path:path}", forward_auth, METHODS),
    ("/forward-auth/v1/{proxy}", forward_auth, METHODS),
]
