"""Requests past the size limits of `juncture serve`, over raw sockets against a real server.

Each is refused with its status and a registered code as the bytes arrive, before they are
held in memory (the server's peak memory barely moves), and the server answers on.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import select
import socket
import tarfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest

from service.server import Server

MiB = 1 << 20


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("limits")
    running = Server(root / "j.db", None, args=("--max-headers", "20")).start()
    try:
        yield running
    finally:
        running.stop()


def peak_memory(server: Server) -> int:
    """The server process's peak resident memory (bytes)."""
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def exchange(
    server: Server,
    head: bytes,
    rest: Iterable[bytes] = (),
    timeout: float = 30,
    *,
    until_answer: bool = True,
) -> bytes:
    """Send ``head`` then ``rest`` (stopping once an answer comes, unless not
    ``until_answer``, or the server closes); the bytes answered."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    answer = b""
    try:
        sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        for piece in itertools.chain([head], rest):
            readable, _, _ = select.select([sock], [], [], 0)
            if readable and until_answer:
                break
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
        while time.monotonic() < deadline:
            try:
                got = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not got:
                break
            answer += got
    finally:
        sock.close()
    return answer


def status_and_code(answer: bytes, *, closing: bool = True) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert not closing or b"connection: close" in head.lower()
    return status, json.loads(body)["code"]


def assert_still_answers(server: Server) -> None:
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def chunks(total: int, size: int = 64 << 10) -> Iterator[bytes]:
    for _ in range(total // size):
        yield b"a" * size


def chunked(total: int, size: int = 64 << 10) -> Iterator[bytes]:
    """A chunked body of ``total`` bytes, never ended."""
    for piece in chunks(total, size):
        yield b"%x\r\n" % size + piece + b"\r\n"


def test_header_flood_refused(server: Server):
    """A single 50 MiB header, without credentials: 431 before it is buffered (I6)."""
    before = peak_memory(server)
    answer = exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Flood: ", chunks(50 * MiB))
    assert status_and_code(answer) == (431, "request.headers_too_large")
    assert peak_memory(server) - before < 8 * MiB
    assert_still_answers(server)


def test_header_count_flood_refused(server: Server):
    """More header lines than `--max-headers` (here 20): 431; 20 are taken."""
    lines = b"".join(b"X-%d: 1\r\n" % i for i in range(18))
    ok = exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + lines
                  + b"\r\n")  # fmt: skip
    assert ok.startswith(b"HTTP/1.1 200")
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(10_000))
    answer = exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    assert status_and_code(answer) == (431, "request.headers_too_large")
    assert_still_answers(server)


def test_long_request_line_refused(server: Server):
    """A request target past 8 KiB, streamed on and on: 414."""
    before = peak_memory(server)
    answer = exchange(server, b"GET /healthz?q=", chunks(20 * MiB))
    assert status_and_code(answer) == (414, "request.uri_too_long")
    assert peak_memory(server) - before < 8 * MiB
    assert_still_answers(server)


def test_huge_body_refused(server: Server):
    """A body past 1 MiB: 413 from its Content-Length, before a byte of it is sent (even to a
    route that never reads one); and chunked, once 1 MiB of it arrived."""
    declared = exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: 10737418240\r\n\r\n")  # fmt: skip
    assert status_and_code(declared) == (413, "request.too_large")
    before = peak_memory(server)
    answer = exchange(
        server,
        b"POST /admin/v1/apps HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Authorization: Bearer " + server.admin_token().encode() + b"\r\n\r\n",
        chunked(50 * MiB),
    )
    assert status_and_code(answer, closing=False) == (413, "request.too_large")
    assert peak_memory(server) - before < 8 * MiB
    assert_still_answers(server)


def test_body_flood_after_an_answer_cut(server: Server):
    """A route that answers without reading the body (here 401) does not read 50 MiB of it
    on: the connection is closed once the body passes the limit."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sent = 0
    with sock, pytest.raises((BrokenPipeError, ConnectionResetError)):
        sock.sendall(b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
        for piece in chunked(200 * MiB):
            sock.sendall(piece)
            sent += len(piece)
    assert sent < 20 * MiB
    assert_still_answers(server)


def gzip_bomb(size: int) -> bytes:
    """A gzip tar of one file of ``size`` zero bytes, compressed as it is made."""
    info = tarfile.TarInfo("bomb.yaml")
    info.size = size
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb") as packed:
        packed.write(info.tobuf(format=tarfile.GNU_FORMAT))
        block = bytes(MiB)
        for _ in range(size // MiB):
            packed.write(block)
        packed.write(bytes(1024))  # the end of the archive
    return out.getvalue()


def test_gzip_bomb_bundle_refused(server: Server):
    """A gzip bundle inflating a thousand times (1 MiB sent, 1 GiB inside): 413, inflated in a
    worker thread only as far as the cap, while the server goes on answering at once."""
    bomb = gzip_bomb(1 << 30)
    assert len(bomb) < 2 * MiB
    token = server.admin_token()
    before = peak_memory(server)
    answers: list[httpx.Response] = []

    def upload() -> None:
        answers.append(
            httpx.post(
                f"{server.url}/admin/v1/versions",
                content=bomb,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/gzip"},
                timeout=60,
            )
        )

    uploading = threading.Thread(target=upload)
    uploading.start()
    slowest = 0.0
    with httpx.Client(base_url=server.url, timeout=30) as client:
        while uploading.is_alive():
            started = time.monotonic()
            assert client.get("/healthz").status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.01)
    uploading.join()
    assert answers[0].status_code == 413, answers[0].text
    assert answers[0].json()["code"] == "request.too_large"
    assert slowest < 0.5
    assert peak_memory(server) - before < 128 * MiB
    assert_still_answers(server)


def test_header_flood_pipelined_after_a_request_refused(server: Server):
    """A flood pipelined behind a sane request: that one is answered, then the flood refused
    (431 when the first answer is out, else the connection just closed) and not held."""
    sane = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    flood = sane + b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Flood: " + b"a" * (4 * MiB)
    started = time.monotonic()
    answer = exchange(server, flood, until_answer=False)
    assert time.monotonic() - started < 5  # closed by the server, not by a timeout
    statuses = [int(line.split(b" ")[1]) for line in answer.split(b"\r\n")
                if line.startswith(b"HTTP/1.1 ")]  # fmt: skip
    assert statuses in ([200], [200, 431])
    assert_still_answers(server)
