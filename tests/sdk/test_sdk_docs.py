"""docs/sdk.md runs as written: its Python blocks in order, against a real `juncture serve`;
then the applications it builds are served and asked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from juncture.sdk import Client

from .test_middleware_http import served_asgi, served_wsgi
from .world import World, next_code

PAGE = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", PAGE.read_text(encoding="utf-8"), re.M | re.S)


def closing(app: Any) -> Any:
    """The app, with its Juncture client closed at shutdown, inside the server's loop."""

    async def run(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await app.client.aclose()
        await send({"type": "lifespan.shutdown.complete"})

    return run


def test_the_page_runs_as_written(world: World):
    with Client(world.url, world.app_key) as setup:
        enrolling = setup.start_session("alice", proofs=["password"]).session_id
    assert enrolling is not None
    phone = world.enroll_totp(enrolling)
    blocks = python_blocks()
    assert len(blocks) >= 7
    names: dict[str, Any] = {"URL": world.url, "APP_KEY": world.app_key, "CODE": next_code(phone)}
    for number, block in enumerate(blocks):
        exec(compile(block, f"{PAGE}:block{number}", "exec"), names)
    names["client"].close()

    with Client(world.url, world.app_key) as client:
        session = client.start_session("alice", proofs=["password"]).session_id
    assert session is not None
    me = {"x-session": session}
    with served_wsgi(names["wsgi_app"]) as base:
        assert httpx.get(f"{base}/profile", headers=me).text == "account:read"
        assert httpx.get(f"{base}/profile").status_code == 401
    names["wsgi_app"].client.close()
    with served_asgi(closing(names["asgi_app"])) as base:
        assert httpx.get(f"{base}/profile", headers=me).json() == {"scopes": ["account:read"]}
        asked = httpx.post(f"{base}/email", headers=me)
        assert asked.status_code == 401 and "max_age" in asked.headers["www-authenticate"]
