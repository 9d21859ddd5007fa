"""The shop of the reference scenarios as a small Starlette app that asks Juncture.

Every decision is Juncture's answer, through `juncture.sdk`: the app knows its own customers
(a password check), what it observes of a request (network, device), and what each page does;
whether a page opens, asks for a second factor or refuses is the active journey's answer, so a
newly published journey changes the app's behaviour on the next click.

Run: ``JUNCTURE_URL=... JUNCTURE_APP_KEY=... uvicorn examples.demo.app:app`` (``make demo``
does it all). Server-rendered HTML, no script."""

from __future__ import annotations

import html
import os
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from juncture.sdk import AsyncClient, Decision, JunctureError
from juncture.sdk.asgi import JunctureMiddleware
from juncture.sdk.enforce import Identity, Incoming, routes

COOKIE = "shop_session"

# The app's own customers (its identity provider): who they are, their password.
CUSTOMERS = {"alice": "wonderland", "bob": "builder"}

# What the app observes of where a customer signs in from; the demo lets you pick.
PLACES = {
    "office": {"network": {"ip": "10.20.30.40"}, "device": {"id": "laptop-1", "managed": True}},
    "cafe": {"network": {"ip": "198.51.100.7"}, "device": {"id": "phone-7", "managed": False}},
}

PRODUCTS = [("Teapot", "24.00"), ("Kettle", "39.00"), ("Mug", "8.50")]

# Each account change: the checkpoint Juncture decides, and the field it changes.
CHANGES = {"email": ("change_email", "email"), "payment": ("change_payment_method", "card")}


@dataclass
class Visit:
    user: str
    session_id: str
    account: dict[str, str] = field(default_factory=dict)
    pending: tuple[str, str, str] | None = None  # (challenge id, change, new value)


VISITS: dict[str, Visit] = {}


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)} · Shop</title></head><body>"
        f'<nav><a href="/shop">Shop</a> · <a href="/account">Account</a> · '
        f'<a href="/">Sign in</a></nav><h1>{html.escape(title)}</h1>{body}</body></html>',
        status,
        headers={"Content-Security-Policy": "default-src 'self'; form-action 'self'"},
    )


def said(decision: Decision) -> str:
    """What Juncture answered, as the page shows it."""
    text = decision.outcome + (f" ({decision.reason})" if decision.reason else "")
    return f"<p class=juncture>Juncture said: <b id=outcome>{html.escape(text)}</b></p>"


async def form(request: Request) -> dict[str, str]:
    fields = parse_qs((await request.body()).decode(), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


def visit_of(request: Request) -> Visit | None:
    return VISITS.get(request.cookies.get(COOKIE, ""))


def identify(request: Incoming) -> Identity | None:
    cookie = request.headers.get("cookie", "")
    token = next((p.split("=", 1)[1] for p in cookie.split("; ") if p.startswith(COOKIE + "=")),
                 "")  # fmt: skip
    visit = VISITS.get(token)
    return None if visit is None else Identity(subject=visit.user, session_id=visit.session_id)


def client_of(request: Request) -> AsyncClient:
    found: AsyncClient = request.app.state.client
    return found


async def sign_in_form(request: Request) -> HTMLResponse:
    places = "".join(f"<option value={p}>{p}</option>" for p in PLACES)
    return page("Sign in", '<form method=post action="/login">'
                '<label>User <input name=user autocomplete=username></label> '
                '<label>Password <input name=password type=password '
                'autocomplete=current-password></label> '
                f'<label>From <select name=place>{places}</select></label> '
                '<button>Sign in</button></form>')  # fmt: skip


async def login(request: Request) -> Response:
    given = await form(request)
    user = given.get("user", "")
    if not user or not secrets.compare_digest(CUSTOMERS.get(user, "\0"), given.get("password", "")):
        return page("Sign in", "<p>Wrong user or password.</p>", 401)
    started = await client_of(request).start_session(
        user, proofs=["password"], context=PLACES.get(given.get("place", ""), PLACES["cafe"])
    )
    if started.session_id is None or started.decision.outcome not in ("allow", "reroute"):
        return page("Sign in", said(started.decision), 403)
    token = secrets.token_urlsafe(24)
    VISITS[token] = Visit(user, started.session_id, {"email": f"{user}@example.com"})
    answer = RedirectResponse(started.decision.path or "/shop", 303)
    answer.set_cookie(COOKIE, token, httponly=True, samesite="strict")
    return answer


async def shop(request: Request) -> HTMLResponse:
    """Decided by the middleware (`browse`) before it runs."""
    items = "".join(f"<li>{html.escape(n)} — €{p}</li>" for n, p in PRODUCTS)
    return page("Shop", f"{said(request.state.juncture)}<ul>{items}</ul>")


async def account(request: Request) -> Response:
    visit = visit_of(request)
    if visit is None:
        return RedirectResponse("/", 303)
    rows = "".join(
        f'<form method=post action="/account/{change}"><label>New {what} '
        f"<input name=value></label> <button>Change {what}</button></form>"
        f"<p>Current {what}: <span id={what}>{html.escape(visit.account.get(what, '-'))}</span></p>"
        for change, (_, what) in CHANGES.items()
    )
    return page(f"Account of {visit.user}", rows)


async def change(request: Request) -> Response:
    """Ask Juncture whether this change may happen now, and do as it says."""
    visit = visit_of(request)
    name = request.path_params["change"]
    if visit is None or name not in CHANGES:
        return RedirectResponse("/", 303)
    value = (await form(request)).get("value", "")
    decision = await decide(request, visit, CHANGES[name][0])
    return act(visit, name, value, decision)


async def decide(request: Request, visit: Visit, action: str) -> Decision:
    try:
        return await client_of(request).evaluate(visit.user, action, session_id=visit.session_id)
    except JunctureError as exc:  # a session Juncture no longer knows: refused
        return Decision(outcome="deny", reason=exc.code)


def act(visit: Visit, name: str, value: str, decision: Decision) -> Response:
    what = CHANGES[name][1]
    visit.pending = None
    if decision.allowed:
        visit.account[what] = value
        return page("Changed", f"{said(decision)}<p>Your {what} is now "
                    f"<span id=changed>{html.escape(value)}</span>.</p>")  # fmt: skip
    if decision.outcome == "reroute" and decision.path:
        return RedirectResponse(decision.path, 303)
    asked = decision.step_up.methods if decision.step_up else ()
    if decision.outcome == "step_up" and "totp" in asked and decision.challenge_id:
        visit.pending = (decision.challenge_id, name, value)
        return page("Confirm it is you", f"{said(decision)}<form method=post action=/step-up>"
                    "<label>Code from your authenticator app <input name=code "
                    "inputmode=numeric autocomplete=one-time-code></label> "
                    "<button>Confirm</button></form>")  # fmt: skip
    if decision.outcome == "revoke":
        VISITS.pop(next((t for t, v in VISITS.items() if v is visit), ""), None)
    return page("Not now", said(decision) + (
        f"<p>Juncture asks for {html.escape(', '.join(asked))}, which this shop does not offer."
        "</p>" if asked else ""), 403)  # fmt: skip


async def step_up(request: Request) -> Response:
    visit = visit_of(request)
    if visit is None or visit.pending is None:
        return RedirectResponse("/account", 303)
    challenge, name, value = visit.pending
    code = (await form(request)).get("code", "")
    try:
        verified = await client_of(request).verify_challenge(challenge, "totp", code)
    except JunctureError as exc:  # a wrong code, a spent challenge: ask Juncture again
        visit.pending = None
        return page("Not confirmed", f"<p>Juncture refused the code: {html.escape(exc.code)}. "
                    '<a href="/account">Try again</a>.</p>', 403)  # fmt: skip
    return act(visit, name, value, verified.decision)


def create(url: str, app_key: str) -> Any:
    app = Starlette(routes=[
        Route("/", sign_in_form),
        Route("/login", login, methods=["POST"]),
        Route("/shop", shop),
        Route("/account", account),
        Route("/account/{change}", change, methods=["POST"]),
        Route("/step-up", step_up, methods=["POST"]),
    ])  # fmt: skip
    client = AsyncClient(url, app_key, on_unavailable="deny")
    app.state.client = client
    return JunctureMiddleware(app, client, identify,
                              checkpoint_for=routes({("GET", "/shop"): "browse"}))  # fmt: skip


def from_environment() -> Any:
    return create(os.environ["JUNCTURE_URL"], os.environ["JUNCTURE_APP_KEY"])
