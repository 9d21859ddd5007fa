"""Where a request's handler runs (api/boundary.py): on the server's loop or in a thread."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from juncture.api.boundary import ServiceCalls, store_calls
from juncture.api.problems import ApiError, json_body
from juncture.waiting import WouldWait, check_may_wait


def test_auto_asks_the_store_and_a_choice_is_kept() -> None:
    assert store_calls("auto", remote=False) == "loop"
    assert store_calls("auto", remote=True) == "loop-first"
    assert store_calls("loop", remote=True) == "loop"
    assert store_calls("threads", remote=False) == "threads"
    assert store_calls("loop-first", remote=False) == "loop-first"
    with pytest.raises(ValueError, match="auto, loop, threads or loop-first"):
        store_calls("fast", remote=False)


def _request(body: bytes) -> Request:
    messages: list[dict[str, Any]] = [{"type": "http.request", "body": body}]

    async def receive() -> Any:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/x",
        "headers": [(b"content-type", b"application/json")],
        "query_string": b"",
    }
    return Request(scope, receive)


async def _where(request: Request) -> Response:
    body = await json_body(request)
    return JSONResponse(
        {
            "thread": threading.get_ident(),
            "loop": id(asyncio.get_running_loop()),
            "body": body,
        }
    )


def _answer(mode: str, body: bytes, limit: int = 1000) -> tuple[dict[str, Any], int, int]:
    calls = ServiceCalls("loop" if mode == "loop" else "threads", threads=2)

    async def main() -> tuple[Response, int, int]:
        response = await calls.answer(_where, _request(body), body_limit=limit)
        return response, threading.get_ident(), id(asyncio.get_running_loop())

    try:
        response, thread, loop = asyncio.run(main())
    finally:
        calls.close()
    return json.loads(bytes(response.body)), thread, loop


def test_on_the_loop_the_handler_runs_in_the_servers_thread_and_loop() -> None:
    seen, thread, loop = _answer("loop", b'{"a": 1}')
    assert seen == {"thread": thread, "loop": loop, "body": {"a": 1}}


def test_in_threads_the_handler_runs_off_the_servers_loop_with_the_same_body() -> None:
    seen, thread, loop = _answer("threads", b'{"a": [1, 2, 3]}')
    assert seen["thread"] != thread
    assert seen["loop"] != loop
    assert seen["body"] == {"a": [1, 2, 3]}


def test_in_threads_a_body_over_the_routes_limit_is_refused_before_the_handler() -> None:
    with pytest.raises(ApiError) as refused:
        _answer("threads", b'{"a": "' + b"x" * 2000 + b'"}', limit=1000)
    assert (refused.value.status, refused.value.code) == (413, "request.too_large")


def test_a_thread_keeps_its_loop_and_close_closes_them() -> None:
    calls = ServiceCalls("threads", threads=1)
    loops: list[int] = []

    async def handler(request: Request) -> Response:
        loops.append(id(asyncio.get_running_loop()))
        return Response(b"")

    async def main() -> None:
        for _ in range(3):
            await calls.answer(handler, _request(b""), body_limit=10)

    asyncio.run(main())
    assert len(set(loops)) == 1  # one worker thread, one loop, made once
    calls.close()
    assert calls._loops == []


def _loop_first(handler: Any, *, loop_first: bool = True) -> tuple[list[tuple[int, Any]], int]:
    """Two requests through a ``loop-first`` ServiceCalls: where each run of the handler was
    (thread ids, with what it read), and the server's thread."""
    calls = ServiceCalls("loop-first", threads=2)
    runs: list[tuple[int, Any]] = []

    async def main() -> int:
        for body in (b'{"n": 1}', b'{"n": 2}'):
            response = await calls.answer(
                lambda r: handler(r, runs), _request(body), body_limit=100, loop_first=loop_first
            )
            assert json.loads(bytes(response.body))["ok"] is True
        return threading.get_ident()

    try:
        server = asyncio.run(main())
    finally:
        calls.close()
    return runs, server


def test_loop_first_a_handler_that_never_waits_stays_on_the_loop() -> None:
    async def never(request: Request, runs: list[tuple[int, Any]]) -> Response:
        runs.append((threading.get_ident(), await json_body(request)))
        return JSONResponse({"ok": True})

    runs, server = _loop_first(never)
    assert runs == [(server, {"n": 1}), (server, {"n": 2})]


def test_loop_first_a_handler_that_would_wait_runs_again_from_the_start_in_a_thread() -> None:
    async def handler(request: Request, runs: list[tuple[int, Any]]) -> Response:
        runs.append((threading.get_ident(), await json_body(request)))
        check_may_wait()  # what a store call that goes to the network does first
        return JSONResponse({"ok": True})

    runs, server = _loop_first(handler)
    assert [body for _, body in runs] == [{"n": 1}, {"n": 1}, {"n": 2}, {"n": 2}]
    assert runs[0][0] == server and runs[2][0] == server  # tried on the loop, with the body
    assert runs[1][0] != server and runs[3][0] != server  # then whole in a thread


def test_loop_first_only_for_the_handlers_that_say_so() -> None:
    async def handler(request: Request, runs: list[tuple[int, Any]]) -> Response:
        runs.append((threading.get_ident(), await json_body(request)))
        check_may_wait()
        return JSONResponse({"ok": True})

    runs, server = _loop_first(handler, loop_first=False)
    assert len(runs) == 2 and all(thread != server for thread, _ in runs)


def test_would_wait_is_not_an_exception_a_service_could_swallow() -> None:
    assert not issubclass(WouldWait, Exception)
    check_may_wait()  # outside a loop-first run: waiting is allowed
