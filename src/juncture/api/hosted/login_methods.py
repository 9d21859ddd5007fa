"""The hosted login page's posts: the password form (`POST /hosted/v1/login`) and its other
ways in (`POST /hosted/v1/login/begin`, "Other ways to log in"): the person names their user
id, a session is started for it (the journey's `login` checkpoint decided, as the password
form does), and the page offers exactly the methods that login's challenge names: a passkey
(the step-up page's script, with `navigator.credentials.get()` options from
`/hosted/v1/login/start`), an email code (sent on asking, `/hosted/v1/login/send`), a
password, a TOTP or recovery code. Every answer goes through the same challenge service as
`POST /v1/challenges/{id}/verify` (lockout, attempts, single use). The pending login is bound
to the browser by a signed cookie (`juncture_login`: the session and its challenge, readable
only as a pending login of this app, never as a session cookie); the session cookie is set
only when the login is allowed. A login that needs another factor (the password form's too)
shows the next challenge's methods; one that cannot go on ends the session it started."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from juncture.api.auth import authenticate_app_key
from juncture.api.console.render import read_form, secure
from juncture.api.hashing import hash_pool
from juncture.api.hosted.cookies import CSRF_COOKIE, SessionCookies
from juncture.api.hosted.pages import (
    FORM_LIMIT,
    MESSAGES,
    abandon,
    check_form,
    check_origin,
    checked_return_to,
    login_page,
    password_method,
    render,
    secure_cookie,
    set_session,
)
from juncture.api.hosted.step_up import MESSAGES as CODE_MESSAGES
from juncture.api.hosted.step_up import _offered, _problem
from juncture.errors import CodedRefusal
from juncture.methods.base import MethodError
from juncture.records import App, Challenge
from juncture.service.outcome import Outcome, ServiceError
from juncture.service.runtime import Runtime

LOGIN_COOKIE = "juncture_login"
PASSWORD = ("Password", "current-password", "text")
#: The step-up page's words for a refused code, said of a login.
CODE_WORDS = {**CODE_MESSAGES, "challenge.not_live": "This login expired, was used or ran out "
              "of attempts: start again.", "subject.disabled": "This account is disabled."}


def _pending_app(app: App) -> str:
    return f"login:{app.id}"  # never an app id: a pending login never reads as a session


def _methods(runtime: Runtime, app: App, challenge: Challenge) -> list[dict[str, str]]:
    offered = _offered(runtime, app, challenge)
    for method in offered:
        if method["kind"] == "password":
            method["label"], method["autocomplete"], method["inputmode"] = PASSWORD
    return offered


def _page(request: Request, runtime: Runtime, app: App, return_to: str, user: str,
          challenge: Challenge, error: tuple[str, str] | None = None,
          status: int = 200, sent: str | None = None) -> Response:  # fmt: skip
    cookies: SessionCookies = request.app.state.session_cookies
    token, cookie = cookies.new_csrf()
    code, message = error if error is not None else (None, None)
    response = render("login_methods.html", status, app=app, return_to=return_to, csrf=token,
                      user=user, challenge=challenge.id, error=message, code=code, sent=sent,
                      methods=_methods(runtime, app, challenge))  # fmt: skip
    response.set_cookie(CSRF_COOKIE, cookie, path="/hosted/v1", httponly=True,
                        samesite="strict", secure=secure_cookie(request))  # fmt: skip
    response.set_cookie(LOGIN_COOKIE, cookies.make(_pending_app(app), challenge.session_id,
                                                   challenge.id),
                        path="/hosted/v1", httponly=True, samesite="strict",
                        secure=secure_cookie(request))  # fmt: skip
    return response


def _cannot_go_on(request: Request, app: App, return_to: str, user: str,
                  outcome: Outcome) -> Response:  # fmt: skip
    runtime: Runtime = request.app.state.runtime
    abandon(runtime, app, outcome)
    reason = outcome.decision.reason or outcome.decision.outcome
    response = login_page(request, app, return_to, f"This login cannot go on here ({reason}).",
                          403, user)  # fmt: skip
    response.delete_cookie(LOGIN_COOKIE, path="/hosted/v1")
    return response


async def log_in(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    cookies: SessionCookies = request.app.state.session_cookies
    app = authenticate_app_key(request, runtime)
    check_origin(request, app)
    form = await read_form(request, FORM_LIMIT)
    if not cookies.csrf_matches(request.cookies.get(CSRF_COOKIE), form.get("csrf")):
        raise ServiceError("auth.csrf", "the form's CSRF token is missing or wrong: reload the "
                           "page", 403)  # fmt: skip
    return_to = checked_return_to(app, form.get("return_to"))
    user, password = form.get("user", "").strip(), form.get("password", "")
    if not user or not password:
        return login_page(request, app, return_to, "Give your user name and password.", 400, user)
    started = None
    try:
        started = runtime.sessions.start(app, {"type": "user", "id": user}, {}, [])
        challenge = started.challenge
        method = password_method(runtime, app, challenge.methods) if challenge else None
        if challenge is None or method is None:
            abandon(runtime, app, started)
            reason = started.decision.reason or started.decision.outcome
            return login_page(request, app, return_to, f"This login cannot go on here ({reason}).",
                         403, user)  # fmt: skip
        outcome = await hash_pool(request).run(
            lambda: runtime.challenges.verify(app, challenge.id, method, password)
        )
    except ServiceError as error:
        abandon(runtime, app, started)
        message = MESSAGES.get(error.code)
        if message is None:
            raise
        return login_page(request, app, return_to, message, error.status, user)
    session = outcome.session
    if outcome.decision.outcome == "step_up" and outcome.challenge is not None:
        return _page(request, runtime, app, return_to, user, outcome.challenge)  # a 2nd factor
    if outcome.decision.outcome not in ("allow", "reroute") or session is None:
        abandon(runtime, app, outcome)
        reason = outcome.decision.reason or outcome.decision.outcome
        return login_page(request, app, return_to, f"This login cannot go on here ({reason}).", 403,
                     user)  # fmt: skip
    response = secure(RedirectResponse(return_to, status_code=303))
    set_session(request, response, app, session)
    response.delete_cookie(CSRF_COOKIE, path="/hosted/v1")
    return response


async def begin(request: Request) -> Response:
    """`POST /hosted/v1/login/begin` (the login form's "Other ways to log in"): a session
    for the named user, and the methods its login's challenge names."""
    runtime: Runtime = request.app.state.runtime
    app = authenticate_app_key(request, runtime)
    check_origin(request, app)
    form = await read_form(request, FORM_LIMIT)
    check_form(request, app, form)
    return_to = checked_return_to(app, form.get("return_to"))
    user = form.get("user", "").strip()
    if not user:
        return login_page(request, app, return_to, "Give your user name.", 400)
    started = runtime.sessions.start(app, {"type": "user", "id": user}, {}, [])
    if started.challenge is None or started.decision.outcome != "step_up":
        return _cannot_go_on(request, app, return_to, user, started)
    return _page(request, runtime, app, return_to, user, started.challenge)


def _pending(request: Request, runtime: Runtime, app: App, form: dict[str, str]) -> Challenge:
    """The challenge of the browser's pending login (404 ``challenge.not_found``: none, or
    not the one the form names)."""
    cookies: SessionCookies = request.app.state.session_cookies
    found = cookies.read(request.cookies.get(LOGIN_COOKIE), _pending_app(app))
    if found is None or found[1] != form.get("challenge", ""):
        raise ServiceError("challenge.not_found", "no login is pending here: start again", 404)
    return runtime.challenges.of_session(app, found[1], found[0])


def _method(runtime: Runtime, app: App, challenge: Challenge, name: str, kind: str = "") -> None:
    if not any(m["name"] == name and m["label"] and (not kind or m["kind"] == kind)
               for m in _methods(runtime, app, challenge)):  # fmt: skip
        raise ServiceError("challenge.method_not_accepted", f"method `{name}` is not answered "
                           "on this page", 400)  # fmt: skip


async def _checked(request: Request) -> tuple[Runtime, App, dict[str, str], Challenge]:
    """A post of the pending login's page: from the app's origin, with its CSRF token."""
    runtime: Runtime = request.app.state.runtime
    app = authenticate_app_key(request, runtime)
    check_origin(request, app)
    form = await read_form(request, FORM_LIMIT)
    check_form(request, app, form)
    return runtime, app, form, _pending(request, runtime, app, form)


def _refused(request: Request, runtime: Runtime, app: App, return_to: str, user: str,
             challenge: Challenge, error: CodedRefusal) -> Response:  # fmt: skip
    message = CODE_WORDS.get(error.code)
    if message is None:
        raise error
    if error.code == "challenge.not_live":  # start again from the login form
        response = login_page(request, app, return_to, message, error.status, user, error.code)
        response.delete_cookie(LOGIN_COOKIE, path="/hosted/v1")
        return response
    left = error.extra.get("attempts_left")
    if left is not None:
        message += f" Attempts left: {left}."
    if error.retry_after is not None:
        message += f" Wait {error.retry_after} s."
    response = _page(request, runtime, app, return_to, user, challenge,
                     (error.code, message), error.status)  # fmt: skip
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


async def verify(request: Request) -> Response:
    """`POST /hosted/v1/login/verify`: a code, a password or a passkey's assertion for the
    pending login; allowed, the session cookie is set and the browser goes back."""
    runtime, app, form, challenge = await _checked(request)
    return_to = checked_return_to(app, form.get("return_to"))
    user = challenge.subject_id  # (the page's name: the challenge's, not the form's)
    method, code = form.get("method", ""), form.get("code", "")
    _method(runtime, app, challenge, method)
    if not code.strip():
        return _refused(request, runtime, app, return_to, user, challenge,
                        ServiceError("challenge.proof_malformed", "no code", 400))  # fmt: skip
    try:
        outcome = await hash_pool(request).run(
            lambda: runtime.challenges.verify(app, challenge.id, method, code)
        )
    except CodedRefusal as error:
        return _refused(request, runtime, app, return_to, user, challenge, error)
    session = outcome.session
    if outcome.decision.outcome == "step_up" and outcome.challenge is not None:
        return _page(request, runtime, app, return_to, user, outcome.challenge)
    if outcome.decision.outcome not in ("allow", "reroute") or session is None:
        return _cannot_go_on(request, app, return_to, user, outcome)
    response = secure(RedirectResponse(return_to, status_code=303))
    set_session(request, response, app, session)
    response.delete_cookie(CSRF_COOKIE, path="/hosted/v1")
    response.delete_cookie(LOGIN_COOKIE, path="/hosted/v1")
    return response


async def send(request: Request) -> Response:
    """`POST /hosted/v1/login/send`: email a code for the pending login."""
    runtime, app, form, challenge = await _checked(request)
    return_to = checked_return_to(app, form.get("return_to"))
    user, method = challenge.subject_id, form.get("method", "")
    _method(runtime, app, challenge, method, "email_code")
    try:
        public, (message, sender) = runtime.challenges.start(app, challenge.id, method)
        if message is not None:
            await sender.send(message)
    except MethodError as error:  # the mail server's or the outbox's: not the person's doing
        raise ServiceError(error.code, str(error), 503) from None
    except CodedRefusal as error:
        return _refused(request, runtime, app, return_to, user, challenge, error)
    return _page(request, runtime, app, return_to, user, challenge,
                 sent=f"A code was sent to {public.get('sent_to', 'your address')}.")  # fmt: skip


async def start_passkey(request: Request) -> Response:
    """`POST /hosted/v1/login/start`: the `navigator.credentials.get()` options for the
    pending login's passkey (JSON, errors too: ``{"code", "detail"}``)."""
    try:
        runtime, app, form, challenge = await _checked(request)
        method = form.get("method", "")
        _method(runtime, app, challenge, method, "webauthn")
        public, _ = runtime.challenges.start(app, challenge.id, method)
    except CodedRefusal as error:
        return _problem(error)
    return secure(JSONResponse({"options": public}))


__all__ = ["LOGIN_COOKIE", "begin", "log_in", "send", "start_passkey", "verify"]
