"""The hosted login page's "Sign in with a passkey" (no user name first): the page's script
asks `POST /hosted/v1/login/passkey/start` for `navigator.credentials.get()` options with an
empty ``allowCredentials`` (the authenticator picks the account) and posts the assertion to
`POST /hosted/v1/login/passkey`. The ceremony (service/passkey_login.py) is bound to the
browser by a signed cookie (`juncture_passkey`: its id, readable only as this app's pending
passkey login, never as a session or a named login), and to the app. Both posts are checked
as the other forms are (the app's origin, the CSRF token); a refusal is the login form again
with its code, never a word on which accounts exist."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from juncture.api.auth import authenticate_app_key
from juncture.api.console.render import read_form, secure
from juncture.api.hashing import hash_pool
from juncture.api.hosted.cookies import CSRF_COOKIE, SessionCookies
from juncture.api.hosted.login_methods import LOGIN_COOKIE, _cannot_go_on, _page
from juncture.api.hosted.pages import (
    FORM_LIMIT,
    check_form,
    check_origin,
    checked_return_to,
    login_page,
    secure_cookie,
    set_session,
)
from juncture.api.hosted.step_up import _problem
from juncture.errors import CodedRefusal
from juncture.records import App
from juncture.service.outcome import ServiceError
from juncture.service.runtime import Runtime

PASSKEY_COOKIE = "juncture_passkey"
#: What the page says of a refused passkey login (never which account, nor whether one is).
WORDS = {
    "challenge.failed": "This passkey was not accepted.",
    "challenge.proof_malformed": "This passkey was not accepted.",
    "challenge.not_live": "This passkey login expired or was used: try again.",
    "challenge.method_not_accepted": "Passkeys cannot be used to log in here.",
    "auth.locked": "Too many failed attempts: try again later.",
    "auth.busy": "The service is busy: try again in a moment.",
}


def _ceremony_app(app: App) -> str:
    return f"passkey:{app.id}"  # never an app id nor a named login's: read only as this


async def start(request: Request) -> Response:
    """`POST /hosted/v1/login/passkey/start`: the options (JSON, errors too: ``{"code",
    "detail"}``), and the cookie binding the ceremony to this browser."""
    runtime: Runtime = request.app.state.runtime
    cookies: SessionCookies = request.app.state.session_cookies
    try:
        app = authenticate_app_key(request, runtime)
        check_origin(request, app)
        form = await read_form(request, FORM_LIMIT)
        check_form(request, app, form)
        ceremony, options = runtime.passkey_logins.begin(app)
    except CodedRefusal as error:
        return _problem(error)
    response = secure(JSONResponse({"options": options}))
    response.set_cookie(PASSKEY_COOKIE, cookies.make(_ceremony_app(app), "", ceremony),
                        path="/hosted/v1/login/passkey", httponly=True, samesite="strict",
                        secure=secure_cookie(request))  # fmt: skip
    return response


async def finish(request: Request) -> Response:
    """`POST /hosted/v1/login/passkey`: the assertion (``code``) for the browser's ceremony;
    allowed, the session cookie is set and the browser goes back; another factor needed, the
    login's next methods."""
    runtime: Runtime = request.app.state.runtime
    cookies: SessionCookies = request.app.state.session_cookies
    app = authenticate_app_key(request, runtime)
    check_origin(request, app)
    form = await read_form(request, FORM_LIMIT)
    check_form(request, app, form)
    return_to = checked_return_to(app, form.get("return_to"))
    found = cookies.read(request.cookies.get(PASSKEY_COOKIE), _ceremony_app(app))
    code = form.get("code", "")
    try:
        if found is None:
            raise ServiceError("challenge.not_live", "no passkey login is pending here", 409)
        if not code.strip():
            raise ServiceError("challenge.proof_malformed", "no passkey answer", 400)
        outcome = await hash_pool(request).run(
            lambda: runtime.passkey_logins.finish(app, found[1], code)
        )
    except CodedRefusal as error:
        message = WORDS.get(error.code)
        if message is None:
            raise
        response = login_page(request, app, return_to, message, error.status, code=error.code)
        if error.retry_after is not None:
            response.headers["Retry-After"] = str(error.retry_after)
        response.delete_cookie(PASSKEY_COOKIE, path="/hosted/v1/login/passkey")
        return response
    session = outcome.session
    user = session.subject_id if session is not None else ""
    if outcome.decision.outcome == "step_up" and outcome.challenge is not None:
        response = _page(request, runtime, app, return_to, user, outcome.challenge)
    elif outcome.decision.outcome not in ("allow", "reroute") or session is None:
        response = _cannot_go_on(request, app, return_to, "", outcome)
    else:
        response = secure(RedirectResponse(return_to, status_code=303))
        set_session(request, response, app, session)
        response.delete_cookie(CSRF_COOKIE, path="/hosted/v1")
        response.delete_cookie(LOGIN_COOKIE, path="/hosted/v1")
    response.delete_cookie(PASSKEY_COOKIE, path="/hosted/v1/login/passkey")
    return response


__all__ = ["PASSKEY_COOKIE", "finish", "start"]
