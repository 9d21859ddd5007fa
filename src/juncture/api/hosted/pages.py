"""The hosted login page (`/hosted/v1/login`): a user name and a password, checked through the
same services as the session API (a session started, its login's challenge answered with the
journey's password method, so lockout and every rule of the journey apply), then the app's
session cookie set and the browser sent back to the return URL, checked against the app's
origins. Rendered with Jinja2 under the console's strict CSP; the form carries a CSRF token
vouched for by a signed cookie, and a post from another origin is refused."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import Response

from juncture.api.auth import authenticate_app_key
from juncture.api.boundary import ServiceCalls
from juncture.api.console.render import secure
from juncture.api.console.security import CSP
from juncture.api.direct import answer_error
from juncture.api.hosted.cookies import CSRF_COOKIE, SESSION_COOKIE, SessionCookies
from juncture.errors import JunctureError
from juncture.records import App, Session
from juncture.service.apps import origin_of
from juncture.service.clock import ClockWatch
from juncture.service.forward import checked_return
from juncture.service.outcome import Outcome, ServiceError
from juncture.service.runtime import Runtime
from juncture.service.theme import logo_origin, stylesheet

log = logging.getLogger("juncture.hosted")

templates = Environment(
    loader=PackageLoader("juncture.api.hosted", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
FORM_LIMIT = 16 << 10
#: What the page says for each refusal of a login (never which of the name or password).
_WRONG = "The user name or password is wrong."
MESSAGES = {
    "challenge.failed": _WRONG,
    "challenge.no_credential": _WRONG,
    "challenge.not_live": "Too many attempts for this login: start again.",
    "auth.locked": "Too many failed attempts: this account is locked for a while. Try again later.",
    "subject.disabled": "This account is disabled.",
    "auth.busy": "The service is busy: try again in a moment.",
}
REFUSALS = {
    "no_route": "This address is not open to anyone.",
    "origin_not_allowed": "This site is not one Juncture may send you back to.",
    "path_refused": "This address is not valid.",
}


def render(template: str, status: int = 200, **values: object) -> Response:
    """A page; when ``app`` is the App, in its theme (docs/proxy.md#themes): its name, its
    logo (the CSP's `img-src` then also allows the logo's origin), its stylesheet."""
    app = values.get("app")
    theme = app.theme if isinstance(app, App) else None
    if isinstance(app, App):
        values["app"] = theme.name if theme is not None and theme.name else app.name
        values["stylesheet"] = f"/hosted/v1/theme/{app.id}.css"
    values.setdefault("stylesheet", "/hosted/v1/theme/default.css")
    values["logo"] = theme.logo if theme is not None else None
    html = templates.get_template(template).render(**values)
    response = secure(Response(html, status_code=status, media_type="text/html; charset=utf-8"))
    logo = logo_origin(theme)
    if logo is not None:
        response.headers["Content-Security-Policy"] = CSP.replace(
            "img-src 'self'", f"img-src 'self' {logo}"
        )
    return response


async def theme_css(request: Request) -> Response:
    """The app's stylesheet (`/hosted/v1/theme/{app}.css`, `default` for the plain one): the
    app of the key the proxy sends; another app's id is 404."""
    runtime: Runtime = request.app.state.runtime
    name = request.path_params["app_id"]
    theme = None
    if name != "default":
        app = authenticate_app_key(request, runtime)
        if name != app.id:
            raise ServiceError("app.not_found", "no such app", 404)
        theme = app.theme
    response = secure(Response(stylesheet(theme), media_type="text/css; charset=utf-8"))
    response.headers["Cache-Control"] = "no-cache"  # a changed theme shows on the next page
    return response


def refused_page(request: Request, reason: str) -> Response:
    """403 and a page saying the request was refused, and why when the reason is one people
    can act on (a journey's own reasons are shown as their names)."""
    return render("refused.html", 403, reason=reason, message=REFUSALS.get(reason))


def secure_cookie(request: Request) -> bool:
    """Secure when the browser's request was HTTPS, as the proxy (authenticated by the app's
    key before this is read) says."""
    return request.headers.get("x-forwarded-proto", request.url.scheme).lower() == "https"


def set_session(request: Request, response: Response, app: App, session: Session) -> None:
    """Set the app's session cookie for ``session`` (its handle now).

    SameSite=Lax: the cookie must go with the top-level navigation back to the app (and every
    later one from another site's link); Strict would drop it on those, Lax still keeps it off
    other sites' subrequests and posts."""
    cookies: SessionCookies = request.app.state.session_cookies
    response.set_cookie(SESSION_COOKIE, cookies.make(app.id, session.id, session.handle),
                        path="/", httponly=True, samesite="lax",
                        secure=secure_cookie(request))  # fmt: skip


def live_session(request: Request, runtime: Runtime, app: App) -> Session | None:
    """The session of the app's session cookie, when the cookie's handle is the session's
    handle now (None: no cookie, another app's, or older than the last rise of AAL)."""
    cookies: SessionCookies = request.app.state.session_cookies
    found = cookies.read(request.cookies.get(SESSION_COOKIE), app.id)
    if found is None:
        return None
    try:
        session = runtime.sessions.get(app, found[0])
    except ServiceError:
        return None
    return session if hmac.compare_digest(session.handle, found[1]) else None


def check_form(request: Request, app: App, form: dict[str, str]) -> None:
    """403 ``auth.csrf`` for a post without the form's CSRF token (``check_origin`` first)."""
    cookies: SessionCookies = request.app.state.session_cookies
    if not cookies.csrf_matches(request.cookies.get(CSRF_COOKIE), form.get("csrf")):
        raise ServiceError("auth.csrf", "the form's CSRF token is missing or wrong: reload the "
                           "page", 403)  # fmt: skip


def checked_return_to(app: App, given: str | None) -> str:
    url = checked_return(given or "", app)
    if url is None:
        raise ServiceError("hosted.return_to", "the return address is not one of the app's "
                           "origins", 400)  # fmt: skip
    return url


def check_origin(request: Request, app: App) -> None:
    """A post from anywhere but the app's own origins is refused (403 ``auth.csrf``)."""
    origin = request.headers.get("origin")
    if origin is not None and origin_of(origin) not in app.origins:
        raise ServiceError("auth.csrf", "the form was posted from another site", 403)
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise ServiceError("auth.csrf", "the form was posted from another site", 403)


def login_page(request: Request, app: App, return_to: str, error: str | None, status: int = 200,
               user: str = "", code: str | None = None) -> Response:  # fmt: skip
    cookies: SessionCookies = request.app.state.session_cookies
    token, cookie = cookies.new_csrf()
    runtime: Runtime = request.app.state.runtime
    passkey = runtime.passkey_logins.method(app) is not None  # "Sign in with a passkey"
    response = render("login.html", status, app=app, return_to=return_to, csrf=token,
                      error=error, user=user, code=code, passkey=passkey)  # fmt: skip
    response.set_cookie(CSRF_COOKIE, cookie, path="/hosted/v1", httponly=True,
                        samesite="strict", secure=secure_cookie(request))  # fmt: skip
    return response


async def login_form(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    app = authenticate_app_key(request, runtime)
    return_to = checked_return_to(app, request.query_params.get("return_to"))
    return login_page(request, app, return_to, None)


def password_method(runtime: Runtime, app: App, methods: tuple[str, ...]) -> str | None:
    journey, _ = runtime.policies.active().route(app.name, "user")
    if journey is None:
        return None
    return next((m for m in methods if m in journey.methods
                 and journey.methods[m].kind == "password"), None)  # fmt: skip


def abandon(runtime: Runtime, app: App, outcome: Outcome | None) -> None:
    """End the session a login that did not go on started: it was never handed out."""
    session = outcome.session if outcome is not None else None
    if session is None:
        return
    try:
        runtime.sessions.end(app, session.id, revoke_reason=None)
    except JunctureError:  # already over, or the store failed: it was never handed out
        log.info("a failed hosted login's session could not be ended")


Handler = Callable[[Request], Awaitable[Response]]


def page(handler: Handler, *, clocked: bool = True) -> Handler:
    """A hosted page's handler, its errors an error page. ``clocked``: it decides or takes a
    proof, so it is refused (503 ``unavailable.clock_skew``) while this node's clock is off
    the store's, as the API's decision routes are (`api.app.CLOCKED`)."""

    async def inner(request: Request) -> Response:
        try:
            return await handler(request)
        except JunctureError as error:
            return render("error.html", error.status, code=error.code, message=error.detail)

    async def wrapped(request: Request) -> Response:
        watch: ClockWatch | None = request.app.state.clock
        if clocked and watch is not None and watch.skewed:
            return render("error.html", 503, code="unavailable.clock_skew",
                          message="This service's clock is wrong, so it cannot check who you "
                          "are right now. Try again in a few minutes.")  # fmt: skip
        calls: ServiceCalls = request.app.state.service_calls
        try:
            return await calls.answer(inner, request, body_limit=FORM_LIMIT)
        except JunctureError as error:
            return render("error.html", error.status, code=error.code, message=error.detail)
        except Exception as error:  # never a stack trace to a browser
            log.exception("hosted page error")
            return secure(answer_error(error))

    return wrapped


__all__ = ["page", "refused_page", "render", "set_session", "theme_css"]
