"""Faults under a real `juncture serve` on SQLite: the process killed under load, the disk
full, the database read-only, a corrupt row, the database locked by another process.

Whatever fails, a decision that needed the store is `deny` (or a 503 problem with a registered
code), never `allow` and never a 500; what was acknowledged is there afterwards; the service
recovers by itself when the fault goes. No assertion is on timing except generous bounds, so
that a slow, shared 2-core machine does not make these tests flaky.
"""

from __future__ import annotations

import contextlib
import resource
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from juncture.errors import CODES
from service.server import Server, file_modes_obeyed
from service.test_http import admin, bundle, new_app

#: The longest any one answer may take while a fault lasts.
BOUND = 30.0
#: ... and while the store is locked: its busy timeout (5 s) once, and a margin for a slow
#: machine; less than three busy timeouts, which three writes waiting in turn would take.
LOCKED_BOUND = 14.0


def ask(client: httpx.Client, session: str, action: str, subject: str = "alice") -> httpx.Response:
    """An AuthZEN evaluation of ``action`` in ``session``."""
    user = {"type": "user", "id": subject}
    account = {"type": "account", "id": subject}
    body = {"subject": user, "action": {"name": action}, "resource": account,
            "context": {"session_id": session}}  # fmt: skip
    return client.post("/access/v1/evaluation", json=body)


def begin(client: httpx.Client, subject: str = "alice", **context: Any) -> httpx.Response:
    """A session started with a password the app asserts (login allows at once)."""
    body = {"subject": {"type": "user", "id": subject}, "proofs": [{"method": "password"}],
            "context": context}  # fmt: skip
    return client.post("/v1/sessions", json=body)


def failed_closed(answer: httpx.Response) -> str:
    """The answer to a request made while the store failed: a deny or a 503 problem (with a
    registered code), never an allow and never a 500. Returns what it was."""
    assert answer.status_code < 500 or answer.status_code == 503, answer.text
    body = answer.json()
    if answer.status_code == 503:
        assert body["code"] in ("unavailable.store", "unavailable.corrupt"), answer.text
        return "503"
    if answer.status_code >= 400:
        assert body["code"] in CODES, answer.text
        return body["code"]
    return "answered"


def decision_of(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path / "j.db", bundle(tmp_path / "v1", "10m")).start()
    try:
        yield running
    finally:
        running.stop()


# -- SIGKILL under load ---------------------------------------------------------------------------


class Acknowledged:
    """What the server acknowledged to the clients, gathered from several threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sessions: list[tuple[str, str]] = []  # (session, subject)
        self.verified: list[str] = []
        self.revoked: list[str] = []
        #: Revocations sent: one the kill cut off may have been applied unacknowledged.
        self.ending: list[str] = []
        self.errors: list[str] = []

    def add(self, into: list[Any], value: Any) -> None:
        with self.lock:
            into.append(value)


def load(server: Server, key: str, subject: str, acked: Acknowledged, killed: threading.Event,
         ) -> None:  # fmt: skip
    """Sessions, step-ups and revocations, until the server is gone."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, timeout=BOUND, headers=headers) as client:
        round_ = 0
        while not killed.is_set():
            round_ += 1
            try:
                started = begin(client, subject)
                if started.status_code != 201:
                    acked.add(acked.errors, started.text)
                    continue
                session = started.json()["session"]["id"]
                acked.add(acked.sessions, (session, subject))
                asked = ask(client, session, "change_email", subject)
                if asked.status_code != 200 or "challenge_id" not in asked.json()["context"]:
                    acked.add(acked.errors, asked.text)
                    continue
                challenge = asked.json()["context"]["challenge_id"]
                verified = client.post(f"/v1/challenges/{challenge}/verify",
                                       json={"method": "totp"})  # fmt: skip
                if verified.status_code == 200:
                    acked.add(acked.verified, session)
                elif verified.status_code >= 500:
                    acked.add(acked.errors, verified.text)
                if round_ % 2 == 0:
                    acked.add(acked.ending, session)
                    ended = client.post(f"/v1/sessions/{session}/end",
                                        json={"revoke_reason": "stolen"})  # fmt: skip
                    if ended.status_code == 200:
                        acked.add(acked.revoked, session)
                    elif ended.status_code >= 500:
                        acked.add(acked.errors, ended.text)
            except httpx.TransportError:
                if killed.is_set():
                    return
                time.sleep(0.05)  # the server is being killed: the next call says so


def test_acknowledged_writes_survive_sigkill_under_load(tmp_path: Path) -> None:
    """I1, I2: several clients start sessions, step up and revoke while the server is killed
    with SIGKILL; after a restart on the same database every session whose start answered 201,
    every proof whose verification answered 200 and every revocation that answered 200 is
    there, and no revoked session is allowed anything."""
    server = Server(tmp_path / "j.db", bundle(tmp_path / "v1", "10m")).start()
    try:
        _, web = new_app(server)
        key = str(web.headers["Authorization"]).removeprefix("Bearer ")
        acked = Acknowledged()
        killed = threading.Event()
        threads = [
            threading.Thread(target=load, args=(server, key, f"user{n}", acked, killed))
            for n in range(4)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(acked.revoked) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()
        killed.set()
        for thread in threads:
            thread.join(BOUND * 2)
        assert not any(thread.is_alive() for thread in threads)
        assert acked.errors == []
        assert len(acked.revoked) >= 30, "too little load before the kill"

        server.start()
        for session, subject in acked.sessions:
            read = web.get(f"/v1/sessions/{session}")
            assert read.status_code == 200, read.text
            if session in acked.verified:
                assert "totp" in [p["method"] for p in read.json()["proofs"]], read.text
            if session in acked.revoked:
                assert read.json()["status"] == "revoked", read.text
            answer = decision_of(ask(web, session, "change_email", subject))
            if session in acked.revoked:  # I1
                assert answer["decision"] is False, answer
            elif session in acked.verified and session not in acked.ending:
                assert answer["decision"] is True, answer  # I2: the acknowledged proof is there
        fresh = begin(web, "after")
        assert fresh.status_code == 201, fresh.text
        assert decision_of(ask(web, fresh.json()["session"]["id"], "login", "after"))["decision"]
    finally:
        server.stop()


# -- the disk full --------------------------------------------------------------------------------


def file_size_limit(limit: int) -> Callable[[], None]:
    """A child's file-size limit (soft: the test raises it again with prlimit, the space
    "returns"); SIGXFSZ ignored, so a write past it fails with EFBIG instead of killing."""

    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return preexec


def test_disk_full_fails_closed_and_recovers_when_space_returns(tmp_path: Path) -> None:
    """I5, I1, I2: with the database unable to grow, a decision that needs a write is deny
    (or 503 `unavailable.store`), never an allow or a 500; a verification or revocation that
    could not be written is not acknowledged; when space returns the service writes again
    without a restart and everything acknowledged is there."""
    limit = 2 * 1024 * 1024
    server = Server(tmp_path / "j.db", bundle(tmp_path / "v1", "10m"),
                    preexec=file_size_limit(limit)).start()  # fmt: skip
    try:
        _, web = new_app(server)
        # before the disk fills: a verified session and a pending step-up
        verified = begin(web).json()["session"]["id"]
        challenge = decision_of(ask(web, verified, "change_email"))["context"]["challenge_id"]
        assert web.post(f"/v1/challenges/{challenge}/verify", json={"method": "totp"}).is_success
        pending = begin(web).json()["session"]["id"]
        waiting = decision_of(ask(web, pending, "change_email"))["context"]["challenge_id"]
        victim = begin(web).json()["session"]["id"]
        spare = begin(web).json()["session"]["id"]
        acknowledged = [verified, pending, victim, spare]
        # fill it with work until writes fail
        filler = {"filler": "x" * 2000}
        for n in range(5000):
            made = begin(web, f"filler{n}", context=filler)
            if made.status_code != 201:
                assert failed_closed(made) == "503"
                break
            assert "session" in made.json(), made.text
            acknowledged.append(made.json()["session"]["id"])
        else:
            pytest.fail("the database never filled")
        assert server.process is not None
        # a failed write leaves room a smaller one fits in: fill that with small writes too
        for _ in range(500):
            small = decision_of(ask(web, spare, "change_email"))  # a challenge is written
            if small["context"]["reason"] == "unavailable.store":
                break
        else:
            pytest.fail("small writes never failed")
        # full: the same write for another session is deny, never an allow, never a 500
        stepped = decision_of(ask(web, pending, "change_email"))
        assert stepped["decision"] is False
        assert stepped["context"]["reason"] == "unavailable.store", stepped
        # what is answered 200 or 201 is written; what could not be written is a 503
        proof = web.post(f"/v1/challenges/{waiting}/verify", json={"method": "totp"})
        ended = web.post(f"/v1/sessions/{victim}/end", json={"revoke_reason": "stolen"})
        late = begin(web, "late")
        outcomes = [failed_closed(a) for a in (proof, ended, late)]
        assert "503" in outcomes, outcomes
        # space returns: no restart
        resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # fmt: skip
        later = begin(web, "later")
        assert later.status_code == 201, later.text
        for session in acknowledged:
            assert web.get(f"/v1/sessions/{session}").status_code == 200
        assert decision_of(ask(web, verified, "change_email"))["decision"] is True
        proven = decision_of(ask(web, pending, "change_email"))["decision"]
        assert proven is (proof.status_code == 200), (proof.text, proven)  # I2
        status = web.get(f"/v1/sessions/{victim}").json()["status"]
        assert status == ("revoked" if ended.status_code == 200 else "active"), ended.text
        if ended.status_code == 200:  # I1
            assert decision_of(ask(web, victim, "login"))["decision"] is False
        # the decision records kept in memory while the disk was full are written now
        with admin(server) as client:
            log = client.get("/admin/v1/decisions", params={"session_id": pending}).json()
        reasons = [d["decision"].get("reason") for d in log["decisions"]]
        assert "unavailable.store" in reasons, reasons
    finally:
        server.stop()


# -- the database read-only ------------------------------------------------------------------------


def read_only(root: Path, on: bool = True) -> None:
    """The database's files and their directory read-only (or writable again)."""
    for name in ("j.db", "j.db-wal", "j.db-shm"):
        with contextlib.suppress(FileNotFoundError):
            (root / name).chmod(0o444 if on else 0o644)
    root.chmod(0o555 if on else 0o755)


@pytest.fixture
def writable_again(tmp_path: Path) -> Iterator[Path]:
    try:
        yield tmp_path
    finally:
        read_only(tmp_path, on=False)  # so that pytest can clean up


def test_read_only_database_fails_closed_and_recovers_without_a_restart(
    writable_again: Path,
) -> None:
    """I5, I1, I2: the database made read-only. A running server's connection was opened for
    writing and keeps working (a file's mode is checked when it is opened): what it answers
    is real. Started on the read-only database, the server answers reads, a decision that
    needs a write is deny `unavailable.store` and a start, verification or revocation 503,
    none acknowledged; made writable again, it writes again without a restart (it once stayed
    read-only until restarted)."""
    root = writable_again
    server = Server(root / "j.db", bundle(root / "v1", "10m"),
                    preexec=file_modes_obeyed()).start()  # fmt: skip
    try:
        _, web = new_app(server)
        key = str(web.headers["Authorization"]).removeprefix("Bearer ")
        pending = begin(web).json()["session"]["id"]
        victim = begin(web).json()["session"]["id"]
        read_only(root)
        during = begin(web)  # the open connection still writes
        assert during.status_code == 201, during.text
        asked = decision_of(ask(web, pending, "change_email"))
        challenge = asked["context"]["challenge_id"]
        server.stop()

        server.start()  # on the read-only database
        web = server.client(key)
        assert web.get(f"/v1/sessions/{during.json()['session']['id']}").status_code == 200
        stepped = decision_of(ask(web, victim, "change_email"))
        assert (stepped["decision"], stepped["context"]["reason"]) == (False, "unavailable.store")
        proof = web.post(f"/v1/challenges/{challenge}/verify", json={"method": "totp"})
        ended = web.post(f"/v1/sessions/{victim}/end", json={"revoke_reason": "stolen"})
        for answer in (begin(web, "late"), proof, ended):
            assert failed_closed(answer) == "503"

        read_only(root, on=False)  # no restart
        later = begin(web, "later")
        assert later.status_code == 201, later.text
        assert web.get(f"/v1/sessions/{pending}").json()["aal"] == 1  # I2: not acknowledged
        assert web.get(f"/v1/sessions/{victim}").json()["status"] == "active"
        proof = web.post(f"/v1/challenges/{challenge}/verify", json={"method": "totp"})
        assert proof.status_code == 200, proof.text
        assert decision_of(ask(web, pending, "change_email"))["decision"] is True
        ended = web.post(f"/v1/sessions/{victim}/end", json={"revoke_reason": "stolen"})
        assert ended.status_code == 200, ended.text
        assert decision_of(ask(web, victim, "login"))["decision"] is False  # I1
    finally:
        server.stop()


def test_unopenable_database_stops_the_start_with_one_error_line(writable_again: Path) -> None:
    """I5: a read-only database with nothing to start from (stopped cleanly, so no WAL to read)
    stops `juncture serve` with one error line and exit 2 (it once ended in a traceback)."""
    root = writable_again
    server = Server(root / "j.db", bundle(root / "v1", "10m"),
                    preexec=file_modes_obeyed()).start()  # fmt: skip
    server.stop()
    read_only(root)
    with pytest.raises(RuntimeError, match="cannot open") as refused:
        server.start()
    assert "Traceback" not in str(refused.value), refused.value
    assert server.process is not None and server.process.returncode == 2
    read_only(root, on=False)
    server.start()
    server.stop()


# -- the database locked by another process -------------------------------------------------------


@contextlib.contextmanager
def locked(db: Path) -> Iterator[None]:
    """Another process's connection holding the database's write lock (BEGIN EXCLUSIVE)."""
    other = sqlite3.connect(db, isolation_level=None, timeout=BOUND)
    try:
        other.execute("BEGIN EXCLUSIVE")
        yield
        other.execute("ROLLBACK")
    finally:
        other.close()


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    answer = call()
    return answer, time.monotonic() - began


def test_store_locked_fails_closed_within_a_bound_and_recovers(served: Server) -> None:
    """I5, I1: while another process holds the database's write lock past the store's busy
    timeout, decisions that need a write are deny `unavailable.store`, verifications and
    revocations are 503 `unavailable.store` (not acknowledged), every one answered within a
    bound however many wait together (each once cost the whole timeout in turn, so the last of
    six waited 30 s), never an allow or a 500; when the lock goes the service works again,
    without a restart, and nothing unacknowledged was written."""
    _, web = new_app(served)
    session = begin(web).json()["session"]["id"]
    challenge = decision_of(ask(web, session, "change_email"))["context"]["challenge_id"]
    answers: list[httpx.Response | Exception] = []
    headers = dict(web.headers)

    def request(method: str, path: str, body: Any = None) -> None:
        try:  # one client each: they wait together
            with httpx.Client(base_url=served.url, timeout=LOCKED_BOUND, headers=headers) as own:
                answers.append(own.request(method, path, json=body))
        except httpx.HTTPError as exc:
            answers.append(exc)

    calls = [("POST", "/access/v1/evaluation", {
        "subject": {"type": "user", "id": "alice"}, "action": {"name": "change_email"},
        "resource": {"type": "account", "id": "alice"}, "context": {"session_id": session}})
    ] * 4 + [("POST", f"/v1/challenges/{challenge}/verify", {"method": "totp"}),
             ("POST", f"/v1/sessions/{session}/end", {"revoke_reason": "stolen"})]  # fmt: skip
    with locked(served.db):
        threads = [threading.Thread(target=request, args=call) for call in calls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        read = web.get(f"/v1/sessions/{session}")  # reads do not need the lock
    assert read.status_code == 200, read.text
    assert not [a for a in answers if isinstance(a, Exception)], "no answer within the bound"
    outcomes = sorted(failed_closed(a) for a in answers if isinstance(a, httpx.Response))
    assert outcomes == ["503", "503", "answered", "answered", "answered", "answered"], outcomes
    for answer in answers:
        assert isinstance(answer, httpx.Response)
        if answer.status_code == 200:
            context = answer.json()["context"]
            assert (context["outcome"], context["reason"]) == ("deny", "unavailable.store")

    # the lock is gone: the service writes again, and what was refused was not written
    after = web.get(f"/v1/sessions/{session}").json()
    assert after["status"] == "active" and after["aal"] == 1, after
    verified = web.post(f"/v1/challenges/{challenge}/verify", json={"method": "totp"})
    assert verified.status_code == 200, verified.text
    assert decision_of(ask(web, session, "change_email"))["decision"] is True


def test_session_start_the_store_cannot_finish_is_503_not_201_without_a_session(
    tmp_path: Path,
) -> None:
    """I5 (found by the disk-full test): a start whose session was written but whose `login`
    decision could not be (the disk filled in between) was answered 201 with a deny and no
    session. It is a 503 `unavailable.store`: a 201 always hands out the session it made.

    The space is given back a WAL frame more at each try, so that some start finds room for
    its session but not for what its decision writes next."""
    server = Server(tmp_path / "j.db", bundle(tmp_path / "v1", "10m"),
                    preexec=file_size_limit(1024 * 1024)).start()  # fmt: skip
    try:
        _, web = new_app(server)
        assert server.process is not None
        pid = server.process.pid
        wal = server.db.with_name(server.db.name + "-wal")
        frames, refused, started = 1, 0, 0
        for n in range(300):
            made = begin(web, f"user{n}", context={"filler": "x" * 1500})
            if made.status_code == 201:
                assert "session" in made.json(), made.text
                started += 1
                frames = 1
                if refused and started > 40:
                    break
                continue
            assert failed_closed(made) == "503"
            refused += 1
            room = wal.stat().st_size + frames * (4096 + 24)
            resource.prlimit(pid, resource.RLIMIT_FSIZE, (room, resource.RLIM_INFINITY))
            frames += 1
        assert refused and started > 40, (refused, started)
    finally:
        server.stop()


# -- a corrupt row --------------------------------------------------------------------------------


@pytest.mark.parametrize("garbage", [b"\x00\xff garbage", b"{}", b'{"id": 1, "status": []}'])
def test_corrupt_session_row_fails_closed_and_spares_the_others(
    served: Server, garbage: bytes
) -> None:
    """I5: a session whose stored body is garbage (written into the SQLite file behind the
    server's back) is never allowed anything: its decisions are deny `unavailable.corrupt`,
    its reads and changes 503 `unavailable.corrupt` (it once said `unavailable.store`, while
    the store was fine), never a 500; the other sessions and the health are unaffected."""
    _, web = new_app(served)
    broken = begin(web).json()["session"]["id"]
    other = begin(web, "bob").json()["session"]["id"]
    assert decision_of(ask(web, broken, "login"))["decision"] is True
    with contextlib.closing(sqlite3.connect(served.db, isolation_level=None)) as db:
        db.execute("UPDATE sessions SET body = ? WHERE id = ?", (garbage, broken))
    batch = {"subject": {"type": "user", "id": "alice"},
             "resource": {"type": "account", "id": "alice"}, "context": {"session_id": broken},
             "evaluations": [{"action": {"name": "login"}}]}  # fmt: skip
    answers = {
        "evaluation": ask(web, broken, "login"),
        "read": web.get(f"/v1/sessions/{broken}"),
        "signals": web.post(f"/v1/sessions/{broken}/signals", json={"context": {"context": {}}}),
        "end": web.post(f"/v1/sessions/{broken}/end", json={}),
        "batch": web.post("/access/v1/evaluations", json=batch),
    }
    for name in ("evaluation", "batch"):
        body = decision_of(answers[name])
        for item in body.get("evaluations", [body]):
            assert item["decision"] is False, (name, body)
            assert item["context"]["reason"] == "unavailable.corrupt", (name, body)
    for name in ("read", "signals", "end"):
        assert failed_closed(answers[name]) == "503"
        assert answers[name].json()["code"] == "unavailable.corrupt", answers[name].text
    assert decision_of(ask(web, other, "login", "bob"))["decision"] is True
    assert web.get(f"/v1/sessions/{other}").status_code == 200
    health = httpx.get(f"{served.url}/healthz")
    assert health.status_code == 200, health.text
