"""The ASGI middleware, `@checkpoint` and the WSGI middleware, each served by a real server
(uvicorn, wsgiref) in front of a real `juncture serve`."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from juncture.sdk import AsyncClient, Client
from juncture.sdk.asgi import JunctureMiddleware, checkpoint
from juncture.sdk.enforce import Identity, Incoming, routes
from juncture.sdk.wsgi import JunctureWSGIMiddleware
from service.server import free_port

from .world import World, next_code

TABLE = routes({
    ("GET", "/profile"): "view", ("POST", "/email"): "change_email",
    ("GET", "/email"): "change_email", ("*", "/delete"): "delete_everything",
})  # fmt: skip


def identify(request: Incoming) -> Identity | None:
    session = request.headers.get("x-session")
    return None if session is None else Identity(subject="alice", session_id=session)


def asgi_app(world: World, ran: list[str]) -> Any:
    async def handler(request: Request) -> JSONResponse:
        ran.append(request.url.path)
        decision = getattr(request.state, "juncture", None)
        return JSONResponse({"scopes": list(decision.scopes) if decision else None})

    @checkpoint("change_email")
    async def decorated(request: Request) -> JSONResponse:
        ran.append("decorated")
        return JSONResponse({"scopes": list(request.state.juncture.scopes)})

    client = AsyncClient(world.url, world.app_key, retries=0)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()  # its connections, before the loop closes

    paths = ["/profile", "/email", "/delete", "/open"]
    app = Starlette(routes=[*(Route(p, handler, methods=["GET", "POST"]) for p in paths),
                            Route("/decorated", decorated, methods=["POST"])],
                    lifespan=lifespan)  # fmt: skip
    return JunctureMiddleware(app, client, identify, checkpoint_for=TABLE)


@contextmanager
def served_asgi(app: Any, port: int | None = None) -> Iterator[str]:
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", loop="asyncio")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


class Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def served_wsgi(app: Any) -> Iterator[str]:
    server = make_server("127.0.0.1", free_port(), app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def wsgi_app(world: World, ran: list[str]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        ran.append(environ["PATH_INFO"])
        decision = environ.get("juncture.decision")
        start_response("200 OK", [("content-type", "text/plain")])
        return [" ".join(decision.scopes if decision else ["-"]).encode()]

    client = Client(world.url, world.app_key, retries=0)
    return JunctureWSGIMiddleware(app, client, identify, checkpoint_for=TABLE)


def session_of(world: World) -> str:
    with Client(world.url, world.app_key) as client:
        started = client.start_session("alice", proofs=["password"])
    assert started.session_id is not None
    return started.session_id


def check_outcomes(world: World, base: str, ran: list[str], scopes: Any) -> None:
    """What both middleware must answer; ``scopes`` reads the handler's body."""
    session = session_of(world)
    me = {"x-session": session}
    with httpx.Client(base_url=base, timeout=10) as http:
        allowed = http.get("/profile", headers=me)
        assert allowed.status_code == 200 and scopes(allowed) == ["account:read"]
        assert http.get("/profile").status_code == 401  # nobody: not decided, refused
        api = http.post("/email", headers=me)
        assert api.status_code == 401
        assert api.headers["www-authenticate"].startswith(
            'Bearer error="insufficient_user_authentication"'
        )
        assert 'max_age="600"' in api.headers["www-authenticate"]
        assert api.json()["outcome"] == "step_up" and api.json()["methods"] == ["totp"]
        page = http.get("/email", headers={**me, "accept": "text/html,*/*"})
        assert page.status_code == 303
        assert page.headers["location"] == (
            "/hosted/v1/step-up?return_to=" + httpx.QueryParams({"x": f"{base}/email"})["x"]
            .replace(":", "%3A").replace("/", "%2F")
        )  # fmt: skip
        denied = http.post("/delete", headers=me)
        assert denied.status_code == 403 and denied.json()["reason"] == "unknown_action"
        assert http.get("/open").status_code == 200  # not a checkpoint: not decided
        stale = http.get("/profile", headers={"x-session": "s_" + "0" * 26})
        assert stale.status_code == 403  # a session Juncture does not know: refused
        assert ran == ["/profile", "/open"]
        world.server.stop()
        down = http.get("/profile", headers=me)
        assert down.status_code == 503 and down.json()["reason"] == "unavailable"
        assert ran == ["/profile", "/open"]  # the handler never ran without a decision


def test_the_asgi_middleware_answers_each_outcome(world: World):
    ran: list[str] = []
    with served_asgi(asgi_app(world, ran)) as base:
        check_outcomes(world, base, ran, lambda r: r.json()["scopes"])


def test_the_wsgi_middleware_answers_each_outcome(world: World):
    ran: list[str] = []
    with served_wsgi(wsgi_app(world, ran)) as base:
        check_outcomes(world, base, ran, lambda r: r.text.split())


def test_a_checkpoint_decorator_steps_up_then_lets_through(world: World):
    ran: list[str] = []
    session = session_of(world)
    phone = world.enroll_totp(session)
    with served_asgi(asgi_app(world, ran)) as base, httpx.Client(base_url=base) as http:
        asked = http.post("/decorated", headers={"x-session": session})
        assert asked.status_code == 401 and ran == []
        assert "insufficient_user_authentication" in asked.headers["www-authenticate"]
        with Client(world.url, world.app_key) as client:
            verified = client.verify_challenge(asked.json()["challenge_id"], "totp",
                                               next_code(phone))  # fmt: skip
        assert verified.decision.allowed
        done = http.post("/decorated", headers={"x-session": session})
        assert done.status_code == 200 and done.json() == {"scopes": ["account:write"]}
        assert ran == ["decorated"]
