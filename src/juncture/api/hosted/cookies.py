"""The hosted session cookie: a Juncture session bound to one app, signed as the console's
login cookie is (HMAC-SHA256 under a key derived from the server's key file, so every worker
and node reads it), and the login form's CSRF cookie."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import msgspec

SESSION_COOKIE = "juncture_session"
CSRF_COOKIE = "juncture_csrf"


class SessionToken(msgspec.Struct, frozen=True, array_like=True):
    """What the session cookie carries: the app it is bound to, the session, its handle (which
    changes whenever the session's AAL rises: an older cookie then no longer opens it)."""

    app_id: str
    session_id: str
    handle: str


class SessionCookies:
    """Signs and reads the hosted cookies."""

    def __init__(self, secret: bytes | None) -> None:
        base = secret if secret else secrets.token_bytes(32)
        self._key = hmac.new(base, b"juncture hosted session v1", hashlib.sha256).digest()

    def _sign(self, payload: bytes) -> str:
        data = base64.urlsafe_b64encode(payload).rstrip(b"=")
        mac = base64.urlsafe_b64encode(hmac.new(self._key, data, hashlib.sha256).digest())
        return (data + b"." + mac.rstrip(b"=")).decode()

    def _open(self, token: str | None) -> bytes | None:
        if not token:
            return None
        data, _, mac = token.encode("ascii", errors="replace").partition(b".")
        good = base64.urlsafe_b64encode(hmac.new(self._key, data, hashlib.sha256).digest())
        if not hmac.compare_digest(mac, good.rstrip(b"=")):
            return None
        try:
            return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
        except ValueError:
            return None

    def make(self, app_id: str, session_id: str, handle: str) -> str:
        return self._sign(msgspec.json.encode(SessionToken(app_id, session_id, handle)))

    def read(self, token: str | None, app_id: str) -> tuple[str, str] | None:
        """(session id, handle) of a good cookie bound to ``app_id``, else None."""
        payload = self._open(token)
        if payload is None:
            return None
        try:
            found = msgspec.json.decode(payload, type=SessionToken)
        except msgspec.DecodeError:
            return None
        if found.app_id != app_id:
            return None
        return found.session_id, found.handle

    def new_csrf(self) -> tuple[str, str]:
        """A CSRF token for a form and the cookie that vouches for it."""
        token = secrets.token_urlsafe(32)
        return token, self._sign(b"csrf:" + token.encode())

    def csrf_matches(self, cookie: str | None, given: str | None) -> bool:
        payload = self._open(cookie)
        if payload is None or not given or not payload.startswith(b"csrf:"):
            return False
        return hmac.compare_digest(payload[5:], given.encode())
