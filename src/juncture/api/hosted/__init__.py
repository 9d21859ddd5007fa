"""Hosted pages (`/hosted/v1/...`): the pages a browser is sent to by forward auth, served
through the app's reverse proxy on the app's own origin, so that the session cookie they set
is the app's (docs/proxy.md)."""

from __future__ import annotations

from juncture.api.hosted.cookies import SessionCookies

__all__ = ["SessionCookies"]
