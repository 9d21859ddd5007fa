"""Push delivery (RFC 8935) from the real SQLite outbox to a real receiver on 127.0.0.1.

Time is an injected clock: retries are driven by moving it, never by sleeping. Every test uses
``allow_private=True`` (the receiver is on loopback) except those about the URL guard.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from juncture.events.delivery import DeliveryReport, PushDelivery, Verdict, judge
from juncture.outbound import Reply
from juncture.records import OutboxItem, Stream
from juncture.store.sqlite import SqliteStore

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SECRET = "Bearer rcv-7c1e-very-secret"
PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def set(self) -> str:
        return self.body.decode()


Response = tuple[int, dict[str, str], bytes]


@dataclass
class Receiver:
    """A push endpoint: records every request, answers with ``respond`` (default 202)."""

    port: int = 0
    requests: list[Request] = field(default_factory=list)
    respond: Callable[[Request], Response] = lambda request: (202, {}, b"")
    delay: float = 0.0

    def url(self, path: str = "/push") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def sets(self) -> list[str]:
        return [r.set for r in self.requests]


def _serve(receiver: Receiver, wrap: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            request = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            receiver.requests.append(request)
            if receiver.delay:
                time.sleep(receiver.delay)
            status, headers, content = receiver.respond(request)
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)
            except OSError:  # the client gave up (a timeout test)
                pass

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request: Any, client_address: Any) -> None:
            pass

    httpd = Server(("127.0.0.1", 0), Handler)
    if wrap is not None:
        httpd.socket = wrap.wrap_socket(httpd.socket, server_side=True)
    receiver.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from _serve(Receiver())


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "juncture.db"


@pytest.fixture
def store(db: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(db)
    yield opened
    opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def add_stream(store: SqliteStore, stream_id: str, url: str | None, **fields: Any) -> Stream:
    return store.put_stream(
        Stream(
            id=stream_id,
            app="app-1",
            iss="https://juncture.example.com",
            aud=("https://receiver.example.com",),
            created_at=NOW,
            updated_at=NOW,
            endpoint_url=url,
            events_requested=(REVOKED,),
            events_delivered=(REVOKED,),
            **fields,
        ),
        expected_revision=0,
    )


def set_status(store: SqliteStore, stream_id: str, status: Any) -> None:
    stream = store.get_stream(stream_id)
    assert stream is not None
    store.put_stream(msgspec.structs.replace(stream, status=status),
                     expected_revision=stream.revision)  # fmt: skip


def token(jti: str) -> str:
    """A stand-in for a compact SET: delivery moves it as it is."""
    return f"eyJhbGciOiJSUzI1NiJ9.{jti}.c2ln"


def enqueue(store: SqliteStore, stream_id: str, *jtis: str, at: datetime = NOW) -> None:
    store.enqueue([
        OutboxItem(stream_id=stream_id, jti=jti, set=token(jti), event_type=REVOKED,
                   created_at=at, next_attempt_at=at)
        for jti in jtis
    ])  # fmt: skip


def row(db: Path, jti: str) -> dict[str, Any]:
    """An outbox row as stored (given-up and delivered items are not readable otherwise)."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        found = conn.execute("SELECT * FROM outbox WHERE jti = ?", (jti,)).fetchone()
    assert found is not None
    return dict(found)


def pending_jtis(store: SqliteStore, stream_id: str) -> list[str]:
    return [item.jti for item in store.pending(stream_id)]


def delivery(store: SqliteStore, clock: Clock, **kwargs: Any) -> PushDelivery:
    return PushDelivery(store, now=clock, allow_private=kwargs.pop("allow_private", True),
                        **kwargs)  # fmt: skip


# -- the request -------------------------------------------------------------------------------


def test_a_202_delivers_the_set_with_the_rfc_8935_headers_and_the_streams_authorization(
    store: SqliteStore, clock: Clock, receiver: Receiver, db: Path
):
    add_stream(store, "s1", receiver.url(), authorization_header=SECRET)
    enqueue(store, "s1", "j1")
    report = delivery(store, clock).deliver_due()
    assert report == DeliveryReport(delivered=1)
    [request] = receiver.requests
    assert request.path == "/push"
    assert request.body == token("j1").encode()
    assert request.headers["content-type"] == "application/secevent+jwt"
    assert request.headers["accept"] == "application/json"
    assert request.headers["authorization"] == SECRET
    assert pending_jtis(store, "s1") == []
    assert row(db, "j1")["delivered_at"] is not None
    assert row(db, "j1")["attempts"] == 0


def test_no_authorization_header_is_sent_when_the_stream_has_none(
    store: SqliteStore, clock: Clock, receiver: Receiver
):
    add_stream(store, "s1", receiver.url())
    enqueue(store, "s1", "j1")
    delivery(store, clock).deliver_due()
    assert "authorization" not in receiver.requests[0].headers


def test_nothing_due_makes_no_request(store: SqliteStore, clock: Clock, receiver: Receiver):
    add_stream(store, "s1", receiver.url())
    assert delivery(store, clock).deliver_due() == DeliveryReport()
    enqueue(store, "s1", "later", at=NOW + timedelta(minutes=1))
    assert delivery(store, clock).deliver_due() == DeliveryReport()
    assert receiver.requests == []


@pytest.mark.parametrize("status", [200, 204])
def test_another_2xx_also_counts_as_delivered(
    store: SqliteStore, clock: Clock, receiver: Receiver, status: int
):
    receiver.respond = lambda request: (status, {}, b"")
    add_stream(store, "s1", receiver.url())
    enqueue(store, "s1", "j1")
    assert delivery(store, clock).deliver_due() == DeliveryReport(delivered=1)
    assert pending_jtis(store, "s1") == []


def test_the_connection_goes_to_the_checked_address_under_the_streams_host_name(
    store: SqliteStore, clock: Clock, receiver: Receiver
):
    # `receiver.test` resolves nowhere: only the pinned address can have been reached.
    add_stream(store, "s1", f"http://receiver.test:{receiver.port}/push")
    enqueue(store, "s1", "j1")
    report = delivery(store, clock, resolve=lambda host: ["127.0.0.1"]).deliver_due()
    assert report.delivered == 1
    assert receiver.requests[0].headers["host"] == f"receiver.test:{receiver.port}"


# -- what the receiver's answer means ----------------------------------------------------------


def test_a_400_with_err_gives_the_set_up_at_once_and_keeps_the_reason(
    store: SqliteStore, clock: Clock, receiver: Receiver, db: Path
):
    body = b'{"err": "invalid_audience", "description": "aud mismatch"}'
    receiver.respond = lambda r: (400, {"Content-Type": "application/json"}, body)
    add_stream(store, "s1", receiver.url())
    enqueue(store, "s1", "j1")
    push = delivery(store, clock)
    assert push.deliver_due() == DeliveryReport(given_up=1)
    stored = row(db, "j1")
    assert stored["given_up_at"] is not None and stored["delivered_at"] is None
    assert stored["last_error"] == "rejected: invalid_audience: aud mismatch"
    assert stored["attempts"] == 1
    clock.advance(days=2)
    assert push.deliver_due() == DeliveryReport()  # never retried
    assert len(receiver.requests) == 1


def test_a_rejected_set_does_not_hold_back_the_rest_of_its_stream(
    store: SqliteStore, clock: Clock, receiver: Receiver
):
    receiver.respond = lambda r: (
        (400, {}, b'{"err": "invalid_request"}') if r.set == token("bad") else (202, {}, b"")
    )
    add_stream(store, "s1", receiver.url())
    enqueue(store, "s1", "bad", "good")
    assert delivery(store, clock).deliver_due() == DeliveryReport(delivered=1, given_up=1)
    assert receiver.sets() == [token("bad"), token("good")]


def test_a_400_without_an_err_is_retried(store: SqliteStore, clock: Clock, receiver: Receiver):
    receiver.respond = lambda r: (400, {"Content-Type": "text/html"}, b"<h1>Bad Request</h1>")
    add_stream(store, "s1", receiver.url())
    enqueue(store, "s1", "j1")
    assert delivery(store, clock).deliver_due() == DeliveryReport(retrying=1)
    [item] = store.pending("s1")
    assert item.last_error == "status 400 without an `err`"


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_are_retried_and_counted(
    store: SqliteStore, clock: Clock, receiver: Receiver, status: int
):
    receiver.respond = lambda r: (status, {}, b'{"err": "authentication_failed"}')
    add_stream(store, "s1", receiver.url())
    enqueue(store, "s1", "j1")
    assert delivery(store, clock).deliver_due() == DeliveryReport(retrying=1)
    [item] = store.pending("s1")
    assert (item.attempts, item.last_error) == (1, f"status {status}: not authorized")
    assert item.next_attempt_at == NOW + timedelta(seconds=5)


def test_a_500_then_a_202_is_retried_after_the_backoff(
    store: SqliteStore, clock: Clock, receiver: Receiver, db: Path
):
    answers = iter([500, 202])
    receiver.respond = lambda r: (next(answers), {}, b"")
    add_stream(store, "s1", receiver.url())
    enqueue(store, "s1", "j1")
    push = delivery(store, clock)
    assert push.deliver_due() == DeliveryReport(retrying=1)
    [item] = store.pending("s1")
    assert (item.attempts, item.last_error) == (1, "status 500")
    assert item.next_attempt_at == NOW + timedelta(seconds=5)
    clock.advance(seconds=4.999)
    assert push.deliver_due() == DeliveryReport()  # not yet
    assert len(receiver.requests) == 1
    clock.advance(seconds=0.001)
    assert push.deliver_due() == DeliveryReport(delivered=1)
    assert receiver.sets() == [token("j1"), token("j1")]
    assert row(db, "j1")["delivered_at"] is not None


def test_the_backoff_schedule_then_giving_up_after_max_attempts(
    store: SqliteStore, clock: Clock, receiver: Receiver, db: Path
):
    receiver.respond = lambda r: (503, {}, b"")
    add_stream(store, "s1", receiver.url())
    enqueue(store, "s1", "j1")
    push = delivery(store, clock, max_attempts=7, max_age=timedelta(days=30))
    waits = []
    for _ in range(6):
        assert push.deliver_due() == DeliveryReport(retrying=1)
        [item] = store.pending("s1")
        waits.append(item.next_attempt_at - clock.now)
        clock.now = item.next_attempt_at
    assert waits == [timedelta(seconds=s) for s in (5, 30, 120, 600, 3600, 3600)]
    assert push.deliver_due() == DeliveryReport(given_up=1)
    assert row(db, "j1")["attempts"] == 7
    assert row(db, "j1")["given_up_at"] is not None
    assert len(receiver.requests) == 7


def test_an_item_is_given_up_at_its_max_age_with_a_last_try_at_the_deadline(
    store: SqliteStore, clock: Clock, receiver: Receiver, db: Path
):
    receiver.respond = lambda r: (502, {}, b"")
    add_stream(store, "s1", receiver.url())
    enqueue(store, "s1", "j1")
    push = delivery(store, clock, max_age=timedelta(minutes=10))
    tries = []
    while store.pending("s1"):
        tries.append(clock.now - NOW)
        push.deliver_due()
        if store.pending("s1"):
            clock.now = store.pending("s1")[0].next_attempt_at
    # 0, +5 s, +30 s, +2 min; the next (+10 min) would pass the deadline: the last try is at it
    assert tries == [timedelta(seconds=s) for s in (0, 5, 35, 155, 600)]
    assert row(db, "j1")["given_up_at"] is not None


def test_retry_after_in_seconds_is_honoured(store: SqliteStore, clock: Clock, receiver: Receiver):
    receiver.respond = lambda r: (429, {"Retry-After": "120"}, b"")
    add_stream(store, "s1", receiver.url())
    enqueue(store, "s1", "j1")
    delivery(store, clock).deliver_due()
    [item] = store.pending("s1")
    assert item.next_attempt_at == NOW + timedelta(seconds=120)
    assert item.last_error == "status 429"


def test_retry_after_as_a_date_is_honoured(store: SqliteStore, clock: Clock, receiver: Receiver):
    when = format_datetime(NOW + timedelta(minutes=7), usegmt=True)
    receiver.respond = lambda r: (503, {"Retry-After": when}, b"")
    add_stream(store, "s1", receiver.url())
    enqueue(store, "s1", "j1")
    delivery(store, clock).deliver_due()
    assert store.pending("s1")[0].next_attempt_at == NOW + timedelta(minutes=7)


def test_a_retry_after_shorter_than_the_backoff_step_does_not_shorten_it():
    reply = Reply(status=503, headers={"retry-after": "1"}, body=b"")
    assert judge(reply, NOW).retry_after == timedelta(seconds=1)
    reply = Reply(status=503, headers={"retry-after": "soon"}, body=b"")
    assert judge(reply, NOW) == Verdict(delivered=False, error="status 503")


def test_a_redirect_is_not_followed_and_is_a_failure(
    store: SqliteStore, clock: Clock, receiver: Receiver
):
    receiver.respond = lambda r: (
        (302, {"Location": receiver.url("/moved")}, b"") if r.path == "/push" else (202, {}, b"")
    )
    add_stream(store, "s1", receiver.url())
    enqueue(store, "s1", "j1")
    assert delivery(store, clock).deliver_due() == DeliveryReport(retrying=1)
    assert [r.path for r in receiver.requests] == ["/push"]
    assert store.pending("s1")[0].last_error == "status 302: redirect not followed"


def test_a_redirect_is_not_followed_even_by_a_given_client_that_would(
    store: SqliteStore, clock: Clock, receiver: Receiver
):
    receiver.respond = lambda r: (
        (308, {"Location": receiver.url("/moved")}, b"") if r.path == "/push" else (202, {}, b"")
    )
    add_stream(store, "s1", receiver.url())
    enqueue(store, "s1", "j1")
    with httpx.Client(follow_redirects=True) as client:
        assert delivery(store, clock, client=client).deliver_due().retrying == 1
    assert [r.path for r in receiver.requests] == ["/push"]


def test_a_timeout_is_retried(store: SqliteStore, clock: Clock, receiver: Receiver):
    receiver.delay = 1.0
    add_stream(store, "s1", receiver.url())
    enqueue(store, "s1", "j1")
    started = time.monotonic()
    assert delivery(store, clock, timeout=0.2).deliver_due() == DeliveryReport(retrying=1)
    assert time.monotonic() - started < 0.9
    [item] = store.pending("s1")
    assert (item.attempts, item.last_error) == (1, "timed out")


def test_a_refused_connection_is_retried(store: SqliteStore, clock: Clock):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    add_stream(store, "s1", f"http://127.0.0.1:{port}/push")
    enqueue(store, "s1", "j1")
    assert delivery(store, clock).deliver_due() == DeliveryReport(retrying=1)
    assert store.pending("s1")[0].last_error.startswith("ConnectError: ")


# -- order within a stream ---------------------------------------------------------------------


def test_a_failed_set_holds_back_the_later_sets_of_its_stream_but_not_other_streams(
    store: SqliteStore, clock: Clock, receiver: Receiver
):
    failures = {token("a1")}

    def respond(request: Request) -> Response:
        if request.set in failures:
            failures.discard(request.set)
            return (500, {}, b"")
        return (202, {}, b"")

    receiver.respond = respond
    add_stream(store, "a", receiver.url("/a"))
    add_stream(store, "b", receiver.url("/b"))
    for jti in ("a1", "b1", "a2", "b2", "a3"):
        enqueue(store, jti[0], jti)
    push = delivery(store, clock)
    assert push.deliver_due() == DeliveryReport(delivered=2, retrying=1)
    assert receiver.sets() == [token("a1"), token("b1"), token("b2")]
    clock.advance(seconds=4)  # a2 and a3 are due, but a1 is not yet: a sends nothing
    assert push.deliver_due() == DeliveryReport()
    clock.advance(seconds=1)
    assert push.deliver_due() == DeliveryReport(delivered=3)
    a_sets = [r.set for r in receiver.requests if r.path == "/a"]
    assert a_sets == [token("a1"), token("a1"), token("a2"), token("a3")]


def test_a_stream_that_is_held_back_does_not_starve_the_others(
    store: SqliteStore, clock: Clock, receiver: Receiver
):
    # `due` is ordered by seq: 150 held items of `a` fill any batch of 100 ahead of `b`'s.
    receiver.respond = lambda r: (500, {}, b"") if r.path == "/a" else (202, {}, b"")
    add_stream(store, "a", receiver.url("/a"))
    add_stream(store, "b", receiver.url("/b"))
    enqueue(store, "a", *(f"a{i}" for i in range(150)))
    enqueue(store, "b", "b1")
    push = delivery(store, clock)
    assert push.deliver_due(limit=1) == DeliveryReport(retrying=1)  # a0 fails
    clock.advance(seconds=1)
    assert push.deliver_due(limit=100) == DeliveryReport(delivered=1)
    assert receiver.sets()[-1] == token("b1")


def test_streams_take_turns_within_the_limit(store: SqliteStore, clock: Clock, receiver: Receiver):
    add_stream(store, "a", receiver.url("/a"))
    add_stream(store, "b", receiver.url("/b"))
    enqueue(store, "a", "a1", "a2", "a3")
    enqueue(store, "b", "b1", "b2", "b3")
    assert delivery(store, clock).deliver_due(limit=4) == DeliveryReport(delivered=4)
    assert receiver.sets() == [token(j) for j in ("a1", "b1", "a2", "b2")]
    assert delivery(store, clock).deliver_due(limit=4) == DeliveryReport(delivered=2)
    assert receiver.sets()[4:] == [token("a3"), token("b3")]


# -- which streams -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["paused", "disabled"])
def test_paused_and_disabled_streams_are_not_delivered(
    store: SqliteStore, clock: Clock, receiver: Receiver, status: str
):
    add_stream(store, "s1", receiver.url(), status=status)
    enqueue(store, "s1", "j1")
    push = delivery(store, clock)
    assert push.deliver_due() == DeliveryReport()
    assert receiver.requests == []
    set_status(store, "s1", "enabled")
    assert push.deliver_due() == DeliveryReport(delivered=1)


def test_a_poll_stream_is_never_pushed(store: SqliteStore, clock: Clock, receiver: Receiver):
    add_stream(store, "s1", receiver.url(), delivery_method=POLL)
    enqueue(store, "s1", "j1")
    assert delivery(store, clock).deliver_due() == DeliveryReport()
    assert receiver.requests == []
    assert pending_jtis(store, "s1") == ["j1"]


def test_a_stream_paused_during_a_batch_stops_there(
    store: SqliteStore, clock: Clock, receiver: Receiver
):
    def respond(request: Request) -> Response:
        set_status(store, "s1", "paused")  # the receiver pauses the stream after one SET
        return (202, {}, b"")

    receiver.respond = respond
    add_stream(store, "s1", receiver.url())
    enqueue(store, "s1", "j1", "j2")
    assert delivery(store, clock).deliver_due() == DeliveryReport(delivered=1)
    assert pending_jtis(store, "s1") == ["j2"]


def test_a_push_stream_without_an_endpoint_fails_its_head(store: SqliteStore, clock: Clock):
    add_stream(store, "s1", None)
    enqueue(store, "s1", "j1", "j2")
    assert delivery(store, clock).deliver_due() == DeliveryReport(retrying=1)
    assert store.pending("s1")[0].last_error == "the stream has no endpoint_url"


# -- the URL guard at delivery time ------------------------------------------------------------


def test_a_loopback_endpoint_is_refused_unless_private_is_allowed(
    store: SqliteStore, clock: Clock, receiver: Receiver
):
    add_stream(store, "s1", receiver.url())
    enqueue(store, "s1", "j1")
    report = delivery(store, clock, allow_private=False).deliver_due()
    assert report == DeliveryReport(retrying=1)
    assert receiver.requests == []
    assert store.pending("s1")[0].last_error == (
        "unsafe endpoint: the URL must be https, not `http`"
    )


def test_a_name_that_now_resolves_to_a_private_address_is_not_pushed_to(
    store: SqliteStore, clock: Clock, receiver: Receiver
):
    # Checked when the stream was made; at delivery the name points inside (DNS rebinding).
    add_stream(store, "s1", "https://receiver.test/push")
    enqueue(store, "s1", "j1")
    push = delivery(store, clock, allow_private=False, resolve=lambda host: ["10.0.0.7"])
    assert push.deliver_due() == DeliveryReport(retrying=1)
    assert store.pending("s1")[0].last_error == (
        "unsafe endpoint: the host `receiver.test` resolves to 10.0.0.7, "
        "not a public address (private)"
    )
    assert receiver.requests == []


def test_an_endpoint_changed_during_a_batch_is_checked_again(
    store: SqliteStore, clock: Clock, receiver: Receiver
):
    def respond(request: Request) -> Response:
        stream = store.get_stream("s1")
        assert stream is not None
        store.put_stream(msgspec.structs.replace(stream, endpoint_url=receiver.url("/new")),
                         expected_revision=stream.revision)  # fmt: skip
        return (202, {}, b"")

    receiver.respond = respond
    add_stream(store, "s1", receiver.url("/old"))
    enqueue(store, "s1", "j1", "j2")
    assert delivery(store, clock).deliver_due() == DeliveryReport(delivered=2)
    assert [r.path for r in receiver.requests] == ["/old", "/new"]


# -- TLS through the pin -----------------------------------------------------------------------


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.now(UTC) - timedelta(days=1))
        .not_valid_after(dt.datetime.now(UTC) + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    return cert_path, key_path


@pytest.mark.parametrize(("served", "delivered"), [("receiver.test", True), ("other.test", False)])
def test_https_through_the_pin_verifies_the_certificate_against_the_host_name(
    store: SqliteStore, clock: Clock, tmp_path: Path, served: str, delivered: bool
):
    cert, key = _certificate(tmp_path, served)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    trust = ssl.create_default_context(cafile=str(cert))
    for running in _serve(Receiver(), wrap=server_side):
        add_stream(store, "s1", f"https://receiver.test:{running.port}/push")
        enqueue(store, "s1", "j1")
        with httpx.Client(verify=trust) as client:
            push = delivery(store, clock, client=client, resolve=lambda host: ["127.0.0.1"])
            report = push.deliver_due()
        if delivered:
            assert report == DeliveryReport(delivered=1)
            assert running.requests[0].headers["host"] == f"receiver.test:{running.port}"
        else:  # the certificate names another host: nothing is sent
            assert report == DeliveryReport(retrying=1)
            assert "CERTIFICATE_VERIFY_FAILED" in store.pending("s1")[0].last_error
            assert running.requests == []


# -- secrets stay out of logs and errors -------------------------------------------------------


def test_neither_the_authorization_header_nor_the_set_is_logged_or_kept(
    store: SqliteStore, clock: Clock, receiver: Receiver, db: Path,
    caplog: pytest.LogCaptureFixture,
):  # fmt: skip
    answers = iter([
        (500, {}, b""),
        (400, {}, b'{"err": "invalid_key", "description": "no"}'),
        (401, {}, b""),
    ])  # fmt: skip
    receiver.respond = lambda r: next(answers, (202, {}, b""))
    add_stream(store, "s1", receiver.url(), authorization_header=SECRET)
    enqueue(store, "s1", "j1", "j2")
    push = delivery(store, clock, max_attempts=2)
    caplog.set_level(logging.DEBUG)
    for _ in range(4):
        push.deliver_due()
        clock.advance(hours=2)
    assert len(receiver.requests) == 4
    logged = caplog.text
    assert "s1" in logged and "j1" in logged  # the failures were logged
    for secret in ("rcv-7c1e", token("j1"), token("j2")):
        assert secret not in logged
        assert secret not in f"{row(db, 'j1')['last_error']} {row(db, 'j2')['last_error']}"


# -- the loop ----------------------------------------------------------------------------------


def test_run_forever_delivers_until_stopped(store: SqliteStore, receiver: Receiver):
    add_stream(store, "s1", receiver.url())
    push = PushDelivery(store, now=lambda: datetime.now(UTC), allow_private=True)
    stop = threading.Event()
    worker = threading.Thread(target=push.run_forever, args=(stop, 0.02))
    worker.start()
    try:
        enqueue(store, "s1", "j1", at=datetime.now(UTC))
        deadline = time.monotonic() + 5
        while pending_jtis(store, "s1") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert pending_jtis(store, "s1") == []
    finally:
        stop.set()
        worker.join(timeout=5)
    assert not worker.is_alive()
    assert receiver.sets() == [token("j1")]


def test_run_forever_survives_an_error(store: SqliteStore, caplog: pytest.LogCaptureFixture):
    calls = []

    def broken_clock() -> datetime:
        calls.append(1)
        if len(calls) >= 3:
            stop.set()
        raise RuntimeError("clock broke")

    stop = threading.Event()
    PushDelivery(store, now=broken_clock, allow_private=True).run_forever(stop, 0.001)
    assert len(calls) == 3
    assert "push delivery failed" in caplog.text


def test_the_policy_is_checked_when_made(store: SqliteStore, clock: Clock):
    with pytest.raises(ValueError, match="backoff"):
        PushDelivery(store, now=clock, allow_private=True, backoff=())
    with pytest.raises(ValueError, match="backoff"):
        PushDelivery(store, now=clock, allow_private=True, backoff=(timedelta(0),))
    with pytest.raises(ValueError, match="positive"):
        PushDelivery(store, now=clock, allow_private=True, max_attempts=0)
    with pytest.raises(ValueError, match="lease"):
        PushDelivery(store, now=clock, allow_private=True, timeout=10, lease=timedelta(seconds=5))


# -- several deliverers over one store -----------------------------------------------------------


def test_a_stream_another_deliverer_holds_is_passed_over_until_its_lease_expires(
    store: SqliteStore, clock: Clock, receiver: Receiver
):
    add_stream(store, "s1", receiver.url())
    add_stream(store, "s2", receiver.url("/two"))
    enqueue(store, "s1", "j1")
    enqueue(store, "s2", "j2")
    assert store.lease_stream("s1", owner="worker-2", now=clock.now,
                              until=clock.now + timedelta(minutes=1))  # fmt: skip
    mine = delivery(store, clock, owner="worker-1")
    assert mine.deliver_due().delivered == 1
    assert receiver.sets() == [token("j2")]  # s1 is worker-2's to push
    assert pending_jtis(store, "s1") == ["j1"]
    clock.advance(minutes=1)  # worker-2 died holding it: the lease runs out
    assert mine.deliver_due().delivered == 1
    assert receiver.sets() == [token("j2"), token("j1")]
    # the batch gave its leases up: another deliverer may take the streams at once
    assert store.lease_stream("s1", owner="worker-2", now=clock.now, until=clock.now)


def test_two_deliverers_racing_over_one_file_push_each_set_once_and_in_order(
    db: Path, receiver: Receiver
):
    add = SqliteStore(db)
    try:
        add_stream(add, "s1", receiver.url())
        jtis = [f"j{n:03d}" for n in range(60)]
        enqueue(add, "s1", *jtis)
    finally:
        add.close()
    receiver.delay = 0.002
    errors: list[BaseException] = []

    def deliver(name: str) -> None:
        own = SqliteStore(db)  # a process of its own: its own connection
        try:
            push = PushDelivery(own, now=lambda: datetime.now(UTC), allow_private=True,
                                owner=name)  # fmt: skip
            while own.pending("s1", limit=1):
                push.deliver_due(limit=5)
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            own.close()

    workers = [threading.Thread(target=deliver, args=(f"w{n}",)) for n in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not errors
    assert receiver.sets() == [token(jti) for jti in jtis]  # each once, in outbox order
