"""Poll delivery (RFC 8936): the transmitter's answer over the real SQLite outbox, and the
receiver's client against a real poll server on 127.0.0.1 that answers with `answer_poll`.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest

from juncture.events.poll import (
    MAX_ACKS,
    MAX_EVENTS,
    PollClient,
    PollError,
    PollFailed,
    PollReport,
    answer_poll,
)
from juncture.records import OutboxItem, Stream
from juncture.store.sqlite import SqliteStore

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
POLL = "urn:ietf:rfc:8936"
PUSH = "urn:ietf:rfc:8935"
REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
BEARER = "Bearer poll-secret-31"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "juncture.db"


@pytest.fixture
def store(db: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(db)
    yield opened
    opened.close()


def add_stream(store: SqliteStore, stream_id: str, **fields: Any) -> Stream:
    return store.put_stream(
        Stream(
            id=stream_id,
            app="app-1",
            iss="https://juncture.example.com",
            aud=("https://receiver.example.com",),
            created_at=NOW,
            updated_at=NOW,
            **{"delivery_method": POLL, **fields},
        ),
        expected_revision=0,
    )


def token(jti: str) -> str:
    return f"eyJhbGciOiJSUzI1NiJ9.{jti}.c2ln"


def enqueue(store: SqliteStore, stream_id: str, *jtis: str) -> None:
    store.enqueue([
        OutboxItem(stream_id=stream_id, jti=jti, set=token(jti), event_type=REVOKED,
                   created_at=NOW, next_attempt_at=NOW)
        for jti in jtis
    ])  # fmt: skip


def row(db: Path, jti: str) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        found = conn.execute("SELECT * FROM outbox WHERE jti = ?", (jti,)).fetchone()
    assert found is not None
    return dict(found)


def pending(store: SqliteStore, stream_id: str = "s1") -> list[str]:
    return [item.jti for item in store.pending(stream_id, limit=1000)]


def poll(store: SqliteStore, body: Any, stream_id: str = "s1") -> dict[str, Any]:
    stream = store.get_stream(stream_id)
    assert stream is not None
    return answer_poll(store, stream, body, now=NOW)


# -- the transmitter's side --------------------------------------------------------------------


def test_a_poll_returns_the_oldest_pending_sets_up_to_max_events(store: SqliteStore):
    add_stream(store, "s1")
    enqueue(store, "s1", "j1", "j2", "j3")
    answer = poll(store, {"maxEvents": 2, "returnImmediately": True})
    assert answer == {"sets": {"j1": token("j1"), "j2": token("j2")}, "moreAvailable": True}
    assert list(answer["sets"]) == ["j1", "j2"]
    assert poll(store, {"maxEvents": 3}) == {
        "sets": {"j1": token("j1"), "j2": token("j2"), "j3": token("j3")},
        "moreAvailable": False,
    }


def test_nothing_pending_is_an_empty_sets_object(store: SqliteStore):
    add_stream(store, "s1")
    assert poll(store, {}) == {"sets": {}, "moreAvailable": False}


def test_unacknowledged_sets_come_again_and_acknowledged_ones_do_not(store: SqliteStore, db: Path):
    add_stream(store, "s1")
    enqueue(store, "s1", "j1", "j2", "j3")
    first = poll(store, {"maxEvents": 2})
    assert list(first["sets"]) == ["j1", "j2"]
    again = poll(store, {"maxEvents": 2})
    assert list(again["sets"]) == ["j1", "j2"]
    after = poll(store, {"maxEvents": 2, "ack": ["j1", "j2"]})
    assert after == {"sets": {"j3": token("j3")}, "moreAvailable": False}
    assert row(db, "j1")["delivered_at"] is not None
    assert row(db, "j1")["given_up_at"] is None


def test_an_ack_is_scoped_to_the_polled_stream(store: SqliteStore):
    add_stream(store, "s1")
    add_stream(store, "s2")
    enqueue(store, "s1", "j1")
    enqueue(store, "s2", "k1")
    poll(store, {"ack": ["k1", "unknown"]}, stream_id="s1")
    assert pending(store, "s2") == ["k1"]
    assert pending(store, "s1") == ["j1"]


def test_max_events_zero_acknowledges_only_and_says_whether_more_wait(store: SqliteStore):
    add_stream(store, "s1")
    enqueue(store, "s1", "j1", "j2")
    assert poll(store, {"maxEvents": 0, "ack": ["j1"]}) == {"sets": {}, "moreAvailable": True}
    assert poll(store, {"maxEvents": 0, "ack": ["j2"]}) == {"sets": {}, "moreAvailable": False}
    assert pending(store) == []


def test_max_events_defaults_to_and_is_capped_at_the_maximum(store: SqliteStore):
    add_stream(store, "s1")
    enqueue(store, "s1", *(f"j{i:03}" for i in range(MAX_EVENTS + 5)))
    default = poll(store, {})
    assert len(default["sets"]) == MAX_EVENTS and default["moreAvailable"] is True
    capped = poll(store, {"maxEvents": 10_000})
    assert len(capped["sets"]) == MAX_EVENTS and capped["moreAvailable"] is True


def test_set_errs_give_the_sets_up_with_the_receivers_reason(store: SqliteStore, db: Path):
    add_stream(store, "s1")
    enqueue(store, "s1", "j1", "j2", "j3")
    poll(store, {"maxEvents": 3})
    answer = poll(store, {
        "ack": ["j1"],
        "setErrs": {"j2": {"err": "invalid_key", "description": "kid not found"},
                    "elsewhere": {"err": "invalid_request"}},
    })  # fmt: skip
    assert answer == {"sets": {"j3": token("j3")}, "moreAvailable": False}
    refused = row(db, "j2")
    assert refused["given_up_at"] is not None and refused["delivered_at"] is None
    assert refused["last_error"] == "refused by the receiver: invalid_key: kid not found"
    assert refused["attempts"] == 1


def test_a_jti_both_acknowledged_and_refused_counts_as_acknowledged(store: SqliteStore, db: Path):
    add_stream(store, "s1")
    enqueue(store, "s1", "j1")
    poll(store, {"ack": ["j1"], "setErrs": {"j1": {"err": "invalid_request"}}})
    assert row(db, "j1")["delivered_at"] is not None
    assert row(db, "j1")["given_up_at"] is None


def test_return_immediately_false_is_answered_at_once(store: SqliteStore):
    add_stream(store, "s1")
    assert poll(store, {"returnImmediately": False}) == {"sets": {}, "moreAvailable": False}
    enqueue(store, "s1", "j1")
    assert poll(store, {"returnImmediately": False})["sets"] == {"j1": token("j1")}


@pytest.mark.parametrize("status", ["paused", "disabled"])
def test_a_paused_or_disabled_stream_returns_nothing_but_takes_acks(
    store: SqliteStore, status: str
):
    add_stream(store, "s1")
    enqueue(store, "s1", "j1", "j2")
    stream = store.get_stream("s1")
    assert stream is not None
    store.put_stream(msgspec.structs.replace(stream, status=status), expected_revision=1)
    assert poll(store, {"ack": ["j1"]}) == {"sets": {}, "moreAvailable": False}
    assert pending(store) == ["j2"]


def test_a_push_stream_cannot_be_polled(store: SqliteStore):
    add_stream(store, "s1", delivery_method=PUSH, endpoint_url="https://r.example.com/push")
    with pytest.raises(PollError) as caught:
        poll(store, {})
    assert caught.value.body() == {
        "err": "invalid_request",
        "description": "this stream is delivered by push",
    }


def test_unknown_members_are_ignored(store: SqliteStore):
    add_stream(store, "s1")
    enqueue(store, "s1", "j1")
    assert poll(store, {"maxEvents": 1, "future": {"x": 1}})["sets"] == {"j1": token("j1")}


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ([], "Expected `object`, got `array`"),
        ("ack", "Expected `object`, got `str`"),
        ({"maxEvents": "5"}, "$.maxEvents"),
        ({"maxEvents": -1}, "$.maxEvents"),
        ({"maxEvents": True}, "$.maxEvents"),
        ({"maxEvents": 2.5}, "$.maxEvents"),
        ({"returnImmediately": "yes"}, "$.returnImmediately"),
        ({"ack": "j1"}, "$.ack"),
        ({"ack": [1, 2]}, "$.ack[0]"),
        ({"ack": ["j"] * (MAX_ACKS + 1)}, "$.ack"),
        ({"setErrs": ["j1"]}, "$.setErrs"),
        ({"setErrs": {"j1": {"description": "no err"}}}, "$.setErrs[...]"),
        ({"setErrs": {"j1": {"err": ""}}}, "$.setErrs[...].err"),
        ({"setErrs": {"j1": "invalid_key"}}, "$.setErrs[...]"),
    ],
)
def test_a_malformed_request_is_invalid_request_naming_the_member(
    store: SqliteStore, body: Any, where: str
):
    add_stream(store, "s1")
    enqueue(store, "s1", "j1")
    with pytest.raises(PollError) as caught:
        poll(store, body)
    assert caught.value.err == "invalid_request"
    assert where in caught.value.description
    assert pending(store) == ["j1"]  # nothing was done


def test_poll_error_takes_only_registered_codes():
    with pytest.raises(ValueError, match="unknown SET error code"):
        PollError("nope", "x")


# -- a real poll server ------------------------------------------------------------------------


@dataclass
class Transmitter:
    """A poll endpoint over a real store: records every request body, checks the bearer,
    answers with `answer_poll` unless ``override`` answers first."""

    store: SqliteStore
    port: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    override: Callable[[dict[str, Any]], tuple[int, bytes] | None] = lambda body: None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ssf/poll/s1"

    def client(self, **kwargs: Any) -> PollClient:
        return PollClient(self.url, kwargs.pop("authorization", BEARER),
                          allow_private=kwargs.pop("allow_private", True), **kwargs)  # fmt: skip


@pytest.fixture
def transmitter(store: SqliteStore) -> Iterator[Transmitter]:
    state = Transmitter(store)
    add_stream(store, "s1")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            state.bodies.append(body)
            state.authorizations.append(self.headers.get("Authorization"))
            answered = state.override(body)
            if answered is None:
                if self.headers.get("Authorization") != BEARER:
                    answered = 401, b'{"err": "authentication_failed", "description": "no"}'
                else:
                    stream = state.store.get_stream(self.path.rsplit("/", 1)[1])
                    assert stream is not None
                    try:
                        answered = 200, json.dumps(answer_poll(state.store, stream, body,
                                                               now=NOW)).encode()  # fmt: skip
                    except PollError as error:
                        answered = 400, json.dumps(error.body()).encode()
            status, content = answered
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)
            except OSError:  # the client gave up (the timeout test)
                pass

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


def accept_all(seen: list[str]) -> Callable[[str], str | None]:
    def handle(set_token: str) -> str | None:
        seen.append(set_token)
        return None

    return handle


# -- the receiver's side -----------------------------------------------------------------------


def test_the_client_acknowledges_in_the_next_request_until_nothing_is_left(
    transmitter: Transmitter, store: SqliteStore
):
    enqueue(store, "s1", "j1", "j2", "j3")
    seen: list[str] = []
    report = transmitter.client().poll_once(accept_all(seen), max_events=2)
    assert seen == [token("j1"), token("j2"), token("j3")]
    assert transmitter.bodies == [
        {"maxEvents": 2, "returnImmediately": True},
        {"maxEvents": 2, "returnImmediately": True, "ack": ["j1", "j2"]},
        {"maxEvents": 0, "returnImmediately": True, "ack": ["j3"]},  # ack only: no more
    ]
    assert transmitter.authorizations == [BEARER] * 3
    assert report == PollReport(received=3, acknowledged=3, requests=3)
    assert pending(store) == []


def test_nothing_waiting_is_one_request(transmitter: Transmitter):
    report = transmitter.client().poll_once(accept_all([]))
    assert report == PollReport(requests=1)
    assert transmitter.bodies == [{"maxEvents": 25, "returnImmediately": True}]


def test_a_refused_set_is_reported_in_set_errs_and_given_up(
    transmitter: Transmitter, store: SqliteStore, db: Path
):
    enqueue(store, "s1", "j1", "j2")
    report = transmitter.client().poll_once(lambda t: "invalid_key" if t == token("j1") else None)
    assert report == PollReport(received=2, acknowledged=1, refused=1, requests=2)
    assert transmitter.bodies[1] == {
        "maxEvents": 0,
        "returnImmediately": True,
        "ack": ["j2"],
        "setErrs": {"j1": {"err": "invalid_key",
                           "description": "the receiver refused the SET (invalid_key)"}},
    }  # fmt: skip
    assert row(db, "j1")["given_up_at"] is not None
    assert row(db, "j1")["last_error"].startswith("refused by the receiver: invalid_key")
    assert row(db, "j2")["delivered_at"] is not None


def test_acknowledgements_survive_a_failed_request_and_go_with_the_next_poll(
    transmitter: Transmitter, store: SqliteStore
):
    enqueue(store, "s1", "j1")
    failing = {"on": False}

    def override(body: dict[str, Any]) -> tuple[int, bytes] | None:
        if "ack" in body and not failing["on"]:
            failing["on"] = True
            return 503, b"busy"
        return None

    transmitter.override = override
    client = transmitter.client()
    seen: list[str] = []
    with pytest.raises(PollFailed) as caught:
        client.poll_once(accept_all(seen))
    assert caught.value.status == 503 and caught.value.err is None
    assert client.unsent == 1
    assert pending(store) == ["j1"]
    report = client.poll_once(accept_all(seen))
    assert transmitter.bodies[-1] == {"maxEvents": 25, "returnImmediately": True, "ack": ["j1"]}
    assert report == PollReport(acknowledged=1, requests=1)
    assert seen == [token("j1")]  # not handed over twice
    assert pending(store) == []


def test_a_set_whose_handler_raises_is_not_acknowledged_and_comes_again(
    transmitter: Transmitter, store: SqliteStore
):
    enqueue(store, "s1", "j1", "j2")

    def handle(set_token: str) -> str | None:
        if set_token == token("j2"):
            raise RuntimeError("database down")
        return None

    client = transmitter.client()
    with pytest.raises(RuntimeError):
        client.poll_once(handle)
    seen: list[str] = []
    client.poll_once(accept_all(seen))
    assert transmitter.bodies[1]["ack"] == ["j1"]
    assert seen == [token("j2")]
    assert pending(store) == []


def test_a_wrong_bearer_is_a_poll_failure_with_the_err(transmitter: Transmitter):
    with pytest.raises(PollFailed) as caught:
        transmitter.client(authorization="Bearer wrong").poll_once(accept_all([]))
    assert (caught.value.status, caught.value.err) == (401, "authentication_failed")
    assert transmitter.authorizations == ["Bearer wrong"]


def test_a_request_the_transmitter_refuses_is_a_poll_failure(transmitter: Transmitter):
    transmitter.override = lambda body: (400, b'{"err": "invalid_request", "description": "x"}')
    with pytest.raises(PollFailed) as caught:
        transmitter.client().poll_once(accept_all([]))
    assert caught.value.err == "invalid_request"
    assert "invalid_request: x" in caught.value.reason


@pytest.mark.parametrize(
    "content", [b"not json", b'{"sets": ["a"]}', b'{"sets": {"j": 1}}', b'{"moreAvailable": 1}']
)
def test_a_malformed_answer_is_a_poll_failure(transmitter: Transmitter, content: bytes):
    transmitter.override = lambda body: (200, content)
    with pytest.raises(PollFailed, match="malformed"):
        transmitter.client().poll_once(accept_all([]))


def test_the_round_limit_bounds_one_poll(transmitter: Transmitter, store: SqliteStore):
    enqueue(store, "s1", *(f"j{i}" for i in range(10)))
    client = transmitter.client(max_rounds=3)
    report = client.poll_once(accept_all([]), max_events=2)
    assert report == PollReport(received=6, acknowledged=4, requests=3, more_available=True)
    assert client.unsent == 2
    client.poll_once(accept_all([]), max_events=100)
    assert pending(store) == []


def test_a_loopback_poll_url_is_refused_unless_private_is_allowed(transmitter: Transmitter):
    with pytest.raises(PollFailed, match="unsafe poll URL: the URL must be https"):
        transmitter.client(allow_private=False).poll_once(accept_all([]))
    https = PollClient(f"https://127.0.0.1:{transmitter.port}/", allow_private=False)
    with pytest.raises(PollFailed, match=r"unsafe poll URL: .*not a public address \(loopback\)"):
        https.poll_once(accept_all([]))
    assert transmitter.bodies == []


def test_the_poll_goes_to_the_pinned_address(transmitter: Transmitter, store: SqliteStore):
    enqueue(store, "s1", "j1")
    client = PollClient(f"http://transmitter.test:{transmitter.port}/ssf/poll/s1", BEARER,
                        allow_private=True, resolve=lambda host: ["127.0.0.1"])  # fmt: skip
    assert client.poll_once(accept_all([])).received == 1


def test_a_transmitter_that_cannot_be_reached_is_a_poll_failure():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = PollClient(f"http://127.0.0.1:{port}/poll", allow_private=True, timeout=2)
    with pytest.raises(PollFailed, match="ConnectError"):
        client.poll_once(accept_all([]))


def test_a_slow_transmitter_times_out(transmitter: Transmitter):
    import time

    def slow(body: dict[str, Any]) -> tuple[int, bytes]:
        time.sleep(0.6)
        return 200, b"{}"

    transmitter.override = slow
    with pytest.raises(PollFailed, match="timed out"):
        transmitter.client(timeout=0.2).poll_once(accept_all([]))


def test_the_clock_does_not_matter_to_the_poll_answer(store: SqliteStore):
    add_stream(store, "s1")
    enqueue(store, "s1", "j1")
    stream = store.get_stream("s1")
    assert stream is not None
    later = answer_poll(store, stream, {"ack": ["j1"]}, now=NOW + timedelta(days=400))
    assert later == {"sets": {}, "moreAvailable": False}
