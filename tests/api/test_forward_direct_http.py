"""Forward auth answered at once (api/direct.py, api/protocol.py: past Starlette's router, on
the event loop) gives the answers the ASGI way gives: the same status, identity headers,
redirects and refusals, for every proxy kind; what is not forward auth's goes the router's way."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_decision_route_http import _raw
from .test_forward_http import FORWARDED, World

COUNTER = re.compile(
    r'juncture_decision_requests_at_once_total\{path="([^"]+)",way="(\w+)"\} (\S+)'
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    made = World(tmp_path_factory.mktemp("forward-direct"))
    try:
        yield made
    finally:
        made.stop()


def counted(world: World) -> dict[tuple[str, str], float]:
    text = world.admin.get("/metrics").text
    return {(path, way): float(n) for path, way, n in COUNTER.findall(text)}


def request(world: World, kind: str, uri: str, *, cookie: bool, version: str = "1.1",
            extra: str = "") -> bytes:  # fmt: skip
    """The proxy's question as bytes on the wire, HTTP/1.0 or 1.1."""
    headers = {"Host": "127.0.0.1", "X-Juncture-Key": world.key}
    if cookie:
        headers["Cookie"] = f"juncture_session={world.cookie}"
    if kind == "envoy":
        target = "/forward-auth/v1/envoy" + uri
        headers.update({"Host": "shop.example", "X-Forwarded-Proto": "https"})
    else:
        target = f"/forward-auth/v1/{kind}"
        names = ("X-Original-Method", "X-Original-URI") if kind == "nginx" else (
            "X-Forwarded-Method", "X-Forwarded-Uri")  # fmt: skip
        headers.update({names[0]: "GET", names[1]: uri, **FORWARDED})
    lines = [f"GET {target} HTTP/{version}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + extra + "\r\n\r\n").encode()


def comparable(answer: tuple[int, dict[str, str], bytes]) -> tuple[object, ...]:
    status, headers, body = answer
    kept = {k: v for k, v in headers.items()
            if k.startswith("x-juncture-") and k != "x-juncture-decision"}  # fmt: skip
    problem = re.search(rb'"code":"([a-z._]+)"', body)
    return (status, kept, headers.get("location"), headers.get("cache-control"),
            problem.group(1) if problem else None)  # fmt: skip


@pytest.mark.parametrize("kind", ["nginx", "traefik", "caddy", "envoy"])
def test_at_once_and_the_asgi_way_answer_alike(world: World, kind: str) -> None:
    cases = [("/accounts/alice/x", True), ("/accounts/bob/x", True), ("/moved", True),
             ("/admin/panel", True), ("/nothing/here", True), ("/", False)]  # fmt: skip
    path = f"/forward-auth/v1/{kind}"
    before = counted(world)
    at_once = [_raw(world.server, request(world, kind, uri, cookie=c), 1)[0] for uri, c in cases]
    after = counted(world)
    assert after[(path, "at_once")] - before.get((path, "at_once"), 0) == len(cases)
    # HTTP/1.0 and `Connection: close`: uvicorn's own handling, the ASGI way (still past the
    # router, through `Front`)
    close = "\r\nConnection: close"
    old = [_raw(world.server, request(world, kind, uri, cookie=c, version="1.0"), 1)[0]
           for uri, c in cases]  # fmt: skip
    closing = [_raw(world.server, request(world, kind, uri, cookie=c, extra=close), 1)[0]
               for uri, c in cases]  # fmt: skip
    assert counted(world).get((path, "at_once")) == after[(path, "at_once")]
    assert [comparable(a) for a in at_once] == [comparable(a) for a in old]
    assert [comparable(a) for a in at_once] == [comparable(a) for a in closing]
    statuses = [status for status, _, _ in at_once]
    redirect = 401 if kind == "nginx" else 302
    assert statuses == [200, 403, redirect, redirect, 403, redirect], statuses
    assert at_once[0][1]["x-juncture-subject"] == "alice"
    assert at_once[0][1]["x-juncture-scopes"] == "account:read"


def test_what_is_not_a_proxys_question_goes_the_routers_way(world: World) -> None:
    before = counted(world)
    unknown = world.http.get("/forward-auth/v1/apache", headers={"X-Juncture-Key": world.key})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "request.not_found")
    envoyish = world.http.get("/forward-auth/v1/envoyx", headers={"X-Juncture-Key": world.key})
    assert (envoyish.status_code, envoyish.json()["code"]) == (404, "request.not_found")
    options = world.http.options("/forward-auth/v1/nginx", headers={"X-Juncture-Key": world.key})
    assert (options.status_code, options.json()["code"]) == (405, "request.method")
    head = world.http.head("/forward-auth/v1/nginx", headers={
        "X-Juncture-Key": world.key, "X-Original-Method": "GET", "X-Original-URI": "/",
        "Cookie": f"juncture_session={world.cookie}", **FORWARDED})  # fmt: skip
    assert head.status_code == 200 and head.headers["x-juncture-subject"] == "alice"
    assert counted(world) == before  # none of them was answered at once


def test_an_envoy_path_is_forward_auths_at_any_depth(world: World) -> None:
    deep = _raw(world.server, request(world, "envoy", "/accounts/alice/a/b/c?d=1", cookie=True),
                1)[0]  # fmt: skip
    assert deep[0] == 200 and deep[1]["x-juncture-scopes"] == "account:read"
    root = _raw(world.server, request(world, "envoy", "", cookie=True), 1)[0]
    assert root[0] == 200 and root[1]["x-juncture-scopes"] == "shop"  # `/`: browse


def test_with_requests_in_threads_the_answers_are_the_same(tmp_path: Path) -> None:
    """`--store-calls threads` (as for a networked store): nothing is answered at once; each
    question goes to a worker thread through `Front`, and gets the same answers."""
    threaded = World(tmp_path, args=("--store-calls", "threads"))
    try:
        for kind in ("nginx", "envoy"):
            allowed = _raw(threaded.server, request(threaded, kind, "/accounts/alice/x",
                                                    cookie=True), 1)[0]  # fmt: skip
            assert allowed[0] == 200 and allowed[1]["x-juncture-scopes"] == "account:read"
            refused = _raw(threaded.server, request(threaded, kind, "/accounts/bob/x",
                                                    cookie=True), 1)[0]  # fmt: skip
            assert refused[0] == 403 and b"not_yours" in refused[2]
            login = _raw(threaded.server, request(threaded, kind, "/", cookie=False), 1)[0]
            assert login[0] == (401 if kind == "nginx" else 302)
        ways = counted(threaded)
        assert ways.get(("/forward-auth/v1/nginx", "at_once"), 0) == 0
        assert ways[("/forward-auth/v1/nginx", "declined")] == 3, ways
    finally:
        threaded.stop()
