"""The hosted logout (`/hosted/v1/logout`): a page asking to confirm, whose form (CSRF token,
from the app's origin only) ends the session of the app's session cookie through the same
service as `POST /v1/sessions/{id}/end`, clears the cookie and sends the browser to the return
URL, checked against the app's origins. A GET changes nothing. Its second button logs out on
every device: it ends every active session of the subject at the app (other apps' stay)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from juncture.api.auth import authenticate_app_key
from juncture.api.console.render import read_form, secure
from juncture.api.hosted.cookies import CSRF_COOKIE, SESSION_COOKIE, SessionCookies
from juncture.api.hosted.pages import (
    FORM_LIMIT,
    check_form,
    check_origin,
    checked_return_to,
    live_session,
    render,
    secure_cookie,
)
from juncture.records import App, Session
from juncture.service.outcome import ServiceError
from juncture.service.runtime import Runtime

log = logging.getLogger("juncture.hosted")


def _open_session(request: Request, runtime: Runtime, app: App) -> Session | None:
    """The cookie's session while it is not over (ended and revoked are final)."""
    session = live_session(request, runtime, app)
    return session if session is not None and session.status not in ("ended", "revoked") else None


async def logout_form(request: Request) -> Response:
    """The confirmation page: a button that posts the logout (a link or an image cannot log
    anyone out: only this form, with its CSRF token, does)."""
    runtime: Runtime = request.app.state.runtime
    app = authenticate_app_key(request, runtime)
    return_to = checked_return_to(app, request.query_params.get("return_to"))
    cookies: SessionCookies = request.app.state.session_cookies
    token, cookie = cookies.new_csrf()
    logged_in = _open_session(request, runtime, app) is not None
    response = render("logout.html", app=app, return_to=return_to, csrf=token,
                      logged_in=logged_in)  # fmt: skip
    response.set_cookie(CSRF_COOKIE, cookie, path="/hosted/v1", httponly=True,
                        samesite="strict", secure=secure_cookie(request))  # fmt: skip
    return response


async def log_out(request: Request) -> Response:
    """End the cookie's session (if it still opens one), clear the cookie, `303` to the return
    URL. A store that fails is an error page and the cookie stays: the session is not over."""
    runtime: Runtime = request.app.state.runtime
    app = authenticate_app_key(request, runtime)
    check_origin(request, app)
    form = await read_form(request, FORM_LIMIT)
    check_form(request, app, form)
    return_to = checked_return_to(app, form.get("return_to"))
    everywhere = form.get("everywhere")
    if everywhere not in (None, "1"):
        raise ServiceError("request.invalid", "`everywhere` is `1` or absent", 400)
    session = _open_session(request, runtime, app)
    if session is not None and everywhere == "1":
        ended = runtime.sessions.end_everywhere(app, session)
        log.info("a hosted logout ended %d session(s) of a subject at %s", ended, app.name)
    elif session is not None:
        try:
            runtime.sessions.end(app, session.id, revoke_reason=None)
        except ServiceError as error:
            if error.code != "session.not_active":  # ended meanwhile: as good
                raise
            log.info("a hosted logout found its session ended already")
    response = secure(RedirectResponse(return_to, status_code=303))
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax",
                           secure=secure_cookie(request))  # fmt: skip
    response.delete_cookie(CSRF_COOKIE, path="/hosted/v1")
    return response


__all__ = ["log_out", "logout_form"]
