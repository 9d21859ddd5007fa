"""The single-decision route served straight to its handler (api/app.py `DecisionRoutes`): the
same answers, errors and headers as through the router."""

from __future__ import annotations

from pathlib import Path

import httpx

from juncture.api.app import DecisionRoutes, create_app
from juncture.api.server import open_runtime
from service.server import Server
from service.test_http import bundle, evaluation, new_app, start

PATH = "/access/v1/evaluation"


def test_the_evaluation_route_is_the_fast_one(tmp_path: Path) -> None:
    runtime = open_runtime(tmp_path / "j.db")
    try:
        routes = create_app(runtime).app  # type: ignore[attr-defined]  # inside RequestId
        assert isinstance(routes, DecisionRoutes)
        assert set(routes.routes) == {PATH}
    finally:
        runtime.close()
        runtime.store.close()


def test_answers_errors_and_headers_are_those_of_every_route(tmp_path: Path) -> None:
    server = Server(tmp_path / "j.db", bundle(tmp_path / "v1", "10m")).start()
    try:
        _, web = new_app(server)
        session = start(web)["session"]["id"]
        assert evaluation(web, session)["context"]["outcome"] == "step_up"
        asked = web.post(PATH, json={"subject": {"type": "user", "id": "alice"},
                                     "action": {"name": "login"},
                                     "resource": {"type": "account", "id": "alice"},
                                     "context": {"session_id": session}},
                         headers={"X-Request-ID": "trace-1"})  # fmt: skip
        assert asked.status_code == 200 and asked.json()["decision"] is True, asked.text
        assert asked.headers["x-request-id"] == "trace-1"
        assert asked.headers["content-type"] == "application/json"
        refused = httpx.post(server.url + PATH, json={}, timeout=5)  # no key
        assert (refused.status_code, refused.json()["code"]) == (401, "auth.missing")
        assert refused.headers["x-request-id"]
        wrong = web.get(PATH)  # another method goes through the router
        assert (wrong.status_code, wrong.json()["code"]) == (405, "request.method")
        bad = web.post(PATH, content=b"{", headers={"Content-Type": "application/json"})
        assert (bad.status_code, bad.json()["code"]) == (400, "request.malformed")
        json = {"Content-Type": "application/json"}
        huge = web.post(PATH, content=b"[" * 2_000_000, headers=json)
        assert huge.status_code == 413, huge.text
    finally:
        server.stop()
