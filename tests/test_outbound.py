"""The outbound guard (`juncture.outbound`): which URLs Juncture sends to, pinning, the guarded
POST and the guarded GET (key sets), with its size cap, timeouts and redirects not followed.

Literal addresses and ``localhost`` go through the real resolver; only names that must not
depend on the machine's DNS (``*.test``) use an injected one.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from juncture.outbound import (
    MAX_URL_LENGTH,
    UnsafeUrl,
    address_problem,
    check_push_url,
    guarded_fetcher,
    new_client,
    pin_url,
    post,
    resolve_host,
)


def _unsafe(url: str, **kwargs: Any) -> str:
    with pytest.raises(UnsafeUrl) as caught:
        check_push_url(url, **{"allow_private": False, **kwargs})
    assert caught.value.reason == str(caught.value)
    return caught.value.reason


# -- the URL's shape ---------------------------------------------------------------------------


def test_a_public_https_url_is_accepted():
    check_push_url("https://8.8.8.8/ssf/push", allow_private=False)
    check_push_url("https://[2606:4700:4700::1111]:8443/push?tenant=a", allow_private=False)


def test_plain_http_only_when_private_addresses_are_allowed():
    assert "must be https, not `http`" in _unsafe("http://8.8.8.8/push")
    check_push_url("http://8.8.8.8/push", allow_private=True)
    check_push_url("http://127.0.0.1:8080/push", allow_private=True)


@pytest.mark.parametrize(
    "url", ["ftp://8.8.8.8/x", "file:///etc/passwd", "gopher://8.8.8.8/", "8.8.8.8/push"]
)
def test_other_schemes_are_refused_even_when_private_is_allowed(url: str):
    with pytest.raises(UnsafeUrl, match="must be https"):
        check_push_url(url, allow_private=True)


@pytest.mark.parametrize(
    "url", ["https://user:pw@8.8.8.8/push", "https://token@8.8.8.8/", "https://8.8.8.8\\@x.com/"]
)
def test_userinfo_is_refused(url: str):
    assert "user name or password" in _unsafe(url, allow_private=True)


def test_a_url_without_a_host_is_refused():
    assert "no host" in _unsafe("https:///push", allow_private=True)


def test_a_url_too_long_is_refused():
    url = "https://8.8.8.8/" + "a" * MAX_URL_LENGTH
    assert "longer than" in _unsafe(url, allow_private=True)


def test_a_malformed_url_is_refused():
    assert "malformed" in _unsafe("https://[::1/push", allow_private=True)


# -- addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "problem"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # the cloud metadata service
        ("100.64.0.1", "shared (CGNAT)"),
        ("100.127.255.254", "shared (CGNAT)"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.0.8", "IETF protocol"),
        ("192.0.2.10", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.5", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("[::1]", "loopback"),
        ("[::]", "unspecified"),
        ("[fe80::1]", "link-local"),
        ("[fc00::1]", "unique-local"),
        ("[fd12:3456::1]", "unique-local"),
        ("[fec0::1]", "site-local"),
        ("[ff02::1]", "multicast"),
        ("[2001:db8::1]", "documentation"),
        ("[2001::1]", "IETF protocol"),  # Teredo
        ("[100::1]", "discard-only"),
        ("[::127.0.0.1]", "reserved"),  # IPv4-compatible, deprecated
        ("[::ffff:127.0.0.1]", "IPv4-mapped loopback"),
        ("[::ffff:10.0.0.1]", "IPv4-mapped private"),
        ("[::ffff:169.254.169.254]", "IPv4-mapped link-local"),
        ("[64:ff9b::a9fe:a9fe]", "embedded IPv4 link-local"),  # NAT64 of 169.254.169.254
        ("[64:ff9b:1::1]", "private"),
        ("[2002:7f00:1::]", "embedded IPv4 loopback"),  # 6to4 of 127.0.0.1
        ("[2002:a00:1::]", "embedded IPv4 private"),
        ("[4000::1]", "reserved"),  # outside global unicast 2000::/3
    ],
)
def test_non_public_addresses_are_refused(host: str, problem: str):
    reason = _unsafe(f"https://{host}/push")
    assert reason.endswith(f"is not a public address ({problem})"), reason
    check_push_url(f"https://{host}/push", allow_private=True)


@pytest.mark.parametrize(
    "host", ["8.8.8.8", "1.1.1.1", "[2606:4700:4700::1111]", "[::ffff:8.8.8.8]", "[2002:808:808::]"]
)
def test_public_addresses_in_any_form_are_accepted(host: str):
    check_push_url(f"https://{host}/push", allow_private=False)


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f000001"])
def test_other_spellings_of_loopback_are_resolved_then_refused(host: str):
    # The real resolver reads these as 127.0.0.1; the check is on what they resolve to.
    reason = _unsafe(f"https://{host}/push")
    assert reason == f"the host `{host}` resolves to 127.0.0.1, not a public address (loopback)"


def test_an_octal_looking_address_is_refused_as_malformed():
    assert "malformed" in _unsafe("https://0177.0.0.1/push", allow_private=True)


def test_localhost_resolves_to_loopback_and_is_refused_unless_private_is_allowed():
    assert "not a public address (loopback)" in _unsafe("https://localhost:8443/push")
    check_push_url("https://localhost:8443/push", allow_private=True)


def test_any_non_public_address_among_several_refuses_the_url():
    resolve = lambda host: ["93.184.216.34", "10.0.0.7"]  # noqa: E731
    reason = _unsafe("https://receiver.test/push", resolve=resolve)
    assert reason == "the host `receiver.test` resolves to 10.0.0.7, not a public address (private)"
    check_push_url("https://receiver.test/push", allow_private=False,
                   resolve=lambda host: ["93.184.216.34", "2606:2800:220:1::"])  # fmt: skip


def test_a_host_that_does_not_resolve_is_refused():
    def fails(host: str) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    assert _unsafe("https://receiver.test/", resolve=fails) == (
        "the host `receiver.test` does not resolve"
    )
    assert "does not resolve" in _unsafe("https://receiver.test/", resolve=lambda host: [])
    assert "does not resolve" in _unsafe("https://receiver.test/", allow_private=True,
                                         resolve=lambda host: ["not-an-ip"])  # fmt: skip


def test_the_resolver_is_given_the_idna_name():
    asked: list[str] = []

    def resolve(host: str) -> list[str]:
        asked.append(host)
        return ["8.8.8.8"]

    check_push_url("https://münchen.test/push", allow_private=False, resolve=resolve)
    assert asked == ["xn--mnchen-3ya.test"]


def test_literal_addresses_are_not_resolved():
    def never(host: str) -> list[str]:
        raise AssertionError("a literal address needs no resolution")

    check_push_url("https://8.8.8.8/", allow_private=False, resolve=never)
    check_push_url("https://[2606:4700:4700::1111]/", allow_private=False, resolve=never)


def test_address_problem_names_the_range():
    import ipaddress

    assert address_problem(ipaddress.ip_address("8.8.8.8")) is None
    assert address_problem(ipaddress.ip_address("169.254.1.1")) == "link-local"
    assert address_problem(ipaddress.ip_address("::ffff:8.8.8.8")) is None


def test_resolve_host_uses_the_system_resolver():
    assert "127.0.0.1" in resolve_host("localhost") or "::1" in resolve_host("localhost")
    assert resolve_host("127.0.0.1") == ["127.0.0.1"]


# -- pinning -----------------------------------------------------------------------------------


def test_a_name_is_pinned_to_the_checked_address_keeping_host_and_sni():
    pinned = pin_url("https://receiver.test:8443/ssf/push?tenant=a", allow_private=False,
                     resolve=lambda host: ["93.184.216.34", "93.184.216.35"])  # fmt: skip
    assert pinned.address == "93.184.216.34"
    assert pinned.connect_url == "https://93.184.216.34:8443/ssf/push?tenant=a"
    assert pinned.headers == {"Host": "receiver.test:8443"}
    assert pinned.extensions == {"sni_hostname": "receiver.test"}
    assert pinned.url == "https://receiver.test:8443/ssf/push?tenant=a"


def test_pinning_an_ipv6_address_brackets_it_and_a_mapped_one_connects_over_ipv4():
    v6 = pin_url("https://receiver.test/p", allow_private=False,
                 resolve=lambda host: ["2606:2800:220:1::"])  # fmt: skip
    assert v6.connect_url == "https://[2606:2800:220:1::]/p"
    assert v6.headers == {"Host": "receiver.test"}
    mapped = pin_url("https://receiver.test/p", allow_private=False,
                     resolve=lambda host: ["::ffff:93.184.216.34"])  # fmt: skip
    assert mapped.connect_url == "https://93.184.216.34/p"


def test_a_literal_address_needs_no_sni_and_plain_http_none():
    assert pin_url("https://8.8.8.8/p", allow_private=False).extensions == {}
    plain = pin_url("http://receiver.test/p", allow_private=True, resolve=lambda h: ["127.0.0.1"])
    assert plain.extensions == {}
    assert plain.connect_url == "http://127.0.0.1/p"


# -- the guarded POST, against a real server ---------------------------------------------------


class Server:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.respond: Callable[[str], tuple[int, dict[str, str], bytes]] = lambda path: (
            202, {}, b"")  # fmt: skip
        self.port = 0


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append(
                (self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            status, headers, content = state.respond(self.path)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _post(server: Server, path: str = "/push", max_bytes: int = 1024) -> Any:
    pinned = pin_url(f"http://receiver.test:{server.port}{path}", allow_private=True,
                     resolve=lambda host: ["127.0.0.1"])  # fmt: skip
    with new_client(timeout=5) as client:
        return post(client, pinned, content=b"body", headers={"X-Test": "1"}, timeout=5,
                    max_bytes=max_bytes)  # fmt: skip


def test_post_connects_to_the_pinned_address_with_the_original_host(server: Server):
    # `receiver.test` resolves nowhere: the request can only have gone to the pinned address.
    reply = _post(server)
    assert reply.status == 202
    [(path, headers, body)] = server.requests
    assert (path, body) == ("/push", b"body")
    assert headers["host"] == f"receiver.test:{server.port}"
    assert headers["x-test"] == "1"
    assert headers["accept-encoding"] == "identity"


def test_post_does_not_follow_a_redirect(server: Server):
    server.respond = lambda path: (307, {"Location": "/elsewhere"}, b"")
    reply = _post(server)
    assert reply.status == 307
    assert reply.headers["location"] == "/elsewhere"
    assert [path for path, _, _ in server.requests] == ["/push"]


def test_post_reads_at_most_max_bytes_of_the_answer(server: Server):
    server.respond = lambda path: (400, {}, b"x" * 100_000)
    reply = _post(server, max_bytes=1000)
    assert reply.status == 400
    assert reply.body == b"x" * 1000


def test_post_raises_httpx_errors_for_a_closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pinned = pin_url(f"http://127.0.0.1:{port}/", allow_private=True)
    with new_client(timeout=2) as client, pytest.raises(httpx.ConnectError):
        post(client, pinned, content=b"", headers={}, timeout=2, max_bytes=10)


# -- the guarded GET (`guarded_fetcher`, key sets), against real servers -----------------------


class GetServer:
    """A real HTTP server on 127.0.0.1 whose GET answer ``handle(handler)`` writes."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.handle: Callable[[BaseHTTPRequestHandler], None] = _answer(200, b'{"keys": []}')
        self.port = 0

    def url(self, path: str = "/jwks.json") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _answer(
    status: int, body: bytes, headers: dict[str, str] | None = None
) -> Callable[[BaseHTTPRequestHandler], None]:
    def handle(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return handle


@pytest.fixture
def get_servers() -> Iterator[Callable[[], GetServer]]:
    started: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start() -> GetServer:
        state = GetServer()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                state.paths.append(self.path)
                state.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        state.port = httpd.server_address[1]
        thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        started.append((httpd, thread))
        return state

    try:
        yield start
    finally:
        for httpd, thread in started:
            httpd.shutdown()
            httpd.server_close()
            thread.join()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_fetcher_refuses_a_private_target_unless_allowed(
    get_servers: Callable[[], GetServer], host: str
):
    server = get_servers()
    url = server.url().replace("127.0.0.1", host)
    with pytest.raises(UnsafeUrl, match="must be https"):
        guarded_fetcher(allow_private=False)(url, 2, 1000)
    https = url.replace("http:", "https:")
    with pytest.raises(UnsafeUrl, match="not a public address"):
        guarded_fetcher(allow_private=False)(https, 2, 1000)
    assert server.paths == []  # nothing reached the server
    assert guarded_fetcher(allow_private=True)(url, 2, 1000) == (200, b'{"keys": []}')
    assert server.paths == ["/jwks.json"]


def test_the_fetcher_refuses_a_public_name_that_resolves_to_a_private_address(
    get_servers: Callable[[], GetServer],
):
    server = get_servers()
    fetch = guarded_fetcher(allow_private=False, resolve=lambda host: ["127.0.0.1"])
    with pytest.raises(UnsafeUrl, match=r"resolves to 127\.0\.0\.1"):
        fetch(f"https://idp.example.com:{server.port}/jwks.json", 2, 1000)
    assert server.paths == []


def test_the_fetcher_reads_at_most_max_bytes(get_servers: Callable[[], GetServer]):
    server = get_servers()
    server.handle = _answer(200, b"x" * 200_000)
    status, body = guarded_fetcher(allow_private=True)(server.url(), 2, 1000)
    assert (status, body) == (200, b"x" * 1000)


def test_the_fetcher_does_not_follow_a_redirect_to_a_private_address(
    get_servers: Callable[[], GetServer],
):
    inside, outside = get_servers(), get_servers()
    secret = inside.url("/latest/meta-data")
    outside.handle = _answer(302, b"", {"Location": secret})
    status, body = guarded_fetcher(allow_private=True)(outside.url(), 2, 1000)
    assert (status, body) == (302, b"")
    assert outside.paths == ["/jwks.json"]
    assert inside.paths == []  # the redirect was returned, not followed


def test_the_fetcher_times_out_on_a_server_that_does_not_answer(
    get_servers: Callable[[], GetServer],
):
    server = get_servers()
    release = threading.Event()
    server.handle = lambda handler: (release.wait(5), None)[1]
    began = time.monotonic()
    try:
        with pytest.raises(httpx.TimeoutException):
            guarded_fetcher(allow_private=True)(server.url(), 0.3, 1000)
    finally:
        release.set()
    assert time.monotonic() - began < 2


def test_the_fetcher_times_out_on_a_server_that_drips_its_answer(
    get_servers: Callable[[], GetServer],
):
    # Each byte comes within the per-step timeout, but the whole answer would take 4s: the
    # fetcher gives up after `timeout` times DEADLINE_FACTOR.
    server = get_servers()

    def drip(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "20")
        handler.end_headers()
        for _ in range(20):
            try:
                handler.wfile.write(b"x")
                handler.wfile.flush()
            except OSError:
                return
            time.sleep(0.2)

    server.handle = drip
    began = time.monotonic()
    with pytest.raises(httpx.TimeoutException):
        guarded_fetcher(allow_private=True)(server.url(), 0.4, 1000)
    assert time.monotonic() - began < 3
