"""The Starlette application: routes, error mapping, request ids, metrics, OpenAPI."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from juncture import __version__
from juncture.api import (
    admin,
    approvals,
    boundary,
    devclock,
    directory,
    heap,
    native,
    ssf,
    transmitters,
)
from juncture.api.access import LOOP_FIRST
from juncture.api.access import ROUTES as ACCESS_ROUTES
from juncture.api.boundary import ServiceCalls
from juncture.api.hashing import HashPool
from juncture.api.inventory import ROUTES as INVENTORY_ROUTES
from juncture.api.limits import Limits
from juncture.api.openapi import openapi_document
from juncture.api.problems import problem, problem_of
from juncture.api.views import Health
from juncture.errors import CorruptError, Refusal, StoreError
from juncture.service.clock import ClockWatch, DevClock
from juncture.service.decision_log import DecisionLogWriter
from juncture.service.inventory import InventorySettings
from juncture.service.policies import NoActiveVersion
from juncture.service.receive import Receiver, ReceiveSettings
from juncture.service.runtime import Runtime
from juncture.service.sweep import SweepWorker
from juncture.service.transmit import SignalWorkers, Transmitter

log = logging.getLogger("juncture.api")


class RequestId:
    """Echo `X-Request-ID` (a caller's, if sane, else a new one) on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.counter = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value
                break
        if given is None or len(given) > 128 or not given.isascii():
            self.counter += 1
            given = f"r{time.time_ns():x}{self.counter:x}".encode()
        scope.setdefault("state", {})["request_id"] = given.decode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", given)]
            await send(message)

        await self.app(scope, receive, send_with_id)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "juncture_decisions_total",
            "Decisions by outcome and checkpoint",
            ["outcome", "checkpoint"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "juncture_decision_seconds",
            "Decision latency (API handler)",
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )
        self.sessions = Gauge("juncture_sessions_active", "Active sessions", registry=self.registry)
        self.exported: dict[tuple[str, str], int] = {}


#: The routes that decide or stamp proofs: refused while this node's clock is off.
CLOCKED = ("/access/", "/v1/")


def _errors(
    handler: Callable[[Request], Awaitable[Response]],
    *,
    body_limit: int,
    clocked: bool = False,
    loop_first: bool = False,
) -> Callable[[Request], Awaitable[Response]]:
    async def wrapped(request: Request) -> Response:
        clock: ClockWatch | None = request.app.state.clock
        if clocked and clock is not None and clock.skewed:
            return problem(
                503,
                "unavailable.clock_skew",
                f"this node's clock is off the store's by more than "
                f"{clock.settings.max_skew:g} s: it decides nothing until it is set right",
            )
        with DecisionLogWriter.awaited() as commits:
            response = await _answer(handler, request, body_limit, loop_first)
        if not commits:
            return response
        # Durable decision log: the answer goes only once its records are committed (the
        # loop serves other requests meanwhile; their records join the same commit).
        try:
            await asyncio.gather(*(asyncio.wrap_future(c) for c in commits))
        except StoreError:
            return problem(
                503, "unavailable.decision_log", "the decision could not be logged; try again"
            )
        return response

    return wrapped


async def _answer(
    handler: Callable[[Request], Awaitable[Response]],
    request: Request,
    body_limit: int,
    loop_first: bool,
) -> Response:
    """The handler's answer, on the loop or in a worker thread as the store asks
    (api/boundary.py); any error it lets out answered as a problem, in one place."""
    calls: ServiceCalls = request.app.state.service_calls
    try:
        return await calls.answer(handler, request, body_limit=body_limit, loop_first=loop_first)
    except CorruptError as exc:  # one record, not the store: the rest of the service works on
        log.exception("a stored record is corrupt")
        return problem_of(exc)
    except StoreError as exc:
        log.exception("store unavailable")
        return problem_of(exc)
    except Refusal as exc:
        return problem_of(exc)
    except Exception:  # never a stack trace to a caller
        log.exception("internal error")
        return problem(500, "internal.error", "internal error")


async def metrics(request: Request) -> Response:
    """Prometheus metrics; with a metrics token (``--metrics-token-file``), only for it."""
    token: bytes | None = request.app.state.metrics_token
    if token is not None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return _unauthorized("auth.missing", "an `Authorization: Bearer` token is required")
        if not hmac.compare_digest(given.strip().encode(), token):
            return _unauthorized("auth.invalid", "the token is not valid")
    runtime: Runtime = request.app.state.runtime
    m: Metrics = request.app.state.metrics
    for key, count in list(runtime.log.stats.items()):
        outcome, checkpoint = key
        delta = count - m.exported.get(key, 0)
        if delta > 0:
            m.decisions.labels(outcome=outcome, checkpoint=checkpoint or "-").inc(delta)
            m.exported[key] = count
    try:
        m.sessions.set(runtime.health.active_sessions())
    except StoreError:  # the gauge keeps its last value; /healthz reports the store
        log.warning("store unavailable while reading active sessions for /metrics")
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)


def _unauthorized(code: str, detail: str) -> Response:
    response = problem(401, code, detail)
    response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


async def openapi(request: Request) -> Response:
    """The OpenAPI document, built when the app was created (`api/openapi.py`)."""
    document: bytes = request.app.state.openapi
    return Response(document, media_type="application/json")


async def health(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    # /healthz answers outside the error guard, with its own details (the store's own error
    # text, for writes refused, is for the operator looking at the health check).
    try:
        active = runtime.health.active_version()
    except StoreError:
        return problem(503, "unavailable.store", "the store is unavailable")
    refused = runtime.health.writes_refused()
    if refused is not None:  # reads work, writes do not (a read-only file or file system)
        return problem(503, "unavailable.store", f"the store refuses writes: {refused}")
    dev_clock: DevClock | None = request.app.state.dev_clock
    clock: ClockWatch | None = request.app.state.clock
    skewed = clock is not None and clock.skewed  # a balancer should send this node nothing
    body = Health(
        status="unavailable" if skewed else "ok",
        version=active,
        signals=runtime.observer.enricher.status(),
        decision_log=runtime.log.writer.mode,
        dev=dev_clock is not None,
        # development mode: decisions run on the test clock
        dev_clock=devclock.clock_view(dev_clock) if dev_clock is not None else msgspec.UNSET,
        clock=clock.state if clock is not None else msgspec.UNSET,
        caches=runtime.health.caches(),
    )
    return Response(msgspec.json.encode(body), status_code=503 if skewed else 200,
                    media_type="application/json")  # fmt: skip


def create_app(
    runtime: Runtime,
    *,
    transmitter: Transmitter | None = None,
    receiver: Receiver | None = None,
    inventory: InventorySettings | None = None,
    clock: ClockWatch | None = None,
    limits: Limits | None = None,
    metrics_token: str | None = None,
    dev_clock: DevClock | None = None,
    store_calls: str = "auto",
) -> ASGIApp:
    """The ASGI app over a runtime (which owns the store), with Shared Signals when given;
    with a ``clock``, the decision and session API is refused while it says skewed.
    ``store_calls`` says where requests run (api/boundary.py): ``auto`` (as the store asks),
    ``loop``, ``threads`` or ``loop-first``.

    Raises:
        ValueError: ``store_calls`` is none of those.
    """
    limits = limits or Limits()
    mode = boundary.store_calls(store_calls, remote=runtime.remote_store)
    routes: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]] = [
        *ACCESS_ROUTES,
        *native.ROUTES,
        *admin.ROUTES,
        *directory.ROUTES,
        *INVENTORY_ROUTES,
        *approvals.ROUTES,
        *ssf.ROUTES,
        *devclock.ROUTES,
        *transmitters.ROUTES,
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if clock is not None:
            clock.start()  # the first check runs before any request is served
        sweep_worker = SweepWorker(
            runtime.sweeper, paused=(lambda: clock.skewed) if clock is not None else lambda: False
        )
        sweep_worker.start()
        sweep_worker.wake()  # a run a restart interrupted goes on
        workers = SignalWorkers(transmitter, app.state.receiver)
        workers.start()
        # The active plan is compiled before the heap settles (no version yet, or the store
        # down: it is compiled by the first decision instead).
        with contextlib.suppress(NoActiveVersion, StoreError):
            runtime.policies.active()
        heap.settle()  # what start-up loaded, the active plan included, is never walked again
        yield
        workers.stop()
        if clock is not None:
            clock.stop()
        app.state.hash_pool.close()
        app.state.service_calls.close()
        runtime.shutdown()  # flush the decision log, close the store

    app = Starlette(
        lifespan=lifespan,
        routes=[
            *(
                Route(
                    path,
                    _errors(
                        handler,
                        body_limit=max(limits.body_limit(m, path) for m in methods),
                        clocked=path.startswith(CLOCKED),
                        loop_first=handler in LOOP_FIRST,
                    ),
                    methods=methods,
                )
                for path, handler, methods in routes
            ),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/healthz", health, methods=["GET"]),
        ],
        exception_handlers={
            404: lambda request, exc: problem(404, "request.not_found", "no such endpoint"),
            405: lambda request, exc: problem(405, "request.method", "method not allowed"),
        },
    )
    # Every route is described (else start-up stops here), and the document is built once.
    app.state.openapi = msgspec.json.encode(
        openapi_document(
            __version__, [(r.path, r.methods or ()) for r in app.routes if isinstance(r, Route)]
        )
    )
    app.state.runtime = runtime
    app.state.metrics = Metrics()
    app.state.transmitter = transmitter
    app.state.receiver = receiver or runtime.receiver(ReceiveSettings())
    app.state.inventory = inventory or InventorySettings()
    app.state.clock = clock
    app.state.dev_clock = dev_clock
    app.state.hash_pool = HashPool(limits.hash_concurrency, limits.hash_queue)
    app.state.service_calls = ServiceCalls(mode)
    app.state.metrics_token = metrics_token.encode() if metrics_token else None
    fast = {
        path: _errors(handler, body_limit=limits.body_limit("POST", path),
                      clocked=path.startswith(CLOCKED), loop_first=True)
        for path, handler, methods in routes
        if handler in LOOP_FIRST and methods == ["POST"]
    }  # fmt: skip
    return RequestId(DecisionRoutes(app, fast))


class DecisionRoutes:
    """The single-decision routes straight to their handler, past Starlette's router and
    middleware (a decision's hot path; `bench/http.py`): the same handler, wrapped as its
    route wraps it (`_errors`), answers every error itself; anything it lets out is a 500
    problem, as the server error middleware would answer. Every other request goes to the
    app."""

    def __init__(self, app: Starlette, routes: dict[str, Callable[[Request], Awaitable[Response]]]):
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.routes.get(scope.get("path", "")) if scope["type"] == "http" else None
        if handler is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["app"] = self.app
        try:
            response = await handler(Request(scope, receive))
        except Exception:  # never a stack trace to a caller
            log.exception("internal error")
            response = problem(500, "internal.error", "internal error")
        await response(scope, receive, send)
