"""The single-decision route answered at once (api/direct.py, api/protocol.py): the same
answers, errors and headers as through the router, and the ASGI way whenever the request or
the server asks for it."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import httpx

from juncture.api.app import create_app
from juncture.api.direct import Front
from juncture.api.server import open_runtime
from service.server import Server
from service.test_http import admin, bundle, evaluation, new_app, start

PATH = "/access/v1/evaluation"


def test_the_evaluation_and_forward_auth_are_the_fast_routes(tmp_path: Path) -> None:
    runtime = open_runtime(tmp_path / "j.db")
    try:
        front = create_app(runtime)
        assert isinstance(front, Front)
        forward = {f"/forward-auth/v1/{kind}" for kind in ("nginx", "traefik", "caddy", "envoy")}
        assert set(front.routes) == set(front.direct) == {PATH, *forward}
        assert front.key_of("POST", PATH) == PATH
        assert front.key_of("GET", PATH) is None and front.key_of("POST", PATH + "/") is None
        assert front.key_of("DELETE", "/forward-auth/v1/nginx") == "/forward-auth/v1/nginx"
        assert front.key_of("GET", "/forward-auth/v1/envoy/a/b") == "/forward-auth/v1/envoy"
        for method, path in (("HEAD", "/forward-auth/v1/nginx"), ("GET", "/forward-auth/v1/x"),
                             ("GET", "/forward-auth/v1/nginx/"), ("GET", "/forward-auth/v1/envoyx"),
                             ("OPTIONS", "/forward-auth/v1/envoy")):  # fmt: skip
            assert front.key_of(method, path) is None, (method, path)
    finally:
        runtime.close()
        runtime.store.close()


def _counted(server: Server) -> dict[str, float]:
    """The at-once counters of `/metrics` (`way` -> count)."""
    with admin(server) as client:
        text = client.get("/metrics").text
    found = re.findall(
        r'juncture_decision_requests_at_once_total\{path="([^"]+)",way="(\w+)"\} (\S+)', text
    )
    return {way: float(count) for path, way, count in found if path == PATH}


def _body(session: str) -> bytes:
    return (
        b'{"subject":{"type":"user","id":"alice"},"action":{"name":"login"},'
        b'"resource":{"type":"account","id":"alice"},"context":{"session_id":"'
        + session.encode()
        + b'"}}'
    )


def _raw(server: Server, data: bytes, answers: int) -> list[tuple[int, dict[str, str], bytes]]:
    """``answers`` HTTP/1.1 answers read off one connection after sending ``data``."""
    out: list[tuple[int, dict[str, str], bytes]] = []
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        buffer = b""
        while len(out) < answers:
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65536)
                assert chunk, f"connection closed after {len(out)} answers"
                buffer += chunk
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            status_line, *lines = head.decode().split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines)}
            length = int(headers["content-length"])
            while len(buffer) < length:
                chunk = sock.recv(65536)
                assert chunk
                buffer += chunk
            out.append((int(status_line.split()[1]), headers, buffer[:length]))
            buffer = buffer[length:]
    return out


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
        assert asked.headers["date"] and asked.headers["server"] == "uvicorn"
        odd = web.post(PATH, json={}, headers={"X-Request-ID": "a\tb"})
        assert odd.status_code == 400 and odd.headers["x-request-id"].startswith("r"), odd.text
        refused = httpx.post(server.url + PATH, json={}, timeout=5)  # no key
        assert (refused.status_code, refused.json()["code"]) == (401, "auth.missing")
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert refused.headers["x-request-id"]
        wrong = web.get(PATH)  # another method goes through the router
        assert (wrong.status_code, wrong.json()["code"]) == (405, "request.method")
        bad = web.post(PATH, content=b"{", headers={"Content-Type": "application/json"})
        assert (bad.status_code, bad.json()["code"]) == (400, "request.malformed")
        text = web.post(PATH, content=b"{}", headers={"Content-Type": "text/plain"})
        assert (text.status_code, text.json()["code"]) == (400, "request.content_type")
        json = {"Content-Type": "application/json"}
        huge = web.post(PATH, content=b"[" * 2_000_000, headers=json)
        assert huge.status_code == 413, huge.text
        counted = _counted(server)
        # Six answered at once; the 413 was refused by the protocol before any route.
        assert counted["at_once"] == 6 and counted.get("declined", 0) == 0, counted
    finally:
        server.stop()


def test_pipelined_requests_are_answered_in_order(tmp_path: Path) -> None:
    server = Server(tmp_path / "j.db", bundle(tmp_path / "v1", "10m")).start()
    try:
        _, web = new_app(server)
        session = start(web)["session"]["id"]
        key = web.headers["authorization"].encode()
        body = _body(session)

        def decision(n: int) -> bytes:
            length = str(len(body)).encode()
            return (b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + key
                    + b"\r\nContent-Type: application/json\r\nX-Request-ID: p" + str(n).encode()
                    + b"\r\nContent-Length: " + length + b"\r\n\r\n" + body)  # fmt: skip

        # Sent in one piece: five decisions, a GET that goes the ASGI way, one more decision.
        requests = b"".join(decision(n) for n in range(5))
        requests += b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: p5\r\n\r\n"
        requests += decision(6)
        answers = _raw(server, requests, 7)
        assert [headers["x-request-id"] for _, headers, _ in answers] == [
            f"p{n}" for n in range(7)
        ]
        assert [status for status, _, _ in answers] == [200] * 7
        assert all(b'"decision":true' in body for _, _, body in answers[:5] + answers[6:])
        assert b'"status":"ok"' in answers[5][2]
    finally:
        server.stop()


def test_what_goes_the_asgi_way_gets_the_same_answer(tmp_path: Path) -> None:
    server = Server(tmp_path / "j.db", bundle(tmp_path / "v1", "10m")).start()
    try:
        _, web = new_app(server)
        session = start(web)["session"]["id"]
        key = web.headers["authorization"].encode()
        body = _body(session)
        head = b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: " + key
        head += b"\r\nContent-Type: application/json\r\nContent-Length: "
        head += str(len(body)).encode()
        before = _counted(server).get("at_once", 0)
        # HTTP/1.0, Connection: close, Expect: 100-continue: uvicorn's own handling.
        for extra in (b"", b"\r\nConnection: close", b"\r\nExpect: 100-continue"):
            request = head + extra + b"\r\n\r\n" + body
            if not extra:
                request = request.replace(b"HTTP/1.1", b"HTTP/1.0", 1)
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(request)
                data = b""
                while b'"decision":true' not in data and (chunk := sock.recv(65536)):
                    data += chunk
            assert b" 200 OK\r\n" in data and b'"decision":true' in data, data
        counted = _counted(server)
        assert counted.get("at_once", 0) == before, counted
        assert counted.get("declined", 0) == 0  # never tried: the protocol kept them from the start
    finally:
        server.stop()


def test_with_the_durable_log_every_decision_waits_for_its_commit(tmp_path: Path) -> None:
    server = Server(
        tmp_path / "j.db", bundle(tmp_path / "v1", "10m"), args=("--decision-log", "durable")
    ).start()
    try:
        _, web = new_app(server)
        session = start(web)["session"]["id"]
        decided = evaluation(web, session)
        assert decided["context"]["outcome"] == "step_up"
        counted = _counted(server)
        assert counted.get("at_once", 0) == 0 and counted["declined"] == 1, counted
        with admin(server) as client:  # committed before the answer went
            logged = client.get("/admin/v1/decisions", params={"session_id": session}).json()
        ids = [record["id"] for record in logged["decisions"]]
        assert decided["context"]["id"] in ids, logged
    finally:
        server.stop()
