"""The Starlette application: routes, error mapping, request ids, metrics, OpenAPI."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from juncture import __version__
from juncture.api import (
    admin,
    approvals,
    boundary,
    console,
    devclock,
    directory,
    forward,
    heap,
    native,
    ssf,
    transmitters,
)
from juncture.api.access import LOOP_FIRST as DECIDING
from juncture.api.access import ROUTES as ACCESS_ROUTES
from juncture.api.audit import audited
from juncture.api.boundary import ServiceCalls
from juncture.api.direct import Direct, Front, answer_error, skew_refusal
from juncture.api.hashing import HashPool
from juncture.api.hosted import SessionCookies
from juncture.api.hosted import routes as hosted_pages
from juncture.api.inventory import ROUTES as INVENTORY_ROUTES
from juncture.api.latency import Latencies
from juncture.api.limits import Limits
from juncture.api.openapi import openapi_document
from juncture.api.problems import problem
from juncture.api.views import Health
from juncture.errors import StoreError
from juncture.service.clock import ClockWatch, DevClock
from juncture.service.decision_log import DecisionLogWriter
from juncture.service.inventory import InventorySettings
from juncture.service.policies import NoActiveVersion
from juncture.service.receive import Receiver, ReceiveSettings
from juncture.service.runtime import Runtime
from juncture.service.shadow import ShadowStats
from juncture.service.sweep import SweepWorker
from juncture.service.transmit import SignalWorkers, Transmitter

log = logging.getLogger("juncture.api")

#: The handlers tried on the event loop first, each with its twin for a request whose body is
#: read already (api/boundary.py, api/direct.py).
LOOP_FIRST: dict[Callable[[Request], Awaitable[Response]], Callable[[Request, bytes], Response]]
LOOP_FIRST = {**DECIDING, **forward.LOOP_FIRST}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.decisions = Counter(
            "juncture_decisions_total",
            "Decisions by outcome and checkpoint",
            ["outcome", "checkpoint"],
            registry=self.registry,
        )
        self.latency = Latencies()
        self.registry.register(self.latency)
        self.sessions = Gauge("juncture_sessions_active", "Active sessions", registry=self.registry)
        self.exported: dict[tuple[str, str], int] = {}
        self.at_once = Counter(
            "juncture_decision_requests_at_once_total",
            "Decision requests answered at once by the server's protocol, or handed to the ASGI"
            " app (api/direct.py)",
            ["path", "way"],
            registry=self.registry,
        )
        self.at_once_exported: dict[tuple[str, str], int] = {}
        self.shadow = Counter(
            "juncture_shadow_decisions_total",
            "Live decisions decided again by the shadow version, by transition (active outcome"
            " -> shadow outcome; `error`: it could not decide)",
            ["transition"],
            registry=self.registry,
        )
        self.shadow_lost = Counter(
            "juncture_shadow_lost_total",
            "Live decisions the shadow did not decide (`dropped`: its queue was full) or whose"
            " difference was not recorded (`unrecorded`: the store failed; `over_rate`: past"
            " the node's record rate)",
            ["why"],
            registry=self.registry,
        )
        self.shadow_exported: dict[str, int] = {}


#: The routes that decide or stamp proofs: refused while this node's clock is off.
CLOCKED = ("/access/", "/v1/", "/forward-auth/")


def _errors(
    handler: Callable[[Request], Awaitable[Response]],
    *,
    body_limit: int,
    clocked: bool = False,
    loop_first: bool = False,
) -> Callable[[Request], Awaitable[Response]]:
    async def wrapped(request: Request) -> Response:
        if clocked and (skewed := skew_refusal(request.app.state.clock)) is not None:
            return skewed
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
    except Exception as error:  # never a stack trace to a caller
        return answer_error(error)


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
    direct: dict[str, Direct] = request.app.state.direct
    for path, route in direct.items():
        for way, count in (("at_once", route.answered), ("declined", route.declined)):
            delta = count - m.at_once_exported.get((path, way), 0)
            if delta > 0:
                m.at_once.labels(path=path, way=way).inc(delta)
                m.at_once_exported[(path, way)] = count
    _export_shadow(m, runtime.shadow.stats)
    try:
        m.sessions.set(runtime.health.active_sessions())
    except StoreError:  # the gauge keeps its last value; /healthz reports the store
        log.warning("store unavailable while reading active sessions for /metrics")
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)


def _export_shadow(m: Metrics, stats: ShadowStats) -> None:
    """The shadow's counts since the last scrape, added to the counters."""
    counts = {**{f"t:{k}": v for k, v in list(stats.transitions.items())},
              "l:dropped": stats.dropped, "l:unrecorded": stats.unrecorded,
              "l:over_rate": stats.over_rate}  # fmt: skip
    for key, count in counts.items():
        delta = count - m.shadow_exported.get(key, 0)
        if delta > 0:
            kind, _, label = key.partition(":")
            if kind == "t":
                m.shadow.labels(transition=label).inc(delta)
            else:
                m.shadow_lost.labels(why=label).inc(delta)
            m.shadow_exported[key] = count


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
        *forward.ROUTES,
        *devclock.ROUTES,
        *transmitters.ROUTES,
    ]
    # Every admin route that changes something is audited (api/audit.py), allowed or refused.
    routes = [
        (path, audited(handler, methods[0], path), methods)
        if path.startswith("/admin/") and methods[0] != "GET" else (path, handler, methods)
        for path, handler, methods in routes
    ]  # fmt: skip

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
        # abandoned logins and old challenges deleted (not by a node whose clock is off)
        runtime.housekeeping.start((lambda: clock.skewed) if clock is not None else lambda: False)
        # The active plan is compiled before the heap settles (no version yet, or the store
        # down: it is compiled by the first decision instead).
        with contextlib.suppress(NoActiveVersion, StoreError):
            runtime.policies.active()
        heap.settle()  # what start-up loaded, the active plan included, is never walked again
        runtime.shadow.attach(asyncio.get_running_loop())  # the shadow decides between requests
        yield
        runtime.housekeeping.stop()
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
            console.mount(),
            hosted_pages.mount(),
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
    app.state.console_logins = console.Logins(runtime.methods.env.code_key)
    app.state.session_cookies = SessionCookies(runtime.methods.env.code_key)
    app.state.metrics = Metrics()
    app.state.transmitter = transmitter
    app.state.receiver = receiver or runtime.receiver(ReceiveSettings())
    app.state.inventory = inventory or InventorySettings()
    app.state.clock = clock
    app.state.dev_clock = dev_clock
    app.state.hash_pool = HashPool(limits.hash_concurrency, limits.hash_queue)
    app.state.service_calls = ServiceCalls(mode)
    app.state.metrics_token = metrics_token.encode() if metrics_token else None
    # The routes answered past Starlette's router (api/direct.py): the single decision
    # (POST) and forward auth (the methods it is asked with; Envoy's path goes on after it).
    fast: dict[str, tuple[Callable[[Request], Awaitable[Response]], list[str]]] = {
        path: (handler, methods)
        for path, handler, methods in routes
        if handler in LOOP_FIRST and methods == ["POST"]
    }
    fast.update((forward.BASE + kind, (forward.forward_auth, forward.METHODS))
                for kind in forward.KINDS)  # fmt: skip
    app.state.direct = {
        path: Direct(app, LOOP_FIRST[handler], clocked=path.startswith(CLOCKED))
        for path, (handler, _) in fast.items()
    }
    wrapped = {
        path: _errors(handler, body_limit=max(limits.body_limit(m, path) for m in methods),
                      clocked=path.startswith(CLOCKED), loop_first=True)
        for path, (handler, methods) in fast.items()
    }  # fmt: skip
    return Front(app, wrapped, app.state.direct, _key_of(fast))


def _key_of(fast: Mapping[str, tuple[object, list[str]]]) -> Callable[[str, str], str | None]:
    """A request's route among ``fast`` by its method and path (`Front.key_of`)."""
    decisions = {path for path, (_, methods) in fast.items() if methods == ["POST"]}
    forwarded = frozenset(forward.METHODS)

    def key_of(method: str, path: str) -> str | None:
        if method == "POST" and path in decisions:
            return path
        if method in forwarded and path.startswith(forward.BASE):
            kind = forward.kind_of(path)
            return forward.BASE + kind if kind is not None else None
        return None

    return key_of
