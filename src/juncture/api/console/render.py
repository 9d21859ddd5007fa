"""Rendering console pages: the Jinja2 environment over the packaged templates, the security
headers on every answer, and the wrapper every console route runs in (login, scope, CSRF,
audit, errors rendered as pages with their stable codes)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from juncture.api.boundary import ServiceCalls
from juncture.api.console.security import (
    HEADERS,
    Login,
    Logins,
    audit,
    check_csrf,
    check_origin,
    require,
    set_cookie,
)
from juncture.api.direct import answer_error
from juncture.errors import JunctureError
from juncture.service.outcome import ServiceError
from juncture.service.runtime import Runtime

log = logging.getLogger("juncture.console")

templates = Environment(
    loader=PackageLoader("juncture.api.console", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

def when(moment: datetime) -> Markup:
    """A time as people read it, in UTC, in a <time> element with the exact one."""
    utc = moment.astimezone(UTC)
    return Markup('<time datetime="{}">{}</time>').format(
        utc.isoformat(), utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    )


templates.filters["when"] = when

#: Static files served under /console/static/ (vendored: no CDN), by name.
STATIC_TYPES = {"console.css": "text/css; charset=utf-8",
                "console.js": "text/javascript; charset=utf-8"}  # fmt: skip
_STATIC = {name: resources.files("juncture.api.console").joinpath("static", name).read_bytes()
           for name in STATIC_TYPES}  # fmt: skip

#: A form's body at most (a journey file posted from the publish form may be larger).
FORM_LIMIT = 1 << 20


@dataclass
class Ctx:
    """What a console handler is given: the request, the runtime, the login, the form."""

    request: Request
    runtime: Runtime
    login: Login
    form: dict[str, str]

    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        return render(self.request, template, status, login=self.login, **values)

    def can(self, scope: str) -> bool:
        return scope in self.login.scopes


def secure(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers[name] = value
    return response


def render(request: Request, template: str, status: int = 200, **values: Any) -> Response:
    values.setdefault("login", None)
    html = templates.get_template(template).render(path=request.url.path, **values)
    return secure(Response(html, status_code=status, media_type="text/html; charset=utf-8"))


def redirect(to: str) -> Response:
    return secure(RedirectResponse(to, status_code=303))


async def read_form(request: Request, limit: int) -> dict[str, str]:
    """An urlencoded form (the console's forms are): its first value of each field."""
    if request.method != "POST":
        return {}
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise ServiceError("request.content_type", "console forms are urlencoded", 400)
    body = await request.body()
    if len(body) > limit:
        raise ServiceError("request.too_large", "the form is too large", 413)
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


Handler = Callable[[Ctx], Awaitable[Response]]


def page(
    handler: Handler, *, scope: str = "read", action: str | None = None, limit: int = FORM_LIMIT
) -> Callable[[Request], Awaitable[Response]]:
    """A console route: logged in (else to the login page), ``scope`` held (else 403), and for
    a write (``action`` given: a POST) the origin and the CSRF token checked and the outcome
    written to the audit log."""

    async def inner(request: Request) -> Response:
        runtime: Runtime = request.app.state.runtime
        logins: Logins = request.app.state.console_logins
        try:
            login, refreshed = logins.current(request, runtime)
        except JunctureError:
            if action is not None:
                raise
            return redirect("/console/login")
        target = ",".join(f"{k}={v}" for k, v in sorted(request.path_params.items()))
        try:
            if action is not None:
                check_origin(request)
            require(login, scope)
            form = await read_form(request, limit)
            if action is not None:
                check_csrf(login, form.get("csrf"))
            response = await handler(Ctx(request, runtime, login, form))
        except JunctureError as error:
            if action is not None:
                audit(request, login.name, action, target, error.code)
            return error_page(request, error, login)
        if action is not None:
            audit(request, login.name, action, target, "ok")
        if refreshed is not None and "set-cookie" not in response.headers:
            set_cookie(response, request, refreshed)  # the idle clock starts again
        return response

    async def wrapped(request: Request) -> Response:
        calls: ServiceCalls = request.app.state.service_calls
        try:
            return await calls.answer(inner, request, body_limit=limit)
        except JunctureError as error:
            return error_page(request, error, None)
        except Exception as error:  # never a stack trace to a browser
            log.exception("console error")
            return secure(answer_error(error))

    return wrapped


def error_page(request: Request, error: JunctureError, login: Login | None) -> Response:
    return render(request, "error.html", error.status, login=login, code=error.code,
                  message=error.detail, http_status=error.status)  # fmt: skip


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in _STATIC:
        return secure(Response("not found", status_code=404, media_type="text/plain"))
    response = Response(_STATIC[name], media_type=STATIC_TYPES[name])
    secure(response)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
