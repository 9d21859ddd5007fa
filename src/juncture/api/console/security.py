"""The console's security: logins (an admin key exchanged for a signed session cookie with an
idle timeout), scopes checked on every page and action, CSRF tokens on every write, the strict
Content-Security-Policy, and the audit log of every console action (docs/console.md)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from urllib.parse import urlsplit

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from juncture.api import audit as audit_log
from juncture.api.auth import ADMIN_SCOPES
from juncture.errors import AuthError
from juncture.service.ids import split_key
from juncture.service.runtime import Runtime

COOKIE = "juncture_console"
#: A login ends after this long without a request, and after ``LIFETIME`` whatever happens.
IDLE_SECONDS = 15 * 60
LIFETIME_SECONDS = 8 * 3600

#: No inline script or style, nothing from elsewhere, no framing, forms only to the console.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",  # (no-referrer makes Origin `null`)
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}

def audit(request: Request, admin: str | None, action: str, target: str, result: str) -> None:
    """One line of the admin audit log (`api.audit`): who did what to what in the console,
    from where, and how it ended (``ok`` or the error code)."""
    audit_log.write(request, via="console", admin=admin, action=action, target=target,
                    result=result)  # fmt: skip


class Login(msgspec.Struct, kw_only=True):
    """A console login, as its cookie carries it (signed): who, with which admin key (its
    non-secret prefix), its CSRF token, when it started and was last used (epoch seconds)."""

    admin_id: str = msgspec.field(name="a")
    prefix: str = msgspec.field(name="p")
    name: str = msgspec.field(name="n")
    csrf: str = msgspec.field(name="c")
    started: float = msgspec.field(name="s")
    seen: float = msgspec.field(name="t")
    #: The key's scopes as they are now (read again on every request; not in the cookie).
    scopes: tuple[str, ...] = msgspec.field(default=(), name="x")


_CONTEXT = b"juncture console login v1"
#: A login's cookie is written again when it was last written this long ago (the idle clock).
REFRESH_SECONDS = 30


class Logins:
    """Console logins as signed cookies, so that every worker and node of a deployment reads
    them: signed with a key derived from the server's key file (`<db>.keys`: its code key),
    or, without one, a key of this process. Logging out clears the cookie and ends the login
    in this process."""

    def __init__(
        self,
        secret: bytes | None,
        *,
        idle: float = IDLE_SECONDS,
        lifetime: float = LIFETIME_SECONDS,
    ) -> None:
        base = secret if secret else secrets.token_bytes(32)
        self._key = hmac.new(base, _CONTEXT, hashlib.sha256).digest()
        self.idle = idle
        self.lifetime = lifetime
        self._ended: dict[str, float] = {}  # CSRF token -> when its login would end anyway
        self._lock = threading.Lock()

    def _sign(self, login: Login) -> str:
        payload = base64.urlsafe_b64encode(msgspec.json.encode(login)).rstrip(b"=")
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()
        return (payload + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()

    def _read(self, token: str) -> Login | None:
        payload, _, mac = token.encode().partition(b".")
        good = base64.urlsafe_b64encode(hmac.new(self._key, payload, hashlib.sha256).digest())
        if not hmac.compare_digest(mac, good.rstrip(b"=")):
            return None
        try:
            data = base64.urlsafe_b64decode(payload + b"=" * (-len(payload) % 4))
            return msgspec.json.decode(data, type=Login)
        except (msgspec.DecodeError, ValueError):
            return None

    def log_in(self, runtime: Runtime, key: str) -> tuple[str, Login]:
        """A new login for an admin key: the cookie value and the login.

        Raises:
            AuthError: 401 ``auth.invalid``, the key is not a live admin key.
        """
        parts = split_key(key.strip())
        admin = runtime.apps.admin_for_key(*parts) if parts is not None else None
        if admin is None:
            raise AuthError("the key is not valid")
        now = time.time()
        login = Login(admin_id=admin.id, prefix=admin.key.prefix, name=admin.name,
                      csrf=secrets.token_urlsafe(32), started=now, seen=now,
                      scopes=tuple(s for s in ADMIN_SCOPES if s in admin.scopes))  # fmt: skip
        return self._sign(msgspec.structs.replace(login, scopes=())), login

    def current(self, request: Request, runtime: Runtime) -> tuple[Login, str | None]:
        """The request's live login, its scopes as its admin key has them now, and its cookie
        written again when the idle clock should move (None: it need not).

        Raises:
            AuthError: 401 ``auth.console_login``, no login, or it expired or its key went.
        """
        token = request.cookies.get(COOKIE)
        if not token:
            raise AuthError("log in to the console", code="auth.console_login")
        login = self._read(token)
        now = time.time()
        if (
            login is None
            or not 0 <= now - login.seen <= self.idle
            or not 0 <= now - login.started <= self.lifetime
            or login.csrf in self._ended
        ):
            raise AuthError("the console login expired: log in again", code="auth.console_login")
        admin = runtime.apps.admin_now(login.admin_id, login.prefix)
        if admin is None:
            raise AuthError("the admin key is no longer valid", code="auth.console_login")
        login.scopes = tuple(s for s in ADMIN_SCOPES if s in admin.scopes)
        if now - login.seen < REFRESH_SECONDS:
            return login, None
        login.seen = now
        return login, self._sign(msgspec.structs.replace(login, scopes=()))

    def log_out(self, login: Login) -> None:
        with self._lock:
            now = time.time()
            for csrf, until in list(self._ended.items()):
                if until < now:
                    del self._ended[csrf]
            self._ended[login.csrf] = login.started + self.lifetime


def require(login: Login, scope: str) -> None:
    """403 ``auth.forbidden`` unless the login's key has ``scope``."""
    if scope not in login.scopes:
        raise AuthError(f"this key lacks the `{scope}` scope", code="auth.forbidden", status=403)


def check_origin(request: Request) -> None:
    """A write from another origin is refused (``Origin``, or ``Sec-Fetch-Site``, when the
    browser sends them): 403 ``auth.csrf``."""
    origin = request.headers.get("origin")
    if origin is not None:
        own = urlsplit(str(request.url))
        given = urlsplit(origin)
        if (given.scheme, given.netloc) != (own.scheme, own.netloc):
            raise AuthError("the request came from another origin", code="auth.csrf", status=403)
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise AuthError("the request came from another site", code="auth.csrf", status=403)


def check_csrf(login: Login, given: str | None) -> None:
    """403 ``auth.csrf`` unless ``given`` is the login's CSRF token."""
    if not given or not hmac.compare_digest(given.encode(), login.csrf.encode()):
        raise AuthError("the form's CSRF token is missing or wrong: reload the page",
                        code="auth.csrf", status=403)  # fmt: skip


def set_cookie(response: Response, request: Request, token: str | None) -> None:
    """The login cookie (``None``: cleared): HttpOnly, SameSite=Strict, Secure over HTTPS."""
    secure = request.url.scheme == "https"
    if token is None:
        response.delete_cookie(COOKIE, path="/console", secure=secure, httponly=True,
                               samesite="strict")  # fmt: skip
        return
    response.set_cookie(COOKIE, token, path="/console", httponly=True, samesite="strict",
                        secure=secure)  # fmt: skip
