"""Apps and administrators as callers: their keys looked up and checked, apps made and their
keys rotated. The API authenticates callers through here, never against the store."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import msgspec

from juncture.errors import NotFoundError, RequestError, StateConflict
from juncture.records import AdminCredential, App, AppKey
from juncture.service.ids import new_id, new_key, secret_matches
from juncture.service.theme import checked_theme
from juncture.store.protocols import ConflictError, Store

_PORTS = {"http": 80, "https": 443}
#: What forward auth's identity headers may carry (docs/proxy.md).
IDENTITY_FIELDS = ("subject", "aal", "scopes")
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")
#: What no URL of an origin may hold: a backslash, a space or control character, DEL.
_REFUSED = re.compile(r"[\x00-\x20\x7f\\]")


def origin_of(url: str) -> str | None:
    """`scheme://host:port` of an absolute http(s) URL (the port always written), or None for
    anything else: another scheme, no host, a user name or password, a bad port, a backslash
    or a control character anywhere."""
    if _REFUSED.search(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    return f"{scheme}://{parts.hostname.lower()}:{port or _PORTS[scheme]}"


def normal_origin(text: str) -> str | None:
    """An app's allowed origin as configured (`https://shop.example`, no path), normalized, or
    None when it is not one."""
    origin = origin_of(text)
    parts = urlsplit(text)
    if origin is None or parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    return origin


def checked_origins(origins: Sequence[str]) -> tuple[str, ...]:
    """Each origin normalized (``https://shop.example`` -> ``https://shop.example:443``).

    Raises:
        RequestError: 400 ``request.invalid``, one is not an http(s) origin without a path.
    """
    out = []
    for given in origins:
        origin = normal_origin(given)
        if origin is None:
            raise RequestError(
                f"`{given[:200]}` is not an origin (`https://host[:port]`, no path, no user)"
            )
        out.append(origin)
    return tuple(dict.fromkeys(out))


def checked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The identity headers: `subject`, `aal`, `scopes` -> a header name.

    Raises:
        RequestError: 400 ``request.invalid``, another field or a name that is not a header's.
    """
    for field, name in headers.items():
        if field not in IDENTITY_FIELDS or not isinstance(name, str) or not _HEADER.match(name):
            raise RequestError(
                "`identity_headers` maps `subject`, `aal`, `scopes` to header names "
                "(letters, digits, `-`)"
            )
    return dict(headers)


class Apps:
    """The apps and admin credentials of one store."""

    def __init__(self, store: Store, now: Callable[[], datetime]) -> None:
        self._store = store
        self._now = now

    def _live(self, key: AppKey, secret: str) -> bool:
        if not secret_matches(secret, key.hash):
            return False
        return key.expires_at is None or self._now() < key.expires_at

    def app_for_key(self, prefix: str, secret: str) -> App | None:
        """The enabled app whose live key this is, or None (never saying what failed)."""
        app = self._store.find_app_by_key_prefix(prefix) if prefix.startswith("jct_app_") else None
        key = next((k for k in app.keys if k.prefix == prefix), None) if app else None
        if app is None or key is None or app.disabled or not self._live(key, secret):
            return None
        return app

    def admin_for_key(self, prefix: str, secret: str) -> AdminCredential | None:
        """The administrator whose live key this is, or None."""
        admin = (
            self._store.find_admin_by_key_prefix(prefix) if prefix.startswith("jct_adm_") else None
        )
        if admin is None or admin.key.prefix != prefix or not self._live(admin.key, secret):
            return None
        return admin

    def admin_now(self, admin_id: str, prefix: str) -> AdminCredential | None:
        """The administrator as stored now, if the key of ``prefix`` is still theirs and live
        (a console login checks it on every request: a key removed or expired ends it)."""
        admin = self._store.find_admin_by_key_prefix(prefix)
        if admin is None or admin.id != admin_id or admin.key.prefix != prefix:
            return None
        if admin.key.expires_at is not None and self._now() >= admin.key.expires_at:
            return None
        return admin

    def create(
        self,
        name: str,
        journeys: Sequence[str],
        assertable_methods: Sequence[str],
        origins: Sequence[str] = (),
        identity_headers: Mapping[str, str] | None = None,
        theme: Mapping[str, object] | None = None,
    ) -> tuple[App, str]:
        """A new app and its first key (the key is returned this once).

        Raises:
            StateConflict: 409 ``state.conflict``, the new id was taken meanwhile.
        """
        key, prefix, digest = new_key("app")
        now = self._now()
        app = App(
            id=new_id("app"),
            name=name,
            created_at=now,
            journeys=tuple(journeys),
            assertable_methods=tuple(assertable_methods),
            keys=(AppKey(prefix=prefix, hash=digest, created_at=now),),
            origins=checked_origins(origins),
            identity_headers=checked_headers(identity_headers or {}),
            theme=checked_theme(theme or {}),
        )
        try:
            self._store.put_app(app, at=now)
        except ConflictError:
            raise StateConflict("try again") from None
        return app, key

    def get(self, app_id: str) -> App | None:
        return self._store.get_app(app_id)

    def list(self) -> Sequence[App]:
        return self._store.list_apps()

    def configure(
        self,
        app_id: str,
        origins: Sequence[str] | None,
        identity_headers: Mapping[str, str] | None,
        theme: Mapping[str, object] | None = None,
        *,
        journeys: Sequence[str] | None = None,
    ) -> App:
        """Change what forward auth and the hosted pages use of the app, or the journeys it
        is bound to (None: unchanged; an empty theme: none; a change of journeys is kept in
        the app's binding history, which replay reads). Everything is checked before anything
        is stored.

        Raises:
            NotFoundError: 404 ``app.not_found``.
            RequestError: 400 ``request.invalid``, an origin or a header that is not one;
                ``app.theme_invalid``/``app.theme_contrast``, a theme that is not one.
        """
        app = self._store.get_app(app_id)
        if app is None:
            raise NotFoundError("no such app", code="app.not_found")
        changes: dict[str, object] = {}
        if origins is not None:
            changes["origins"] = checked_origins(origins)
        if identity_headers is not None:
            changes["identity_headers"] = checked_headers(identity_headers)
        if theme is not None:
            changes["theme"] = checked_theme(theme)
        if journeys is not None:
            changes["journeys"] = tuple(journeys)
        app = msgspec.structs.replace(app, **changes)
        self._store.put_app(app, at=self._now())
        return app

    def rotate_key(self, app_id: str, overlap: timedelta) -> tuple[App, str]:
        """A new key for the app; its live keys work on for ``overlap``, then end.

        Raises:
            NotFoundError: 404 ``app.not_found``.
        """
        app = self._store.get_app(app_id)
        if app is None:
            raise NotFoundError("no such app", code="app.not_found")
        now = self._now()
        until = now + overlap
        old = tuple(
            msgspec.structs.replace(k, expires_at=min(k.expires_at or until, until))
            for k in app.keys
            if k.expires_at is None or k.expires_at > now
        )
        key, prefix, digest = new_key("app")
        app = msgspec.structs.replace(
            app, keys=(*old, AppKey(prefix=prefix, hash=digest, created_at=now))
        )
        self._store.put_app(app)
        return app, key
