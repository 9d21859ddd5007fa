"""The decision API: OpenID AuthZEN Authorization API 1.0 over the runtime.

https://openid.net/specs/authorization-api-1_0.html — the wire model and its rules live in
`authzen.py`; this module binds them to HTTP, the calling app and its sessions.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from juncture.api import authzen
from juncture.api.auth import authenticate_app, connection_of
from juncture.api.problems import MAX_DEPTH, ApiError, raw_body, require_json, too_deep
from juncture.records import App
from juncture.service.runtime import Runtime


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _body(request: Request) -> bytes:
    """The body, read within the size limit (streamed: a huge body is refused unread).

    Every AuthZEN request must be sent as ``Content-Type: application/json`` (Authorization
    API 1.0; certification scenario C.2.4.3): anything else, or none, is a 400 before the
    body is read.
    """
    require_json(request)
    return _shallow(await raw_body(request))


def _shallow(data: bytes) -> bytes:
    if too_deep(data):
        raise ApiError(400, "request.too_deep", f"the body nests deeper than {MAX_DEPTH} levels")
    return data


def _json(body: Any) -> Response:
    return Response(msgspec.json.encode(body), media_type="application/json")


def _decider(runtime: Runtime, app: App, request: Request) -> Callable[[Any], Any]:
    metrics = request.app.state.metrics
    connection = connection_of(request, runtime)

    def decide(evaluation: Any) -> Any:
        started = time.perf_counter()
        facts = authzen.to_facts(evaluation, app=app.name)
        action = facts["action"]["name"]
        outcome = runtime.decisions.decide(
            app,
            action,
            facts,
            session_id=authzen.session_id_of(evaluation),
            connection=connection,
        )
        decision = outcome.decision
        header = (
            authzen.www_authenticate(decision.step_up) if decision.step_up is not None else None
        )
        metrics.latency.observe(time.perf_counter() - started)
        return authzen.to_response(
            decision,
            challenge_id=outcome.challenge.id if outcome.challenge is not None else None,
            www_authenticate=header,
        )

    return decide


async def evaluation(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    evaluation = authzen.decode_evaluation(await _body(request))
    return _json(_decider(runtime, app, request)(evaluation))


def evaluation_read(request: Request, body: bytes) -> Response:
    """`evaluation`'s answer to a request whose body the server has read already (within the
    route's limit): the same checks in the same order, with no await (api/direct.py)."""
    runtime = _runtime(request)
    with runtime.consistent_reads():  # the key and the decision's reads: one look
        app = authenticate_app(request, runtime)
        require_json(request)
        evaluation = authzen.decode_evaluation(_shallow(body))
        return _json(_decider(runtime, app, request)(evaluation))


#: Handlers that may be tried on the event loop first (api/boundary.py, waiting.py), each with
#: its twin for a body read already (api/direct.py): each makes one decision, and a decision
#: changes nothing (not even its log record, written last) before its first store call that
#: waits. A batch may not: its first items are logged before a later one waits.
LOOP_FIRST: dict[Callable[[Request], Awaitable[Response]], Callable[[Request, bytes], Response]]
LOOP_FIRST = {evaluation: evaluation_read}


async def evaluations(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    batch = authzen.decode_evaluations(await _body(request))
    return _json(authzen.run_evaluations(batch, _decider(runtime, app, request)))


def candidates(runtime: Runtime, app: App, search: authzen.SearchRequest) -> list[dict[str, Any]]:
    """The entities a search considers, in a stable order.

    Subjects and resources: those the active bundle declares in its `data/entities` document
    (`subjects`, `resources`, `actions` lists), plus, for subjects, those with sessions of the
    calling app. Actions: the declared ones plus every checkpoint named exactly in a journey.
    """
    plan = runtime.policies.active()
    declared = plan.data.get("entities")
    declared = declared if isinstance(declared, dict) else {}
    key = {"subject": "subjects", "resource": "resources", "action": "actions"}[search.kind]
    found: dict[str, dict[str, Any]] = {}

    def add(entity: Any) -> None:
        if not isinstance(entity, dict):
            return
        if search.kind == "action":
            if isinstance(entity.get("name"), str):
                found.setdefault(entity["name"], {"name": entity["name"]})
            return
        if entity.get("type") == search.base[search.kind]["type"] and isinstance(
            entity.get("id"), str
        ):
            candidate = {"type": entity["type"], "id": entity["id"]}
            if isinstance(entity.get("properties"), dict):  # conditions may read them
                candidate["properties"] = entity["properties"]
            found.setdefault(f"{entity['type']}\0{entity['id']}", candidate)

    for entity in declared.get(key) or []:
        add(entity)
    if search.kind == "subject":
        for session in runtime.sessions.of_app(app, limit=1000):
            add({"type": session.subject_type, "id": session.subject_id})
    if search.kind == "action":
        for journey in plan.journeys.values():
            for name in journey.exact:
                add({"name": name})
    return list(found.values())


def _search(kind: authzen.SearchKind) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        runtime = _runtime(request)
        app = authenticate_app(request, runtime)
        search = authzen.decode_search(kind, await _body(request))
        found = candidates(runtime, app, search)
        return _json(authzen.run_search(search, found, _decider(runtime, app, request)))

    return handler


async def configuration(request: Request) -> Response:
    base = str(request.base_url).rstrip("/")
    return _json(authzen.metadata(base))


ROUTES: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]] = [
    ("/access/v1/evaluation", evaluation, ["POST"]),
    ("/access/v1/evaluations", evaluations, ["POST"]),
    ("/access/v1/search/subject", _search("subject"), ["POST"]),
    ("/access/v1/search/resource", _search("resource"), ["POST"]),
    ("/access/v1/search/action", _search("action"), ["POST"]),
    ("/.well-known/authzen-configuration", configuration, ["GET"]),
]
