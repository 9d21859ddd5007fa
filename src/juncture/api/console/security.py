"""The console's security: logins (an admin key exchanged for a session cookie with an idle
timeout), scopes checked on every page and action, CSRF tokens on every write, the strict
Content-Security-Policy, and the audit log of every console action.

Logins live in this process's memory: a restart logs everyone out, and behind a balancer a
console user must stick to one node (docs/console.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from juncture.api.auth import ADMIN_SCOPES
from juncture.errors import AuthError
from juncture.service.ids import split_key
from juncture.service.runtime import Runtime

COOKIE = "juncture_console"
#: A login ends after this long without a request, and after ``LIFETIME`` whatever happens.
IDLE_SECONDS = 15 * 60
LIFETIME_SECONDS = 8 * 3600
#: At most this many logins at once (the oldest go first).
MAX_LOGINS = 1000

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

audit_log = logging.getLogger("juncture.audit")


def _audit_handler() -> None:
    """Audit lines go to standard error at INFO whatever uvicorn's log level (once)."""
    if not audit_log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s juncture.audit %(message)s"))
        audit_log.addHandler(handler)
        audit_log.setLevel(logging.INFO)
        audit_log.propagate = False


def audit(request: Request, admin: str | None, action: str, target: str, result: str) -> None:
    """One JSON line in the admin audit log: who did what to what, from where, and how it
    ended (``ok`` or the error code). Never a secret: targets are ids and names."""
    client = request.client.host if request.client is not None else None
    line = {"via": "console", "admin": admin, "action": action, "target": target,
            "result": result, "client": client}  # fmt: skip
    audit_log.info(json.dumps(line, sort_keys=True))


@dataclass
class Login:
    """A console login: who, with which admin key (its non-secret prefix), its CSRF token."""

    admin_id: str
    prefix: str
    name: str
    csrf: str
    started: float
    seen: float
    scopes: tuple[str, ...] = ()


@dataclass
class Logins:
    """The console logins of this process, by the hash of their cookie."""

    idle: float = IDLE_SECONDS
    lifetime: float = LIFETIME_SECONDS
    _by_hash: dict[str, Login] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        _audit_handler()

    @staticmethod
    def _hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def log_in(self, runtime: Runtime, key: str) -> tuple[str, Login]:
        """A new login for an admin key: the cookie value and the login.

        Raises:
            AuthError: 401 ``auth.invalid``, the key is not a live admin key.
        """
        parts = split_key(key.strip())
        admin = runtime.apps.admin_for_key(*parts) if parts is not None else None
        if admin is None:
            raise AuthError("the key is not valid")
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        login = Login(admin_id=admin.id, prefix=admin.key.prefix, name=admin.name,
                      csrf=secrets.token_urlsafe(32), started=now, seen=now,
                      scopes=tuple(s for s in ADMIN_SCOPES if s in admin.scopes))  # fmt: skip
        with self._lock:
            if len(self._by_hash) >= MAX_LOGINS:
                oldest = min(self._by_hash, key=lambda h: self._by_hash[h].seen)
                del self._by_hash[oldest]
            self._by_hash[self._hash(token)] = login
        return token, login

    def current(self, request: Request, runtime: Runtime) -> Login:
        """The request's live login, its scopes as its admin key has them now.

        Raises:
            AuthError: 401 ``auth.console_login``, no login, or it expired or its key went.
        """
        token = request.cookies.get(COOKIE)
        if not token:
            raise AuthError("log in to the console", code="auth.console_login")
        digest = self._hash(token)
        now = time.monotonic()
        with self._lock:
            login = self._by_hash.get(digest)
            if login is not None and (
                now - login.seen > self.idle or now - login.started > self.lifetime
            ):
                del self._by_hash[digest]
                login = None
        if login is None:
            raise AuthError("the console login expired: log in again", code="auth.console_login")
        admin = runtime.apps.admin_now(login.admin_id, login.prefix)
        if admin is None:
            self.log_out(request)
            raise AuthError("the admin key is no longer valid", code="auth.console_login")
        login.seen = now
        login.scopes = tuple(s for s in ADMIN_SCOPES if s in admin.scopes)
        return login

    def log_out(self, request: Request) -> None:
        token = request.cookies.get(COOKIE)
        if token:
            with self._lock:
                self._by_hash.pop(self._hash(token), None)


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
