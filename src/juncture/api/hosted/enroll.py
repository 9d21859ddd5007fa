"""Self-service enrollment of a second factor on the hosted pages (`/hosted/v1/enroll/totp`):
a person logged in with the app's session cookie adds an authenticator app. The same services
as `POST /v1/subjects/{id}/authenticators` and `.../confirm`: the `authenticator.enroll`
checkpoint decides first (the journey's rule, or the built-in one: a first second factor at
AAL 1, any later one with the strongest factor, freshly), then the journey's `totp` method
enrolls; the secret and its QR code are shown once, and the first code confirms it (lockout
applies). Nothing changes on a GET."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import msgspec
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from juncture.api.auth import authenticate_app_key
from juncture.api.console.render import read_form, secure
from juncture.api.hosted.cookies import CSRF_COOKIE, SessionCookies
from juncture.api.hosted.pages import (
    FORM_LIMIT,
    check_form,
    check_origin,
    checked_return_to,
    live_session,
    render,
    secure_cookie,
)
from juncture.api.hosted.step_up import login_redirect
from juncture.errors import CodedRefusal
from juncture.records import App, Session
from juncture.service.directory import ENROLL
from juncture.service.outcome import ServiceError
from juncture.service.runtime import Runtime

#: What the page says for each refusal of a first code.
MESSAGES = {
    "challenge.failed": "The code is wrong: give the one the app shows now.",
    "auth.locked": "Too many failed attempts: try again later.",
    "authenticator.confirmed": "This authenticator app is set up already.",
}


def _page(request: Request, app: App, return_to: str, *, status: int = 200,
          **values: Any) -> Response:  # fmt: skip
    cookies: SessionCookies = request.app.state.session_cookies
    token, cookie = cookies.new_csrf()
    values = {"shown": None, "authenticator": None, "error": None, "code": None, **values}
    response = render("enroll_totp.html", status, app=app, return_to=return_to, csrf=token,
                      **values)  # fmt: skip
    response.set_cookie(CSRF_COOKIE, cookie, path="/hosted/v1", httponly=True,
                        samesite="strict", secure=secure_cookie(request))  # fmt: skip
    return response


def _totp_method(runtime: Runtime, app: App, session: Session) -> tuple[Any, Any, str, Any]:
    """(plan, journey, the journey's first `totp` method, its entry), or 409."""
    plan, journey = runtime.directory.journey(app.name, session.subject_type)
    name = next((m for m, info in journey.methods.items() if info.kind == "totp"), None)
    if name is None:
        raise ServiceError("authenticator.unknown_method", "this app's journey has no "
                           "authenticator app (`kind: totp`) to add", 400)  # fmt: skip
    return plan, journey, name, journey.methods[name]


async def _posted(request: Request) -> tuple[Runtime, App, dict[str, str], str]:
    runtime: Runtime = request.app.state.runtime
    app = authenticate_app_key(request, runtime)
    check_origin(request, app)
    form = await read_form(request, FORM_LIMIT)
    check_form(request, app, form)
    return runtime, app, form, checked_return_to(app, form.get("return_to"))


def _this_page(return_to: str) -> str:
    parts = urlsplit(return_to)
    return (f"{parts.scheme}://{parts.netloc}/hosted/v1/enroll/totp?return_to="
            f"{quote(return_to, safe='')}")  # fmt: skip


async def enroll_form(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    app = authenticate_app_key(request, runtime)
    return_to = checked_return_to(app, request.query_params.get("return_to"))
    session = live_session(request, runtime, app)
    if session is None:
        return login_redirect(_this_page(return_to))
    _totp_method(runtime, app, session)
    return _page(request, app, return_to)


async def enroll(request: Request) -> Response:
    runtime, app, _, return_to = await _posted(request)
    session = live_session(request, runtime, app)
    if session is None:
        return login_redirect(_this_page(return_to))
    plan, journey, name, info = _totp_method(runtime, app, session)
    runtime.directory.methods.get(plan, journey, name)  # configured: or 503 now
    resource = {"type": "authenticator", "id": name,
                "properties": {"method": name, "kind": info.kind, "aal": info.aal}}  # fmt: skip
    outcome = runtime.decisions.decide(app, ENROLL, {"resource": resource}, session_id=session.id)
    decision = outcome.decision
    if decision.outcome != "allow":
        why = "a fresh second factor" if decision.outcome == "step_up" else "what it asks"
        return _page(request, app, return_to, status=403, code="hosted.not_allowed",
                     error=f"Adding an authenticator app here needs {why} ({decision.outcome}: "
                     f"{decision.reason or decision.outcome}): not possible on this page now.")
    subject = runtime.directory.subject(session.subject_type, session.subject_id)
    made = runtime.directory.enroll(plan, journey, subject, name, {"account": subject.id},
                                    label="hosted page")  # fmt: skip
    shown = msgspec.to_builtins(made.shown)
    # segno's SVG of the otpauth URI: its only text is path data (the URI is in the modules,
    # never in the markup), so it is put in the page as it is
    qr = Markup(shown["qr_svg"])  # noqa: S704
    return _page(request, app, return_to, authenticator=made.authenticator.id,
                 shown={"secret": shown["secret"], "qr": qr})  # fmt: skip


async def confirm(request: Request) -> Response:
    runtime, app, form, return_to = await _posted(request)
    session = live_session(request, runtime, app)
    if session is None:
        return login_redirect(_this_page(return_to))
    plan, journey, _, _ = _totp_method(runtime, app, session)
    subject = runtime.directory.subject(session.subject_type, session.subject_id)
    found = runtime.directory.authenticator(subject, form.get("authenticator", ""))
    if found.kind != "totp":
        raise ServiceError("authenticator.not_found", "no such authenticator app", 404)
    code = form.get("code", "").strip()
    try:
        if not code:
            raise ServiceError("request.invalid", "Give the code.", 400)
        runtime.directory.confirm(plan, journey, found, code)
    except CodedRefusal as error:
        message = MESSAGES.get(error.code, error.detail)
        if error.retry_after is not None:
            message += f" Wait {error.retry_after} s."
        response = _page(request, app, return_to, status=error.status, authenticator=found.id,
                         error=message, code=error.code)  # fmt: skip
        if error.retry_after is not None:
            response.headers["Retry-After"] = str(error.retry_after)
        return response
    return secure(RedirectResponse(return_to, status_code=303))


__all__ = ["confirm", "enroll", "enroll_form"]
