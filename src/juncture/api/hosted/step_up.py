"""The hosted step-up page (`/hosted/v1/step-up`): forward auth sends a browser here when the
checkpoint its request maps to answered `step_up`. The page reads the session from the app's
session cookie, decides that checkpoint again through forward auth (the same decision service,
so the step-up it shows is the journey's, now), and offers the methods the step-up names that a
person can answer with a form (a TOTP code, a recovery code, an email code it sends on
asking), or a passkey. The code is verified through the
same challenge service as `POST /v1/challenges/{id}/verify` (lockout, attempts, single use,
a new handle when the AAL rises); the cookie then carries the new handle and the browser goes
back to the return URL, checked against the app's origins as the login page does."""

from __future__ import annotations

from importlib.resources import files
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from juncture.api.auth import authenticate_app_key
from juncture.api.console.render import read_form, secure
from juncture.api.hashing import hash_pool
from juncture.api.hosted.cookies import CSRF_COOKIE, SESSION_COOKIE, SessionCookies
from juncture.api.hosted.pages import (
    FORM_LIMIT,
    check_form,
    check_origin,
    checked_return_to,
    live_session,
    refused_page,
    render,
    secure_cookie,
    set_session,
)
from juncture.errors import CodedRefusal
from juncture.methods.base import MethodError
from juncture.records import App, Challenge
from juncture.service.forward import LOGIN_PATH, Original, Verdict
from juncture.service.outcome import ServiceError
from juncture.service.runtime import Runtime

SCRIPT = (files("juncture.api.hosted") / "static" / "webauthn.js").read_bytes()
#: The kinds this page answers with a form, and what it asks for.
FORMS = {
    "totp": ("Code from your authenticator app", "one-time-code", "numeric"),
    "recovery_code": ("Recovery code", "off", "text"),
    # an email code: the page's "Email me a code" posts /hosted/v1/step-up/send first
    "email_code": ("Code from the email", "one-time-code", "numeric"),
    # a passkey: the page's script (static/webauthn.js) asks the browser, then posts the form
    "webauthn": ("Use a passkey", "", ""),
}
#: What the page says for each refusal of a code (nothing says why a code was wrong).
MESSAGES = {
    "challenge.failed": "The code is wrong.",
    "challenge.no_credential": "You have nothing of this kind set up: use another way.",
    "challenge.proof_malformed": "Give the code as it is shown.",
    "challenge.not_live": "This step-up expired or ran out of attempts: here is a new one.",
    "auth.locked": "Too many failed attempts: try again later.",
    "auth.busy": "The service is busy: try again in a moment.",
    "challenge.send_limited": "A code was sent a moment ago, or too many were: use the one "
    "sent, or ask again later.",
}


def _session(request: Request, app: App) -> tuple[str, str] | None:
    cookies: SessionCookies = request.app.state.session_cookies
    return cookies.read(request.cookies.get(SESSION_COOKIE), app.id)


def _original(url: str) -> Original:
    """The page the browser goes back to, as forward auth reads a request (a redirect back
    is a GET)."""
    parts = urlsplit(url)
    uri = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Original(method="GET", scheme=parts.scheme, host=parts.netloc, uri=uri)


def login_redirect(app_url: str) -> Response:
    """303 to the login page of the URL's origin, coming back to the URL."""
    origin = f"{urlsplit(app_url).scheme}://{urlsplit(app_url).netloc}"
    return secure(RedirectResponse(
        f"{origin}{LOGIN_PATH}?return_to={quote(app_url, safe='')}", status_code=303))  # fmt: skip


def _offered(runtime: Runtime, app: App, challenge: Challenge) -> list[dict[str, str]]:
    """The challenge's methods, in its order, with the form each gets (none: not answered
    on this page yet)."""
    journey, _ = runtime.policies.active().route(app.name, challenge.subject_type)
    offered = []
    for name in challenge.methods:
        info = journey.methods.get(name) if journey is not None else None
        kind = info.kind if info is not None else ""
        label, autocomplete, mode = FORMS.get(kind, ("", "", ""))
        offered.append({"name": name, "kind": kind, "label": label,
                        "autocomplete": autocomplete, "inputmode": mode})  # fmt: skip
    return offered


def _form(request: Request, runtime: Runtime, app: App, return_to: str, challenge: Challenge,
          error: tuple[str, str] | None = None, status: int = 200,
          sent: str | None = None) -> Response:  # fmt: skip
    cookies: SessionCookies = request.app.state.session_cookies
    token, cookie = cookies.new_csrf()
    code, message = error if error is not None else (None, None)
    response = render("step_up.html", status, app=app, return_to=return_to, csrf=token,
                      challenge=challenge.id, methods=_offered(runtime, app, challenge),
                      error=message, code=code, sent=sent)  # fmt: skip
    response.set_cookie(CSRF_COOKIE, cookie, path="/hosted/v1", httponly=True,
                        samesite="strict", secure=secure_cookie(request))  # fmt: skip
    return response


def _follow(request: Request, runtime: Runtime, app: App, return_to: str, verdict: Verdict,
            error: tuple[str, str] | None = None, status: int = 200) -> Response:  # fmt: skip
    """The page for forward auth's verdict on the return URL: back to it when it is allowed
    (or rerouted: forward auth sends it on), to log in when the session is not the cookie's,
    the form for a step-up, the refusal otherwise."""
    match verdict.kind:
        case "allow" | "reroute":
            return secure(RedirectResponse(return_to, status_code=303))
        case "login":
            return login_redirect(return_to)
        case "step_up" if verdict.challenge is not None:
            return _form(request, runtime, app, return_to, verdict.challenge, error, status)
        case _:
            return refused_page(request, verdict.reason)


async def step_up_form(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    app = authenticate_app_key(request, runtime)
    return_to = checked_return_to(app, request.query_params.get("return_to"))
    verdict = runtime.forward.decide(app, _original(return_to), _session(request, app))
    return _follow(request, runtime, app, return_to, verdict)


async def step_up(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    app = authenticate_app_key(request, runtime)
    check_origin(request, app)
    form = await read_form(request, FORM_LIMIT)
    check_form(request, app, form)
    return_to = checked_return_to(app, form.get("return_to"))
    session = live_session(request, runtime, app)
    if session is None:  # none, gone, or a cookie older than the last rise of AAL
        return login_redirect(return_to)
    challenge = runtime.challenges.of_session(app, form.get("challenge", ""), session.id)
    method, code = form.get("method", ""), form.get("code", "").strip()
    if not any(m["name"] == method and m["label"] for m in _offered(runtime, app, challenge)):
        raise ServiceError("challenge.method_not_accepted", f"method `{method}` is not "
                           "answered on this page", 400)  # fmt: skip
    if not code:  # (a passkey's form is posted by the script, with the assertion as the code)
        return _form(request, runtime, app, return_to, challenge,
                     ("request.invalid", "Give the code."), 400)  # fmt: skip
    try:
        outcome = await hash_pool(request).run(
            lambda: runtime.challenges.verify(app, challenge.id, method, code)
        )
    except CodedRefusal as error:  # a service's refusal, or the lockout's
        message = MESSAGES.get(error.code)
        if message is None:
            raise
        if error.code == "challenge.not_live":  # a new challenge for the same page
            verdict = runtime.forward.decide(app, _original(return_to),
                                             (session.id, session.handle))  # fmt: skip
            return _follow(request, runtime, app, return_to, verdict,
                           (error.code, message), error.status)  # fmt: skip
        left = error.extra.get("attempts_left")
        if left is not None:
            message += f" Attempts left: {left}."
        if error.retry_after is not None:
            message += f" Wait {error.retry_after} s."
        response = _form(request, runtime, app, return_to, challenge, (error.code, message),
                         error.status)  # fmt: skip
        if error.retry_after is not None:
            response.headers["Retry-After"] = str(error.retry_after)
        return response
    # The proof is recorded: the session's handle changed if its AAL rose, so the cookie
    # carries the handle it has now, whatever the checkpoint says next.
    current = outcome.session or runtime.sessions.get(app, session.id)
    decision = outcome.decision
    if decision.outcome in ("allow", "reroute"):  # back: forward auth decides the page again
        response = secure(RedirectResponse(return_to, status_code=303))
    elif decision.outcome == "step_up" and outcome.challenge is not None:  # more to prove
        response = _form(request, runtime, app, return_to, outcome.challenge)
    else:
        response = refused_page(request, decision.reason or decision.outcome)
    set_session(request, response, app, current)
    return response


async def send_code(request: Request) -> Response:
    """`POST /hosted/v1/step-up/send`: email a code for the page's challenge (the same service
    as `POST /v1/challenges/{id}/start`), then the page again, saying where it went."""
    runtime: Runtime = request.app.state.runtime
    app = authenticate_app_key(request, runtime)
    check_origin(request, app)
    form = await read_form(request, FORM_LIMIT)
    check_form(request, app, form)
    return_to = checked_return_to(app, form.get("return_to"))
    session = live_session(request, runtime, app)
    if session is None:
        return login_redirect(return_to)
    challenge = runtime.challenges.of_session(app, form.get("challenge", ""), session.id)
    method = form.get("method", "")
    if not any(m["name"] == method and m["kind"] == "email_code"
               for m in _offered(runtime, app, challenge)):  # fmt: skip
        raise ServiceError("challenge.method_not_accepted", f"method `{method}` is not an "
                           "email code of this step-up", 400)  # fmt: skip
    try:
        public, (message, sender) = runtime.challenges.start(app, challenge.id, method)
        if message is not None:
            await sender.send(message)
    except MethodError as error:  # the mail server's or the outbox's: not the person's doing
        raise ServiceError(error.code, str(error), 503) from None
    except CodedRefusal as error:
        shown = MESSAGES.get(error.code)
        if shown is None:
            raise
        response = _form(request, runtime, app, return_to, challenge, (error.code, shown),
                         error.status)  # fmt: skip
        if error.retry_after is not None:
            response.headers["Retry-After"] = str(error.retry_after)
        return response
    return _form(request, runtime, app, return_to, challenge,
                 sent=f"A code was sent to {public.get('sent_to', 'your address')}.")  # fmt: skip


def _problem(error: CodedRefusal) -> Response:
    body = {"code": error.code, "detail": error.detail}
    response = secure(JSONResponse(body, status_code=error.status))
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


async def start_passkey(request: Request) -> Response:
    """The `navigator.credentials.get()` options of a passkey step-up, for the page's script
    (a form post from the page: its CSRF token, the challenge, the method). JSON, errors
    too: ``{"code", "detail"}``."""
    runtime: Runtime = request.app.state.runtime
    try:
        app = authenticate_app_key(request, runtime)
        check_origin(request, app)
        form = await read_form(request, FORM_LIMIT)
        check_form(request, app, form)
        session = live_session(request, runtime, app)
        if session is None:
            raise ServiceError("session.not_found", "no session: log in again", 404)
        challenge = runtime.challenges.of_session(app, form.get("challenge", ""), session.id)
        method = form.get("method", "")
        if not any(m["name"] == method and m["kind"] == "webauthn"
                   for m in _offered(runtime, app, challenge)):  # fmt: skip
            raise ServiceError("challenge.method_not_accepted", f"method `{method}` is not a "
                               "passkey of this step-up", 400)  # fmt: skip
        public, _ = runtime.challenges.start(app, challenge.id, method)
    except CodedRefusal as error:
        return _problem(error)
    return secure(JSONResponse({"options": public}))


async def passkey_script(request: Request) -> Response:
    """The page's one script, from the package (no CDN, no inline script)."""
    response = Response(SCRIPT, media_type="text/javascript; charset=utf-8")
    secure(response).headers["Cache-Control"] = "public, max-age=300"
    return response


__all__ = [
    "login_redirect",
    "passkey_script",
    "send_code",
    "start_passkey",
    "step_up",
    "step_up_form",
]
