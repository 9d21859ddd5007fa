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


def test_auto_asks_the_store_and_a_choice_is_kept() -> None:
    assert store_calls("auto", remote=False) == "loop"
    assert store_calls("auto", remote=True) == "threads"
    assert store_calls("loop", remote=True) == "loop"
    assert store_calls("threads", remote=False) == "threads"
    with pytest.raises(ValueError, match="auto, loop or threads"):
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
