"""Who is calling: applications with API keys, administrators with scoped admin keys."""

from __future__ import annotations

from starlette.requests import Request

from juncture.errors import AuthError
from juncture.records import AdminCredential, App
from juncture.service.ids import split_key
from juncture.service.observe import Connection
from juncture.service.runtime import Runtime

ADMIN_SCOPES = ("read", "publish", "manage_apps", "manage_subjects")


def _bearer(request: Request) -> tuple[str, str]:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("an `Authorization: Bearer` key is required", code="auth.missing")
    parts = split_key(token.strip())
    if parts is None:
        raise AuthError("the key is not valid")
    return parts


def authenticate_app(request: Request, runtime: Runtime) -> App:
    """The app whose API key is presented. 401 otherwise (never saying which part failed)."""
    prefix, secret = _bearer(request)
    app = runtime.apps.app_for_key(prefix, secret)
    if app is None:
        raise AuthError("the key is not valid")
    return app


#: The header a reverse proxy (and the hosted pages behind it) presents the app's key in: not
#: `Authorization`, which belongs to the client's request to the app.
PROXY_KEY_HEADER = "x-juncture-key"


def authenticate_app_key(request: Request, runtime: Runtime) -> App:
    """The app whose key the proxy presents in `X-Juncture-Key`: 401 ``auth.missing`` without
    one, ``auth.invalid`` otherwise."""
    values = request.headers.getlist(PROXY_KEY_HEADER)
    if len(values) != 1 or not values[0].strip():
        raise AuthError("the proxy must present the app's key in `X-Juncture-Key`",
                        code="auth.missing")  # fmt: skip
    parts = split_key(values[0].strip())
    app = runtime.apps.app_for_key(*parts) if parts is not None else None
    if app is None:
        raise AuthError("the key is not valid")
    return app


def authenticate_admin(request: Request, runtime: Runtime, scope: str) -> AdminCredential:
    """The administrator presenting a key with ``scope``: 401 without one, 403 outside it."""
    prefix, secret = _bearer(request)
    request.state.admin_prefix = prefix  # for the audit log (api/audit.py): not a secret
    admin = runtime.apps.admin_for_key(prefix, secret)
    if admin is None:
        raise AuthError("the key is not valid")
    request.state.admin_name = admin.name
    if scope not in admin.scopes:
        raise AuthError(f"this key lacks the `{scope}` scope", code="auth.forbidden", status=403)
    return admin


def connection_of(request: Request, runtime: Runtime) -> Connection | None:
    """The connection a request came on, when the server reads client IPs from connections
    (``--connection-ip``): its peer and forwarding headers, for the trusted-proxy rules."""
    if not runtime.observer.settings.connection_ip:
        return None
    headers = request.headers
    return Connection(
        peer=request.client.host if request.client is not None else None,
        forwarded=tuple(headers.getlist("forwarded")),
        x_forwarded_for=tuple(headers.getlist("x-forwarded-for")),
    )
