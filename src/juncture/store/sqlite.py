"""The SQLite backend: the embedded default, one file, standard library `sqlite3` only.

Records are stored as msgspec JSON beside the columns that are queried. Durability: WAL
journal with ``synchronous=FULL``, so a change is on disk when its method returns. Each
state-changing method is one ``BEGIN IMMEDIATE`` transaction on the one writer connection
(guarded by a lock: writers of this process queue in Python, not in SQLite's busy sleep;
other processes wait up to ``busy_timeout``). Once a write has waited that long in vain (another
process holds the lock), later writes wait only ``_BUSY_AGAIN`` until one gets through: the
callers wait in line, so a lock held for long must not cost each of them the whole timeout.
Reads run on a pool of read-only connections, so readers never wait for a writer (WAL
snapshots). Every `sqlite3` error surfaces as `StoreError` (a uniqueness violation as
`ConflictError`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import msgspec

from juncture.records import (
    AdminCredential,
    App,
    Approval,
    Authenticator,
    Challenge,
    DecisionQuery,
    DecisionRecord,
    Failures,
    Heartbeat,
    OutboxItem,
    PolicyVersion,
    ReceivedEvent,
    Session,
    SessionPage,
    Stream,
    StreamSubject,
    Subject,
    SubjectSeen,
    SweepRun,
    Usage,
    VersionInfo,
)
from juncture.store.files import touch_private
from juncture.store.protocols import ConflictError, CorruptError, NotFound, StoreError

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

_T = TypeVar("_T")
#: How long a write waits for another process's lock after one waited the whole busy timeout
#: in vain (seconds), until a write gets through again.
_BUSY_AGAIN = 0.1

#: One list of statements per schema version; version N is reached by running ``_MIGRATIONS[N-1]``.
#: Released versions never change: a later schema appends a list (ALTER TABLE ..., new indexes).
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            handle TEXT NOT NULL UNIQUE,
            app TEXT NOT NULL,
            subject_id TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at INTEGER NOT NULL,
            revision INTEGER NOT NULL,
            body BLOB NOT NULL
        )""",
        "CREATE INDEX sessions_app ON sessions (app, started_at)",
        "CREATE INDEX sessions_subject ON sessions (subject_id, started_at)",
        "CREATE INDEX sessions_status ON sessions (status, started_at)",
        """CREATE TABLE versions (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            created_at INTEGER NOT NULL,
            active INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1)),
            activated_at INTEGER,
            activated_by TEXT,
            body BLOB NOT NULL
        )""",
        "CREATE INDEX versions_created ON versions (created_at, seq)",
        # INVARIANT: at most one active version (activate swaps it in one transaction).
        "CREATE UNIQUE INDEX versions_one_active ON versions (active) WHERE active = 1",
        """CREATE TABLE decisions (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            at INTEGER NOT NULL,
            app TEXT,
            subject_id TEXT,
            session_id TEXT,
            action TEXT NOT NULL,
            outcome TEXT NOT NULL,
            body BLOB NOT NULL
        )""",
        "CREATE INDEX decisions_at ON decisions (at, id)",
        "CREATE INDEX decisions_app ON decisions (app, at, id)",
        "CREATE INDEX decisions_subject ON decisions (subject_id, at, id)",
        "CREATE INDEX decisions_session ON decisions (session_id, at, id)",
        "CREATE INDEX decisions_action ON decisions (action, at, id)",
        "CREATE INDEX decisions_outcome ON decisions (outcome, at, id)",
        "CREATE TABLE apps (id TEXT PRIMARY KEY, body BLOB NOT NULL)",
        "CREATE TABLE admins (id TEXT PRIMARY KEY, body BLOB NOT NULL)",
        # INVARIANT: a key prefix finds exactly one holder, an app or an admin.
        """CREATE TABLE key_prefixes (
            prefix TEXT PRIMARY KEY,
            app_id TEXT REFERENCES apps (id) ON DELETE CASCADE,
            admin_id TEXT REFERENCES admins (id) ON DELETE CASCADE,
            CHECK ((app_id IS NULL) <> (admin_id IS NULL))
        ) WITHOUT ROWID""",
        "CREATE INDEX key_prefixes_app ON key_prefixes (app_id)",
        "CREATE INDEX key_prefixes_admin ON key_prefixes (admin_id)",
        """CREATE TABLE challenges (
            id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL,
            expires_at INTEGER NOT NULL,
            body BLOB NOT NULL
        )""",
        "CREATE INDEX challenges_expires ON challenges (expires_at)",
    ),
    (
        """CREATE TABLE subjects_seen (
            subject_type TEXT NOT NULL,
            subject_id TEXT NOT NULL,
            revision INTEGER NOT NULL,
            body BLOB NOT NULL,
            PRIMARY KEY (subject_type, subject_id)
        )""",
    ),
    (
        """CREATE TABLE subjects (
            type TEXT NOT NULL,
            id TEXT NOT NULL,
            status TEXT NOT NULL,
            revision INTEGER NOT NULL,
            body BLOB NOT NULL,
            PRIMARY KEY (type, id)
        )""",
        "CREATE INDEX subjects_status ON subjects (status, type, id)",
        # INVARIANT: a lookup key (a WebAuthn credential id) finds at most one authenticator.
        """CREATE TABLE authenticators (
            id TEXT PRIMARY KEY,
            subject_type TEXT NOT NULL,
            subject_id TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            lookup TEXT UNIQUE,
            revision INTEGER NOT NULL,
            body BLOB NOT NULL
        )""",
        "CREATE INDEX authenticators_subject"
        " ON authenticators (subject_type, subject_id, created_at, id)",
        """CREATE TABLE failures (
            subject_type TEXT NOT NULL,
            subject_id TEXT NOT NULL,
            counter TEXT NOT NULL,
            body BLOB NOT NULL,
            PRIMARY KEY (subject_type, subject_id, counter)
        )""",
    ),
    (
        # INVARIANT: a SET is kept once per (issuer, jti): the receiver's replay guard.
        """CREATE TABLE received_events (
            issuer TEXT NOT NULL,
            jti TEXT NOT NULL,
            received_at INTEGER NOT NULL,
            subject_id TEXT,
            body BLOB NOT NULL,
            PRIMARY KEY (issuer, jti)
        )""",
        "CREATE INDEX received_events_at ON received_events (received_at, jti, issuer)",
        "CREATE INDEX received_events_subject"
        " ON received_events (subject_id, received_at, jti, issuer)",
        # The sessions a received event named (its session_ids), to list a session's events.
        """CREATE TABLE received_sessions (
            issuer TEXT NOT NULL,
            jti TEXT NOT NULL,
            session_id TEXT NOT NULL,
            received_at INTEGER NOT NULL,
            PRIMARY KEY (issuer, jti, session_id),
            FOREIGN KEY (issuer, jti) REFERENCES received_events (issuer, jti) ON DELETE CASCADE
        ) WITHOUT ROWID""",
        "CREATE INDEX received_sessions_session"
        " ON received_sessions (session_id, received_at, jti, issuer)",
        """CREATE TABLE event_times (
            subject_key TEXT NOT NULL,
            signal TEXT NOT NULL,
            at INTEGER NOT NULL,
            PRIMARY KEY (subject_key, signal)
        ) WITHOUT ROWID""",
        """CREATE TABLE streams (
            id TEXT PRIMARY KEY,
            app TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            delivery_method TEXT NOT NULL,
            status TEXT NOT NULL,
            revision INTEGER NOT NULL,
            body BLOB NOT NULL
        )""",
        "CREATE INDEX streams_created ON streams (created_at, id)",
        "CREATE INDEX streams_app ON streams (app, created_at, id)",
        # INVARIANT: a subject is on a stream once (keyed by its canonical JSON).
        """CREATE TABLE stream_subjects (
            stream_id TEXT NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
            subject TEXT NOT NULL,
            added_at INTEGER NOT NULL,
            body BLOB NOT NULL,
            PRIMARY KEY (stream_id, subject)
        ) WITHOUT ROWID""",
        "CREATE INDEX stream_subjects_added ON stream_subjects (stream_id, added_at, subject)",
        # INVARIANT: seq only grows and is never reused (AUTOINCREMENT), even after deletes:
        # a dispatcher holding a seq never marks another item. No foreign key: delivered items
        # outlive their stream.
        """CREATE TABLE outbox (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            stream_id TEXT NOT NULL,
            jti TEXT NOT NULL,
            token TEXT NOT NULL,
            event_type TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            next_attempt_at INTEGER NOT NULL,
            attempts INTEGER NOT NULL,
            delivered_at INTEGER,
            last_error TEXT,
            given_up_at INTEGER,
            UNIQUE (stream_id, jti)
        )""",
        # Only the items still to deliver are indexed: what is due (by stream, then time) and
        # what a poll returns (by stream, in order).
        "CREATE INDEX outbox_due ON outbox (stream_id, next_attempt_at)"
        " WHERE delivered_at IS NULL AND given_up_at IS NULL",
        "CREATE INDEX outbox_pending ON outbox (stream_id, seq)"
        " WHERE delivered_at IS NULL AND given_up_at IS NULL",
        """CREATE TABLE sweeps (
            id TEXT PRIMARY KEY,
            started_at INTEGER NOT NULL,
            status TEXT NOT NULL,
            revision INTEGER NOT NULL,
            body BLOB NOT NULL
        )""",
        "CREATE INDEX sweeps_started ON sweeps (started_at, id)",
        "CREATE INDEX sweeps_status ON sweeps (status, started_at, id)",
    ),
    (
        # Who pushes a stream now: one deliverer per stream across processes, so a SET is
        # pushed by one of them and the stream's order holds. ``until``: µs since the epoch.
        """CREATE TABLE delivery_leases (
            stream_id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            until INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
    (
        # Agents: the user session an agent session acts for (set once, at its start), and
        # the approvals agents wait for.
        "ALTER TABLE sessions ADD COLUMN parent TEXT",
        "CREATE INDEX sessions_parent ON sessions (parent) WHERE parent IS NOT NULL",
        """CREATE TABLE approvals (
            id TEXT PRIMARY KEY,
            challenge_id TEXT NOT NULL,
            method TEXT NOT NULL,
            user_id TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            revision INTEGER NOT NULL,
            body BLOB NOT NULL,
            UNIQUE (challenge_id, method)
        )""",
        "CREATE INDEX approvals_user ON approvals (user_id, created_at, id)",
    ),
    (
        # The address a session's subject properties carry (lowercased, set at its start):
        # events about an email address find every session it names, however many there are.
        "ALTER TABLE sessions ADD COLUMN email TEXT",
        "UPDATE sessions SET email = lower(json_extract(CAST(body AS TEXT),"
        " '$.subject_properties.email')) WHERE json_valid(CAST(body AS TEXT))"
        " AND json_type(CAST(body AS TEXT), '$.subject_properties.email') = 'text'",
        "CREATE INDEX sessions_email ON sessions (email, id) WHERE email IS NOT NULL",
    ),
    (
        # Node heartbeats: each node's clock and the store's, read in the same write
        # (µs since the epoch), so a node whose clock is off refuses to decide.
        """CREATE TABLE heartbeats (
            node TEXT PRIMARY KEY,
            clock INTEGER NOT NULL,
            store_at INTEGER NOT NULL
        ) WITHOUT ROWID""",
    ),
)

#: The schema version this code writes (``PRAGMA user_version``).
SCHEMA_VERSION = len(_MIGRATIONS)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: A session replaced at the revision it was read (optimistic concurrency).
_UPDATE_SESSION = (
    "UPDATE sessions SET handle = ?, app = ?, subject_id = ?, status = ?, started_at = ?,"
    " revision = ?, body = ? WHERE id = ? AND revision = ?"
)
_MICROSECOND = timedelta(microseconds=1)
#: How much longer than decision records approvals are kept (the longest one may wait).
_APPROVALS_OUTLIVE = timedelta(days=1)


def _micros(at: datetime) -> int:
    """Exact microseconds since the epoch of an aware datetime (the indexed time columns)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise StoreError(f"naive datetime `{at.isoformat()}`: the store takes aware UTC times")
    return (at - _EPOCH) // _MICROSECOND


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _aware(*times: datetime | None) -> None:
    """Refuse a record with a naive time (StoreError), as `_micros` does for indexed ones."""
    for at in times:
        if at is not None:
            _micros(at)


class _VersionHead(msgspec.Struct, frozen=True, kw_only=True):
    """The part of a stored PolicyVersion that `list_versions` needs (files are skipped)."""

    id: str
    author: str
    created_at: datetime
    comment: str = ""


_encode = msgspec.json.Encoder().encode
_KINDS = (
    Session, PolicyVersion, _VersionHead, DecisionRecord, App, AdminCredential, Challenge,
    SubjectSeen, Subject, Authenticator, Failures, ReceivedEvent, Stream, StreamSubject, SweepRun,
    Approval,
)  # fmt: skip
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {
    kind: msgspec.json.Decoder(kind) for kind in _KINDS
}


def _read_only(error: sqlite3.Error) -> bool:
    """Whether SQLite refused a write because the file (or its directory) is read-only to it."""
    return (getattr(error, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_READONLY


def _decode(kind: type[_T], body: bytes) -> _T:
    try:
        value: _T = _decoders[kind].decode(body)
    except msgspec.DecodeError as error:
        raise CorruptError(f"corrupt {kind.__name__.lower()} record: {error}") from error
    return value


class SqliteStore:
    """`juncture.store.protocols.Store` over one SQLite file, safe to share between threads.

    Opening creates or migrates the schema (``PRAGMA user_version``). Raises StoreError when
    the file is not a database or was written by a newer schema.
    """

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self._busy_ms = max(0, int(busy_timeout * 1000))
        self._busy_again_ms = min(self._busy_ms, int(_BUSY_AGAIN * 1000))
        self._locked_out = False  # the last write found the lock held for the whole timeout
        self._reopen = False  # the writer found the file read-only: open it afresh next time
        self._closed = False
        self._write_lock = threading.Lock()
        self._readers: deque[sqlite3.Connection] = deque()
        if str(path) != ":memory:":
            # Password hashes and session handles: readable by the owner only. SQLite gives
            # the -wal and -shm files the database file's mode.
            try:
                touch_private(self.path)
            except OSError as error:
                raise StoreError(f"cannot open `{self.path}`: {error}") from error
        self._writer = self._connect()
        try:
            self._open()
        except BaseException:
            self._writer.close()
            raise

    # -- connections ----------------------------------------------------------------------
    def _connect(self, *, readonly: bool = False) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open `{self.path}`: {error}") from error
        try:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            if readonly:
                conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error as error:  # e.g. the file is not a database
            conn.close()
            raise StoreError(f"cannot open `{self.path}`: {error}") from error
        return conn

    def _open(self) -> None:
        conn = self._writer
        try:
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if mode != "wal":
                raise StoreError(f"`{self.path}` cannot use WAL journaling (got `{mode}`)")
            conn.execute("BEGIN IMMEDIATE")
            try:
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                if version > SCHEMA_VERSION:
                    raise StoreError(f"`{self.path}` has schema version {version}, newer than "
                                     f"the {SCHEMA_VERSION} this juncture knows")  # fmt: skip
                for number in range(version, SCHEMA_VERSION):
                    for statement in _MIGRATIONS[number]:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {number + 1}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise StoreError(f"cannot open `{self.path}`: {error}") from error

    def _acquire(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError("the store is closed")
        try:
            return self._readers.pop()
        except IndexError:
            return self._connect(readonly=True)

    def _release(self, conn: sqlite3.Connection) -> None:
        self._readers.append(conn)
        if self._closed:  # close() ran meanwhile: it may have missed this one
            self._drain()

    def _drain(self) -> None:
        while True:
            try:
                conn = self._readers.pop()
            except IndexError:
                return
            conn.close()

    def _one(self, sql: str, params: Sequence[object]) -> Any:
        conn = self._acquire()
        try:
            return conn.execute(sql, params).fetchone()
        except sqlite3.Error as error:
            raise StoreError(f"read failed: {error}") from error
        finally:
            self._release(conn)

    def _all(self, sql: str, params: Sequence[object]) -> list[Any]:
        conn = self._acquire()
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise StoreError(f"read failed: {error}") from error
        finally:
            self._release(conn)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction, committed on exit, rolled back on any error."""
        with self._write_lock:
            if self._closed:
                raise StoreError("the store is closed")
            if self._reopen:  # a file opened read-only stays so (for every connection of this
                # process while one holds it open): all closed, the mode may be back
                self._writer.close()
                self._drain()
                self._writer = self._connect()  # StoreError while it is still read-only
                self._reopen = self._locked_out = False
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as error:
                self._reopen = _read_only(error)
                busy = error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
                if busy and not self._locked_out:
                    with suppress(sqlite3.Error):
                        conn.execute(f"PRAGMA busy_timeout = {self._busy_again_ms}")
                    self._locked_out = True
                raise StoreError(f"cannot start a write: {error}") from error
            except sqlite3.Error as error:
                raise StoreError(f"cannot start a write: {error}") from error
            try:
                if self._locked_out:  # the lock is ours again: wait the whole timeout next time
                    conn.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
                    self._locked_out = False
                yield conn
                conn.execute("COMMIT")
            except BaseException as error:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(error, sqlite3.Error):
                    self._reopen = _read_only(error)
                if isinstance(error, sqlite3.IntegrityError):
                    raise ConflictError(f"conflict: {error}") from error
                if isinstance(error, sqlite3.Error):
                    raise StoreError(f"write failed: {error}") from error
                raise

    def check_writable(self) -> None:
        """Try a write that changes nothing (rolled back): raises StoreError when writes fail
        (a read-only file, directory or file system: SQLite then opens the file read-only)."""
        with self._write_lock:
            if self._closed:
                raise StoreError("the store is closed")
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    (version,) = conn.execute("PRAGMA user_version").fetchone()
                    conn.execute(f"PRAGMA user_version = {int(version)}")
                finally:
                    conn.execute("ROLLBACK")
            except sqlite3.Error as error:
                raise StoreError(f"cannot write: {error}") from error

    def close(self) -> None:
        """Close every connection. Idempotent; later calls raise StoreError."""
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            self._writer.close()
        self._drain()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- sessions -------------------------------------------------------------------------
    def create_session(self, session: Session) -> None:
        """Insert a new session. Raises ConflictError when its id or handle is taken."""
        parent = session.delegation.session_id if session.delegation is not None else None
        email = session.subject_properties.get("email")
        row = (session.id, session.handle, session.app, session.subject_id, session.status,
               _micros(session.started_at), session.revision, parent,
               email.lower() if isinstance(email, str) else None, _encode(session))  # fmt: skip
        with self._transaction() as conn:
            conn.execute("INSERT INTO sessions (id, handle, app, subject_id, status, started_at,"
                         " revision, parent, email, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         row)  # fmt: skip

    def get_session(self, session_id: str) -> Session | None:
        row = self._one("SELECT body FROM sessions WHERE id = ?", (session_id,))
        return None if row is None else _decode(Session, row[0])

    def delete_session(self, session_id: str) -> bool:
        with self._transaction() as conn:
            return conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount > 0

    def update_session(self, session: Session, *, expected_revision: int) -> Session:
        """Replace the session if its stored revision is ``expected_revision``.

        Returns the stored session (revision ``expected_revision + 1``). Raises NotFound when
        absent, ConflictError when the revision moved on or the new handle is taken.
        """
        stored = msgspec.structs.replace(session, revision=expected_revision + 1)
        row = (stored.handle, stored.app, stored.subject_id, stored.status,
               _micros(stored.started_at), stored.revision, _encode(stored), stored.id,
               expected_revision)  # fmt: skip
        with self._transaction() as conn:
            changed = conn.execute(_UPDATE_SESSION, row).rowcount
            if not changed:
                _missed(conn, "sessions", "session", session.id, expected_revision)
        return stored

    def update_sessions(self, sessions: Sequence[Session]) -> list[Session]:
        """Replace many sessions in one transaction, each only if its stored revision is still
        its ``revision`` (a session that changed meanwhile, or is gone, is skipped). Returns
        those stored (at revision + 1)."""
        stored = [msgspec.structs.replace(s, revision=s.revision + 1) for s in sessions]
        done: list[Session] = []
        with self._transaction() as conn:
            for s in stored:
                changed = conn.execute(
                    _UPDATE_SESSION,
                    (s.handle, s.app, s.subject_id, s.status, _micros(s.started_at), s.revision,
                     _encode(s), s.id, s.revision - 1),
                ).rowcount  # fmt: skip
                if changed:
                    done.append(s)
        return done

    # -- what was observed of subjects --------------------------------------------------------
    def get_subject_seen(self, subject_type: str, subject_id: str) -> SubjectSeen | None:
        row = self._one("SELECT body FROM subjects_seen WHERE subject_type = ? AND subject_id = ?",
                        (subject_type, subject_id))  # fmt: skip
        return None if row is None else _decode(SubjectSeen, row[0])

    def put_subject_seen(self, seen: SubjectSeen, *, expected_revision: int) -> SubjectSeen:
        """Insert (``expected_revision`` 0) or replace at that revision; ConflictError if not."""
        stored = msgspec.structs.replace(seen, revision=expected_revision + 1)
        key = (seen.subject_type, seen.subject_id)
        with self._transaction() as conn:
            if expected_revision == 0:
                changed = conn.execute(
                    "INSERT INTO subjects_seen (subject_type, subject_id, revision, body)"
                    " VALUES (?, ?, 1, ?) ON CONFLICT DO NOTHING", (*key, _encode(stored)),
                ).rowcount  # fmt: skip
            else:
                changed = conn.execute(
                    "UPDATE subjects_seen SET revision = ?, body = ? WHERE subject_type = ?"
                    " AND subject_id = ? AND revision = ?",
                    (stored.revision, _encode(stored), *key, expected_revision),
                ).rowcount  # fmt: skip
            if not changed:
                raise ConflictError(f"what was seen of `{seen.subject_id}` changed meanwhile")
        return stored

    def list_sessions(
        self,
        *,
        app: str | None = None,
        subject_id: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> Sequence[Session]:
        """Sessions matching every filter given, most recently started first."""
        clauses, params = _filters(("app", app), ("subject_id", subject_id), ("status", status))
        rows = self._all(f"SELECT body FROM sessions{_where(clauses)}"  # noqa: S608 - our names
                         " ORDER BY started_at DESC, id DESC LIMIT ?",
                         (*params, max(limit, 0)))  # fmt: skip
        return [_decode(Session, body) for (body,) in rows]

    def count_active_sessions(self) -> int:
        count: int = self._one("SELECT count(*) FROM sessions WHERE status = 'active'", ())[0]
        return count

    def sessions_by_email(self, email: str, *, limit: int = 10_000) -> list[Session]:
        """The active sessions whose subject properties carry this address (any case)."""
        rows = self._all("SELECT body FROM sessions WHERE email = ? AND status = 'active'"
                         " ORDER BY id LIMIT ?", (email.lower(), max(limit, 0)))  # fmt: skip
        return [_decode(Session, body) for (body,) in rows]

    def delegated_sessions(self, session_id: str) -> list[Session]:
        """The active sessions that act for this one (agents its user delegated to)."""
        rows = self._all("SELECT body FROM sessions WHERE parent = ? AND status = 'active'"
                         " ORDER BY id", (session_id,))  # fmt: skip
        return [_decode(Session, body) for (body,) in rows]

    def get_sessions(self, session_ids: Sequence[str]) -> dict[str, Session]:
        """The stored sessions of these ids, by id (one query: the ids go in as one JSON
        array, whatever their number); an id with no session is left out."""
        if not session_ids:
            return {}
        rows = self._all("SELECT id, body FROM sessions WHERE id IN"
                         " (SELECT value FROM json_each(?))",
                         (_json_list(session_ids),))  # fmt: skip
        return {session_id: _decode(Session, body) for session_id, body in rows}

    # -- policy versions ------------------------------------------------------------------
    def put_version(self, version: PolicyVersion) -> bool:
        row = (version.id, _micros(version.created_at), _encode(version))
        with self._transaction() as conn:
            inserted: int = conn.execute(
                "INSERT INTO versions (id, created_at, body) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING", row,
            ).rowcount  # fmt: skip
        return inserted == 1

    def get_version(self, version_id: str) -> PolicyVersion | None:
        row = self._one("SELECT body FROM versions WHERE id = ?", (version_id,))
        return None if row is None else _decode(PolicyVersion, row[0])

    def list_versions(self) -> Sequence[VersionInfo]:
        rows = self._all("SELECT body, active, activated_at, activated_by FROM versions"
                         " ORDER BY created_at DESC, seq DESC", ())  # fmt: skip
        infos = []
        for body, active, activated_at, activated_by in rows:
            head = _decode(_VersionHead, body)
            infos.append(VersionInfo(
                id=head.id, author=head.author, created_at=head.created_at, comment=head.comment,
                active=bool(active), activated_by=activated_by,
                activated_at=None if activated_at is None else _from_micros(activated_at),
            ))  # fmt: skip
        return infos

    def activate(self, version_id: str, *, by: str, at: datetime) -> None:
        when = _micros(at)
        with self._transaction() as conn:
            found = conn.execute("SELECT 1 FROM versions WHERE id = ?", (version_id,)).fetchone()
            if found is None:
                raise NotFound(f"no policy version `{version_id}`")
            conn.execute("UPDATE versions SET active = 0 WHERE active = 1")
            conn.execute("UPDATE versions SET active = 1, activated_at = ?, activated_by = ?"
                         " WHERE id = ?", (when, by, version_id))  # fmt: skip

    def active_version_id(self) -> str | None:
        row = self._one("SELECT id FROM versions WHERE active = 1", ())
        return None if row is None else str(row[0])

    def version_ids(self, prefix: str, *, limit: int = 2) -> list[str]:
        """The ids of stored versions that start with ``prefix`` (at most ``limit``)."""
        rows = self._all("SELECT id FROM versions WHERE substr(id, 1, ?) = ? ORDER BY id"
                         " LIMIT ?", (len(prefix), prefix, max(limit, 0)))  # fmt: skip
        return [str(row[0]) for row in rows]

    def usage_since(self, since: datetime) -> list[Usage]:
        """Decisions logged since ``since`` by app, subject type, journey and checkpoint; live
        sessions by app and subject type. One pass over the day's records (a publish asks)."""
        rows = self._all(
            "SELECT app, json_extract(CAST(body AS TEXT), '$.subject_type') AS st,"
            " json_extract(CAST(body AS TEXT), '$.decision.journey') AS journey,"
            " json_extract(CAST(body AS TEXT), '$.decision.checkpoint') AS checkpoint,"
            " count(*) FROM decisions WHERE at >= ? GROUP BY app, st, journey, checkpoint",
            (_micros(since),),
        )
        found = [
            Usage(app=app, subject_type=st, journey=journey, checkpoint=point, decisions=count)
            for app, st, journey, point, count in rows
        ]
        rows = self._all(
            "SELECT app, json_extract(CAST(body AS TEXT), '$.subject_type') AS st, count(*)"
            " FROM sessions WHERE status IN ('active', 'pending') GROUP BY app, st",
            (),
        )
        found += [Usage(app=app, subject_type=st, sessions=count) for app, st, count in rows]
        return found

    # -- decision log ---------------------------------------------------------------------
    def record(self, records: Sequence[DecisionRecord]) -> None:
        """Append records in one transaction; an id already logged is skipped (retry-safe)."""
        self.record_prepared([self.prepare_record(r) for r in records])

    def prepare_record(self, record: DecisionRecord) -> bytes:
        """A record encoded for `record_prepared`: done on the deciding thread, so the thread
        that writes the log later does almost no Python work (it holds the interpreter lock
        that the server needs for as little as possible)."""
        return _encode((record.id, _micros(record.at), record.app, record.subject_id,
                        record.session_id, record.action, record.outcome, record))  # fmt: skip

    def record_prepared(self, prepared: Sequence[bytes]) -> None:
        """Append prepared records in one transaction; an id already logged is skipped.

        The whole batch goes in as one statement over a JSON array: SQLite parses it with the
        interpreter lock released, rather than one step per row (as `executemany` would).
        """
        if not prepared:
            return
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO decisions (id, at, app, subject_id, session_id, action, outcome,"
                " body) SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3,"
                " value ->> 4, value ->> 5, value ->> 6, CAST(value -> 7 AS BLOB)"
                " FROM json_each(?) WHERE true ON CONFLICT (id) DO NOTHING",
                (b"[" + b",".join(prepared) + b"]",),
            )  # fmt: skip

    def count_decisions(self, subject_id: str, *, since: datetime) -> int:
        """How many decisions about ``subject_id`` were logged at or after ``since``."""
        count: int = self._one("SELECT count(*) FROM decisions WHERE subject_id = ? AND at >= ?",
                               (subject_id, _micros(since)))[0]  # fmt: skip
        return count

    def query(self, query: DecisionQuery) -> Sequence[DecisionRecord]:
        """Newest first (ties by id, descending), every filter applied, at most ``limit``.

        ``since`` is inclusive, ``until`` exclusive; ``before`` (a decision id) returns the
        records that sort after it. Raises NotFound when ``before`` names no logged decision.
        """
        clauses, params = _filters(
            ("app", query.app), ("subject_id", query.subject_id),
            ("session_id", query.session_id), ("action", query.action),
            ("outcome", query.outcome),
        )  # fmt: skip
        if query.since is not None:
            clauses.append("at >= ?")
            params.append(_micros(query.since))
        if query.until is not None:
            clauses.append("at < ?")
            params.append(_micros(query.until))
        if query.before is not None:
            row = self._one("SELECT at FROM decisions WHERE id = ?", (query.before,))
            if row is None:
                raise NotFound(f"no decision `{query.before}` to page from")
            clauses.append("(at, id) < (?, ?)")
            params.extend((row[0], query.before))
        rows = self._all(f"SELECT body FROM decisions{_where(clauses)}"  # noqa: S608 - our names
                         " ORDER BY at DESC, id DESC LIMIT ?",
                         (*params, max(query.limit, 0)))  # fmt: skip
        return [_decode(DecisionRecord, body) for (body,) in rows]

    def get_decision(self, decision_id: str) -> DecisionRecord | None:
        row = self._one("SELECT body FROM decisions WHERE id = ?", (decision_id,))
        return None if row is None else _decode(DecisionRecord, row[0])

    def purge_before(self, at: datetime) -> int:
        """Delete the decision records strictly older than ``at``; returns how many. Approvals
        made more than a day before ``at`` go too (none waits that long: they are records of
        answers by then)."""
        when = _micros(at)
        with self._transaction() as conn:
            deleted: int = conn.execute("DELETE FROM decisions WHERE at < ?", (when,)).rowcount
            conn.execute("DELETE FROM approvals WHERE created_at < ?",
                         (_micros(at - _APPROVALS_OUTLIVE),))  # fmt: skip
        return deleted

    # -- apps and admins ------------------------------------------------------------------
    def put_app(self, app: App) -> None:
        """Insert or replace an app and its keys.

        Raises ConflictError (and changes nothing) when a key prefix is held by another app
        or an admin, or appears twice in ``app.keys``.
        """
        body = _encode(app)
        with self._transaction() as conn:
            conn.execute("INSERT INTO apps (id, body) VALUES (?, ?)"
                         " ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                         (app.id, body))  # fmt: skip
            conn.execute("DELETE FROM key_prefixes WHERE app_id = ?", (app.id,))
            conn.executemany("INSERT INTO key_prefixes (prefix, app_id) VALUES (?, ?)",
                             [(key.prefix, app.id) for key in app.keys])  # fmt: skip

    def get_app(self, app_id: str) -> App | None:
        row = self._one("SELECT body FROM apps WHERE id = ?", (app_id,))
        return None if row is None else _decode(App, row[0])

    def find_app_by_key_prefix(self, prefix: str) -> App | None:
        row = self._one("SELECT apps.body FROM key_prefixes JOIN apps ON apps.id = app_id"
                        " WHERE prefix = ?", (prefix,))  # fmt: skip
        return None if row is None else _decode(App, row[0])

    def list_apps(self) -> Sequence[App]:
        """Every app, by id."""
        rows = self._all("SELECT body FROM apps ORDER BY id", ())
        return [_decode(App, body) for (body,) in rows]

    def put_admin(self, admin: AdminCredential) -> None:
        """Insert or replace an admin credential. Raises ConflictError when its key prefix is
        held by an app or another admin."""
        body = _encode(admin)
        with self._transaction() as conn:
            conn.execute("INSERT INTO admins (id, body) VALUES (?, ?)"
                         " ON CONFLICT (id) DO UPDATE SET body = excluded.body",
                         (admin.id, body))  # fmt: skip
            conn.execute("DELETE FROM key_prefixes WHERE admin_id = ?", (admin.id,))
            conn.execute("INSERT INTO key_prefixes (prefix, admin_id) VALUES (?, ?)",
                         (admin.key.prefix, admin.id))  # fmt: skip

    def find_admin_by_key_prefix(self, prefix: str) -> AdminCredential | None:
        row = self._one("SELECT admins.body FROM key_prefixes JOIN admins ON admins.id = admin_id"
                        " WHERE prefix = ?", (prefix,))  # fmt: skip
        return None if row is None else _decode(AdminCredential, row[0])

    def count_admins(self) -> int:
        count: int = self._one("SELECT count(*) FROM admins", ())[0]
        return count

    # -- challenges -----------------------------------------------------------------------
    def create_challenge(self, challenge: Challenge) -> None:
        """Insert a new challenge. Raises ConflictError when its id is taken."""
        row = (challenge.id, challenge.session_id, _micros(challenge.expires_at),
               _encode(challenge))  # fmt: skip
        with self._transaction() as conn:
            conn.execute("INSERT INTO challenges (id, session_id, expires_at, body)"
                         " VALUES (?, ?, ?, ?)", row)  # fmt: skip

    def get_challenge(self, challenge_id: str) -> Challenge | None:
        row = self._one("SELECT body FROM challenges WHERE id = ?", (challenge_id,))
        return None if row is None else _decode(Challenge, row[0])

    def spend_attempt(self, challenge_id: str, *, at: datetime) -> Challenge:
        """Use one attempt of a live challenge; returns it with ``attempts_left - 1``.

        Raises NotFound, or ConflictError when it is expired (``at >= expires_at``), consumed
        or out of attempts.
        """
        with self._transaction() as conn:
            challenge = _live_challenge(conn, challenge_id, at)
            if challenge.attempts_left <= 0:
                raise ConflictError(f"challenge `{challenge_id}` has no attempts left")
            spent = msgspec.structs.replace(challenge, attempts_left=challenge.attempts_left - 1)
            conn.execute("UPDATE challenges SET body = ? WHERE id = ?",
                         (_encode(spent), challenge_id))  # fmt: skip
        return spent

    def consume_challenge(self, challenge_id: str, *, at: datetime) -> Challenge:
        """Mark a live challenge used, exactly once; returns it with ``consumed_at = at``.

        Raises NotFound, or ConflictError when it is expired or already consumed. Attempts are
        not checked: the attempt that verified it was spent before.
        """
        with self._transaction() as conn:
            challenge = _live_challenge(conn, challenge_id, at)
            consumed = msgspec.structs.replace(challenge, consumed_at=at)
            conn.execute("UPDATE challenges SET body = ? WHERE id = ?",
                         (_encode(consumed), challenge_id))  # fmt: skip
        return consumed

    def set_challenge_state(
        self, challenge_id: str, method: str, state: bytes, *, at: datetime
    ) -> Challenge:
        """Keep a method's ceremony state on a live challenge, replacing that method's earlier
        state; returns the challenge with it.

        Raises NotFound, or ConflictError when it is expired (``at >= expires_at``) or
        consumed. Attempts are not checked.
        """
        _micros(at)
        with self._transaction() as conn:
            challenge = _live_challenge(conn, challenge_id, at)
            kept = msgspec.structs.replace(challenge, states={**challenge.states, method: state})
            conn.execute("UPDATE challenges SET body = ? WHERE id = ?",
                         (_encode(kept), challenge_id))  # fmt: skip
        return kept

    # -- the directory: subjects and their authenticators ---------------------------------
    def put_subject(self, subject: Subject, *, expected_revision: int) -> Subject:
        """Create (``expected_revision`` 0) or replace the subject at that revision.

        Returns it at revision ``expected_revision + 1``. Raises ConflictError when it exists
        already (creating) or its revision moved on, NotFound when replacing an absent one.
        """
        _aware(subject.created_at, subject.updated_at)
        stored = msgspec.structs.replace(subject, revision=expected_revision + 1)
        key = (subject.type, subject.id)
        with self._transaction() as conn:
            if expected_revision == 0:
                changed = conn.execute(
                    "INSERT INTO subjects (type, id, status, revision, body)"
                    " VALUES (?, ?, ?, 1, ?) ON CONFLICT DO NOTHING",
                    (*key, stored.status, _encode(stored)),
                ).rowcount  # fmt: skip
                if not changed:
                    raise ConflictError(f"subject `{subject.type}:{subject.id}` exists already")
            else:
                changed = conn.execute(
                    "UPDATE subjects SET status = ?, revision = ?, body = ?"
                    " WHERE type = ? AND id = ? AND revision = ?",
                    (stored.status, stored.revision, _encode(stored), *key, expected_revision),
                ).rowcount  # fmt: skip
            if not changed:
                found = conn.execute("SELECT revision FROM subjects WHERE type = ? AND id = ?",
                                     key).fetchone()  # fmt: skip
                if found is None:
                    raise NotFound(f"no subject `{subject.type}:{subject.id}`")
                raise ConflictError(f"subject `{subject.type}:{subject.id}` is at revision "
                                    f"{found[0]}, not {expected_revision}")  # fmt: skip
        return stored

    def get_subject(self, subject_type: str, subject_id: str) -> Subject | None:
        row = self._one("SELECT body FROM subjects WHERE type = ? AND id = ?",
                        (subject_type, subject_id))  # fmt: skip
        return None if row is None else _decode(Subject, row[0])

    def list_subjects(
        self,
        *,
        subject_type: str | None = None,
        status: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> Sequence[Subject]:
        """Subjects matching every filter given, by (type, id) ascending, at most ``limit``.

        ``after`` is the ``"{type}:{id}"`` of the last subject of the previous page (split at
        its first colon: a type has none); the page starts after it.
        """
        clauses, params = _filters(("type", subject_type), ("status", status))
        if after is not None:
            after_type, _, after_id = after.partition(":")
            if subject_type is None:
                clauses.append("(type, id) > (?, ?)")
                params.extend((after_type, after_id))
            elif subject_type == after_type:  # `id > ?`: an index range, unlike a row value
                clauses.append("id > ?")
                params.append(after_id)
            elif subject_type < after_type:
                return []
        rows = self._all(f"SELECT body FROM subjects{_where(clauses)}"  # noqa: S608 - our names
                         " ORDER BY type, id LIMIT ?", (*params, max(limit, 0)))  # fmt: skip
        return [_decode(Subject, body) for (body,) in rows]

    def create_authenticator(self, authenticator: Authenticator) -> Authenticator:
        """Insert a new authenticator at revision 1. Raises ConflictError when its id or its
        ``lookup`` is taken."""
        stored = msgspec.structs.replace(authenticator, revision=1)
        _aware(stored.confirmed_at, stored.last_used_at)
        row = (stored.id, stored.subject_type, stored.subject_id, _micros(stored.created_at),
               stored.lookup, _encode(stored))  # fmt: skip
        with self._transaction() as conn:
            conn.execute("INSERT INTO authenticators (id, subject_type, subject_id, created_at,"
                         " lookup, revision, body) VALUES (?, ?, ?, ?, ?, 1, ?)", row)  # fmt: skip
        return stored

    def get_authenticator(self, authenticator_id: str) -> Authenticator | None:
        row = self._one("SELECT body FROM authenticators WHERE id = ?", (authenticator_id,))
        return None if row is None else _decode(Authenticator, row[0])

    def find_authenticator(self, lookup: str) -> Authenticator | None:
        row = self._one("SELECT body FROM authenticators WHERE lookup = ?", (lookup,))
        return None if row is None else _decode(Authenticator, row[0])

    def list_authenticators(self, subject_type: str, subject_id: str) -> Sequence[Authenticator]:
        """The subject's authenticators, oldest first (``created_at``, then id)."""
        rows = self._all("SELECT body FROM authenticators WHERE subject_type = ?"
                         " AND subject_id = ? ORDER BY created_at, id",
                         (subject_type, subject_id))  # fmt: skip
        return [_decode(Authenticator, body) for (body,) in rows]

    def update_authenticator(
        self, authenticator: Authenticator, *, expected_revision: int
    ) -> Authenticator:
        """Replace the authenticator if its stored revision is ``expected_revision``.

        Returns it at revision ``expected_revision + 1``. Raises NotFound when absent,
        ConflictError when the revision moved on or the new ``lookup`` is taken.
        """
        stored = msgspec.structs.replace(authenticator, revision=expected_revision + 1)
        _aware(stored.confirmed_at, stored.last_used_at)
        row = (stored.subject_type, stored.subject_id, _micros(stored.created_at), stored.lookup,
               stored.revision, _encode(stored), stored.id, expected_revision)  # fmt: skip
        with self._transaction() as conn:
            changed = conn.execute(
                "UPDATE authenticators SET subject_type = ?, subject_id = ?, created_at = ?,"
                " lookup = ?, revision = ?, body = ? WHERE id = ? AND revision = ?", row,
            ).rowcount  # fmt: skip
            if not changed:
                _missed(conn, "authenticators", "authenticator", stored.id, expected_revision)
        return stored

    def delete_authenticator(self, authenticator_id: str) -> bool:
        """Delete an authenticator; True when it existed."""
        with self._transaction() as conn:
            deleted: int = conn.execute("DELETE FROM authenticators WHERE id = ?",
                                        (authenticator_id,)).rowcount  # fmt: skip
        return deleted == 1

    # -- failure counters -----------------------------------------------------------------
    def record_failure(
        self,
        subject_type: str,
        subject_id: str,
        counter: str,
        *,
        at: datetime,
        window: timedelta,
        lock_after: int,
        lock_for: timedelta,
        attempt: str | None = None,
    ) -> Failures:
        """Count one failure (read, count and write in one write transaction: concurrent
        calls queue, none is lost); returns the new state.

        The count restarts at 1 when the last failure is older than ``window``, else goes up
        by 1; from ``lock_after`` failures on, each sets ``locked_until = at + lock_for`` (a
        running lock is never shortened; ``lock_after < 1`` never locks). The reservation
        ``attempt`` is settled by the same write.
        """
        _micros(at)
        key = (subject_type, subject_id, counter)
        with self._transaction() as conn:
            before = _failures_row(conn, key)
            counted = _count_failure(before, key, at=at, window=window, lock_after=lock_after,
                                     lock_for=lock_for)  # fmt: skip
            if attempt is not None and attempt in counted.pending:
                pending = {k: v for k, v in counted.pending.items() if k != attempt}
                counted = msgspec.structs.replace(counted, pending=pending)
            _write_failures(conn, key, counted)
        return counted

    def reserve_attempt(
        self,
        subject_type: str,
        subject_id: str,
        counter: str,
        *,
        attempt: str,
        at: datetime,
        hold: timedelta,
        admit: Callable[[Failures | None], int | None],
    ) -> int | None:
        """Admit an attempt or refuse it: ``admit`` runs inside one ``BEGIN IMMEDIATE``
        transaction, so no other process's reservation or failure comes between its read
        and the reservation written (see the protocol)."""
        _micros(at)
        key = (subject_type, subject_id, counter)
        with self._transaction() as conn:
            before = _failures_row(conn, key)
            if before is not None and before.pending:
                live = {k: v for k, v in before.pending.items() if v >= at - hold}
                if len(live) != len(before.pending):
                    before = msgspec.structs.replace(before, pending=live)
            wait = admit(before)
            if wait is not None:
                return wait
            if before is None:
                before = Failures(subject_type=subject_type, subject_id=subject_id,
                                  counter=counter)  # fmt: skip
            reserved = msgspec.structs.replace(before, pending={**before.pending, attempt: at})
            _write_failures(conn, key, reserved)
        return None

    def release_attempt(
        self, subject_type: str, subject_id: str, counter: str, attempt: str
    ) -> None:
        """Drop a reservation without counting it; nothing happens when it is gone."""
        key = (subject_type, subject_id, counter)
        with self._transaction() as conn:
            before = _failures_row(conn, key)
            if before is None or attempt not in before.pending:
                return
            pending = {k: v for k, v in before.pending.items() if k != attempt}
            _write_failures(conn, key, msgspec.structs.replace(before, pending=pending))

    def get_failures(self, subject_type: str, subject_id: str, counter: str) -> Failures | None:
        row = self._one("SELECT body FROM failures WHERE subject_type = ? AND subject_id = ?"
                        " AND counter = ?", (subject_type, subject_id, counter))  # fmt: skip
        return None if row is None else _decode(Failures, row[0])

    def clear_failures(self, subject_type: str, subject_id: str, counter: str) -> None:
        """Forget the counter (after a success); nothing happens when there is none."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM failures WHERE subject_type = ? AND subject_id = ?"
                         " AND counter = ?", (subject_type, subject_id, counter))  # fmt: skip

    # -- node clocks ------------------------------------------------------------------------
    def beat(self, node: str, clock: datetime) -> Heartbeat:
        """Write the node's heartbeat with the host's clock as SQLite reads it in the same
        statement (``julianday('now')``: µs since the epoch, millisecond resolution); drop
        heartbeats more than a day old."""
        micros = _micros(clock)
        with self._transaction() as conn:
            (store_at,) = conn.execute(
                "INSERT INTO heartbeats (node, clock, store_at) VALUES (?, ?,"
                " CAST(round((julianday('now') - 2440587.5) * 86400000.0) * 1000 AS INTEGER))"
                " ON CONFLICT (node) DO UPDATE SET clock = excluded.clock,"
                " store_at = excluded.store_at RETURNING store_at", (node, micros),
            ).fetchone()  # fmt: skip
            conn.execute("DELETE FROM heartbeats WHERE store_at < ?",
                         (store_at - 86_400_000_000,))  # fmt: skip
        return Heartbeat(node=node, clock=clock, store_at=_from_micros(store_at))

    def heartbeats(self, *, within: timedelta) -> list[Heartbeat]:
        rows = self._all(
            "SELECT node, clock, store_at FROM heartbeats WHERE store_at >="
            " CAST(round((julianday('now') - 2440587.5) * 86400000.0) * 1000 AS INTEGER) - ?"
            " ORDER BY node", (within // _MICROSECOND,),
        )  # fmt: skip
        return [Heartbeat(node=node, clock=_from_micros(clock), store_at=_from_micros(at))
                for node, clock, at in rows]  # fmt: skip

    # -- Shared Signals: events received --------------------------------------------------
    def receive_event(self, event: ReceivedEvent) -> bool:
        """Keep a received SET (and the sessions it names) in one transaction; False, and
        nothing stored, when its (issuer, jti) is kept already."""
        row = _received_row(event)
        with self._transaction() as conn:
            inserted: int = conn.execute(
                "INSERT INTO received_events (issuer, jti, received_at, subject_id, body)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (issuer, jti) DO NOTHING", row,
            ).rowcount  # fmt: skip
            if inserted:
                _name_sessions(conn, event, row[2])
        return inserted == 1

    def update_received(self, event: ReceivedEvent) -> None:
        """Replace the stored record of (issuer, jti), the sessions it names included. Raises
        NotFound when there is none."""
        issuer, jti, received_at, subject_id, body = _received_row(event)
        with self._transaction() as conn:
            changed = conn.execute(
                "UPDATE received_events SET received_at = ?, subject_id = ?, body = ?"
                " WHERE issuer = ? AND jti = ?", (received_at, subject_id, body, issuer, jti),
            ).rowcount  # fmt: skip
            if not changed:
                raise NotFound(f"no received event `{jti}` of `{issuer}`")
            conn.execute("DELETE FROM received_sessions WHERE issuer = ? AND jti = ?",
                         (issuer, jti))  # fmt: skip
            _name_sessions(conn, event, received_at)

    def get_received(self, issuer: str, jti: str) -> ReceivedEvent | None:
        row = self._one("SELECT body FROM received_events WHERE issuer = ? AND jti = ?",
                        (issuer, jti))  # fmt: skip
        return None if row is None else _decode(ReceivedEvent, row[0])

    def list_received(
        self,
        *,
        subject_id: str | None = None,
        session_id: str | None = None,
        limit: int = 100,
    ) -> Sequence[ReceivedEvent]:
        """Newest first (received_at, then jti, then issuer, all descending), filtered.

        A session's events are found through ``received_sessions`` (walked first, in its
        index order: CROSS JOIN keeps SQLite from starting at the subject's events).
        """
        if session_id is None:
            clauses, params = _filters(("subject_id", subject_id))
            sql = (f"SELECT body FROM received_events{_where(clauses)}"  # noqa: S608 - our names
                   " ORDER BY received_at DESC, jti DESC, issuer DESC LIMIT ?")  # fmt: skip
        else:
            clauses, params = _filters(("r.session_id", session_id), ("e.subject_id", subject_id))
            sql = ("SELECT e.body FROM received_sessions AS r"  # noqa: S608 - our names
                   " CROSS JOIN received_events AS e ON e.issuer = r.issuer AND e.jti = r.jti"
                   f"{_where(clauses)}"
                   " ORDER BY r.received_at DESC, r.jti DESC, r.issuer DESC LIMIT ?")  # fmt: skip
        rows = self._all(sql, (*params, max(limit, 0)))
        return [_decode(ReceivedEvent, body) for (body,) in rows]

    def last_event_time(self, subject_key: str, signal: str) -> datetime | None:
        row = self._one("SELECT at FROM event_times WHERE subject_key = ? AND signal = ?",
                        (subject_key, signal))  # fmt: skip
        return None if row is None else _from_micros(row[0])

    def set_event_time(self, subject_key: str, signal: str, at: datetime) -> bool:
        """Record ``at`` for (subject_key, signal) if it is later than the stored time (one
        upsert: concurrent calls cannot both win with one time); True when it was."""
        row = (subject_key, signal, _micros(at))
        with self._transaction() as conn:
            changed: int = conn.execute(
                "INSERT INTO event_times (subject_key, signal, at) VALUES (?, ?, ?)"
                " ON CONFLICT (subject_key, signal) DO UPDATE SET at = excluded.at"
                " WHERE excluded.at > event_times.at", row,
            ).rowcount  # fmt: skip
        return changed == 1

    # -- Shared Signals: streams transmitted on, and their outbox -------------------------
    def put_stream(self, stream: Stream, *, expected_revision: int) -> Stream:
        """Create (``expected_revision`` 0) or replace the stream at that revision.

        Returns it at revision ``expected_revision + 1``. Raises ConflictError when it exists
        already (creating) or its revision moved on, NotFound when replacing an absent one.
        """
        _aware(stream.updated_at)
        stored = msgspec.structs.replace(stream, revision=expected_revision + 1)
        columns = (stored.app, _micros(stored.created_at), stored.delivery_method, stored.status,
                   stored.revision, _encode(stored))  # fmt: skip
        with self._transaction() as conn:
            if expected_revision == 0:
                changed = conn.execute(
                    "INSERT INTO streams (id, app, created_at, delivery_method, status, revision,"
                    " body) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (stored.id, *columns),
                ).rowcount  # fmt: skip
                if not changed:
                    raise ConflictError(f"stream `{stream.id}` exists already")
            else:
                changed = conn.execute(
                    "UPDATE streams SET app = ?, created_at = ?, delivery_method = ?, status = ?,"
                    " revision = ?, body = ? WHERE id = ? AND revision = ?",
                    (*columns, stored.id, expected_revision),
                ).rowcount  # fmt: skip
            if not changed:
                _missed(conn, "streams", "stream", stream.id, expected_revision)
        return stored

    def get_stream(self, stream_id: str) -> Stream | None:
        row = self._one("SELECT body FROM streams WHERE id = ?", (stream_id,))
        return None if row is None else _decode(Stream, row[0])

    def list_streams(self, *, app: str | None = None) -> Sequence[Stream]:
        """Every stream (of ``app`` when given), by created_at then id."""
        clauses, params = _filters(("app", app))
        rows = self._all(f"SELECT body FROM streams{_where(clauses)}"  # noqa: S608 - our names
                         " ORDER BY created_at, id", params)  # fmt: skip
        return [_decode(Stream, body) for (body,) in rows]

    def delete_stream(self, stream_id: str) -> bool:
        """Delete the stream, its subjects and its undelivered outbox items (given up ones
        too) in one transaction; True when it existed. Delivered items are kept."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM stream_subjects WHERE stream_id = ?", (stream_id,))
            conn.execute("DELETE FROM outbox WHERE stream_id = ? AND delivered_at IS NULL",
                         (stream_id,))  # fmt: skip
            deleted: int = conn.execute("DELETE FROM streams WHERE id = ?",
                                        (stream_id,)).rowcount  # fmt: skip
        return deleted == 1

    def add_stream_subject(self, subject: StreamSubject) -> None:
        """Add a subject to a stream; adding it again (the same canonical JSON, whatever its
        key order) changes nothing: the first stays. Raises NotFound for an unknown stream."""
        row = (subject.stream_id, _canonical(subject.subject), _micros(subject.added_at),
               _encode(subject))  # fmt: skip
        with self._transaction() as conn:
            found = conn.execute("SELECT 1 FROM streams WHERE id = ?",
                                 (subject.stream_id,)).fetchone()  # fmt: skip
            if found is None:
                raise NotFound(f"no stream `{subject.stream_id}`")
            conn.execute("INSERT INTO stream_subjects (stream_id, subject, added_at, body)"
                         " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING", row)  # fmt: skip

    def remove_stream_subject(self, stream_id: str, subject: dict[str, Any]) -> bool:
        """Remove a subject (matched by canonical JSON) from a stream; True when it was on it."""
        with self._transaction() as conn:
            deleted: int = conn.execute(
                "DELETE FROM stream_subjects WHERE stream_id = ? AND subject = ?",
                (stream_id, _canonical(subject)),
            ).rowcount  # fmt: skip
        return deleted == 1

    def list_stream_subjects(self, stream_id: str) -> Sequence[StreamSubject]:
        """The stream's subjects, by added_at then canonical JSON (none for an unknown one)."""
        rows = self._all("SELECT body FROM stream_subjects WHERE stream_id = ?"
                         " ORDER BY added_at, subject", (stream_id,))  # fmt: skip
        return [_decode(StreamSubject, body) for (body,) in rows]

    def enqueue(self, items: Sequence[OutboxItem]) -> Sequence[OutboxItem]:
        """Append items in one transaction; returns them with their seq (increasing, never
        reused). Raises ConflictError, storing none, when one's (stream_id, jti) is taken.

        The stream is not checked: an item of a stream that does not exist (deleted
        meanwhile) is kept but never due.
        """
        rows = [_outbox_row(item) for item in items]
        if not rows:
            return []
        stored = []
        with self._transaction() as conn:
            for item, row in zip(items, rows, strict=True):
                seq = conn.execute(
                    "INSERT INTO outbox (stream_id, jti, token, event_type, created_at,"
                    " next_attempt_at, attempts, delivered_at, last_error, given_up_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row,
                ).lastrowid  # fmt: skip
                assert seq is not None  # an INSERT of one row sets it
                stored.append(msgspec.structs.replace(item, seq=seq))
        return stored

    def due(self, *, now: datetime, limit: int = 100) -> Sequence[OutboxItem]:
        """Items to push now: undelivered, not given up, ``next_attempt_at <= now``, of
        enabled push streams; by seq.

        The streams are walked first (CROSS JOIN fixes the order), each one's items through
        the partial index of undelivered items: a paused stream's backlog is never read.
        """
        rows = self._all(
            f"SELECT {', '.join(f'o.{name}' for name in _OUTBOX_FIELDS)}"  # noqa: S608
            " FROM streams AS s"
            " CROSS JOIN outbox AS o ON o.stream_id = s.id"
            " WHERE s.status = 'enabled' AND s.delivery_method = ?"
            " AND o.delivered_at IS NULL AND o.given_up_at IS NULL AND o.next_attempt_at <= ?"
            " ORDER BY o.seq LIMIT ?", (PUSH, _micros(now), max(limit, 0)),
        )  # fmt: skip
        return [_outbox_item(row) for row in rows]

    def pending(self, stream_id: str, *, limit: int = 100) -> Sequence[OutboxItem]:
        """Undelivered, not given up items of one stream (what a poll returns), by seq."""
        rows = self._all(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE stream_id = ?"  # noqa: S608 - our names
            " AND delivered_at IS NULL AND given_up_at IS NULL ORDER BY seq LIMIT ?",
            (stream_id, max(limit, 0)),
        )  # fmt: skip
        return [_outbox_item(row) for row in rows]

    def mark_delivered(self, stream_id: str, jtis: Sequence[str], *, at: datetime) -> int:
        """Mark the stream's items of these jtis delivered at ``at``; how many were not yet
        (an unknown jti, or one delivered already, is not counted)."""
        when = _micros(at)
        if not jtis:
            return 0
        with self._transaction() as conn:
            changed: int = conn.execute(
                "UPDATE outbox SET delivered_at = ? WHERE stream_id = ? AND delivered_at IS NULL"
                " AND jti IN (SELECT value FROM json_each(?))",
                (when, stream_id, _json_list(jtis)),
            ).rowcount  # fmt: skip
        return changed

    def mark_failed(
        self, seq: int, *, at: datetime, error: str, next_attempt_at: datetime | None
    ) -> None:
        """Count a failed attempt and keep its error; retry at ``next_attempt_at``, or (None)
        give the item up (``given_up_at = at``, kept if it was given up before). Raises
        NotFound when there is no item ``seq``."""
        when = _micros(at)
        if next_attempt_at is None:
            sql = "given_up_at = coalesce(given_up_at, ?)"
            value = when
        else:
            sql = "next_attempt_at = ?"
            value = _micros(next_attempt_at)
        with self._transaction() as conn:
            changed = conn.execute(
                f"UPDATE outbox SET attempts = attempts + 1, last_error = ?, {sql}"  # noqa: S608
                " WHERE seq = ?", (error, value, seq),
            ).rowcount  # fmt: skip
            if not changed:
                raise NotFound(f"no outbox item {seq}")

    # -- approvals --------------------------------------------------------------------------
    def put_approval(self, approval: Approval, *, expected_revision: int) -> Approval:
        """Create (``expected_revision`` 0) or replace the approval at that revision.

        Returns it at revision ``expected_revision + 1``. Raises ConflictError when it exists
        already (creating: its id, or its challenge and method) or its revision moved on,
        NotFound when replacing an absent one.
        """
        _aware(approval.created_at, approval.expires_at, approval.answered_at,
               approval.consumed_at)  # fmt: skip
        stored = msgspec.structs.replace(approval, revision=expected_revision + 1)
        with self._transaction() as conn:
            if expected_revision == 0:
                changed = conn.execute(
                    "INSERT INTO approvals (id, challenge_id, method, user_id, status, created_at,"
                    " revision, body) VALUES (?, ?, ?, ?, ?, ?, 1, ?) ON CONFLICT DO NOTHING",
                    (stored.id, stored.challenge_id, stored.method, stored.user_id,
                     stored.status, _micros(stored.created_at), _encode(stored)),
                ).rowcount  # fmt: skip
                if not changed:
                    raise ConflictError(f"approval `{approval.id}` exists already")
                return stored
            changed = conn.execute(
                "UPDATE approvals SET status = ?, revision = ?, body = ? WHERE id = ?"
                " AND revision = ?",
                (stored.status, stored.revision, _encode(stored), stored.id, expected_revision),
            ).rowcount  # fmt: skip
            if not changed:
                _missed(conn, "approvals", "approval", approval.id, expected_revision)
        return stored

    def get_approval(self, approval_id: str) -> Approval | None:
        row = self._one("SELECT body FROM approvals WHERE id = ?", (approval_id,))
        return None if row is None else _decode(Approval, row[0])

    def find_approval(self, challenge_id: str, method: str) -> Approval | None:
        """The approval a challenge's method waits for."""
        row = self._one("SELECT body FROM approvals WHERE challenge_id = ? AND method = ?",
                        (challenge_id, method))  # fmt: skip
        return None if row is None else _decode(Approval, row[0])

    def list_approvals(
        self, user_id: str, *, status: str | None = None, limit: int = 100
    ) -> Sequence[Approval]:
        """The approvals asked of a user (of ``status`` when given), newest first."""
        clauses, params = _filters(("user_id", user_id), ("status", status))
        rows = self._all(f"SELECT body FROM approvals{_where(clauses)}"  # noqa: S608 - our names
                         " ORDER BY created_at DESC, id DESC LIMIT ?",
                         (*params, max(limit, 0)))  # fmt: skip
        return [_decode(Approval, body) for (body,) in rows]

    def lease_stream(self, stream_id: str, *, owner: str, now: datetime, until: datetime) -> bool:
        """Take the stream's delivery lease for ``owner`` until ``until``, or extend it: True
        when ``owner`` holds it now (it was free, expired at ``now``, or ``owner``'s already),
        False when another owner's lease runs past ``now``."""
        with self._transaction() as conn:
            changed: int = conn.execute(
                "INSERT INTO delivery_leases (stream_id, owner, until) VALUES (?, ?, ?)"
                " ON CONFLICT (stream_id) DO UPDATE SET owner = excluded.owner,"
                " until = excluded.until"
                " WHERE delivery_leases.owner = excluded.owner OR delivery_leases.until <= ?",
                (stream_id, owner, _micros(until), _micros(now)),
            ).rowcount  # fmt: skip
        return changed == 1

    def release_stream(self, stream_id: str, *, owner: str) -> bool:
        """Give the lease up (only ``owner``'s); True when it was held."""
        with self._transaction() as conn:
            deleted: int = conn.execute(
                "DELETE FROM delivery_leases WHERE stream_id = ? AND owner = ?", (stream_id, owner)
            ).rowcount
        return deleted == 1

    # -- sweeps ---------------------------------------------------------------------------
    def put_sweep(self, run: SweepRun, *, expected_revision: int) -> SweepRun:
        """Create (``expected_revision`` 0) or replace the run at that revision.

        Returns it at revision ``expected_revision + 1``. Raises ConflictError when it exists
        already (creating) or its revision moved on, NotFound when replacing an absent one.
        """
        _aware(run.updated_at, run.finished_at)
        stored = msgspec.structs.replace(run, revision=expected_revision + 1)
        columns = (_micros(stored.started_at), stored.status, stored.revision, _encode(stored))
        with self._transaction() as conn:
            if expected_revision == 0:
                changed = conn.execute(
                    "INSERT INTO sweeps (id, started_at, status, revision, body)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", (stored.id, *columns),
                ).rowcount  # fmt: skip
                if not changed:
                    raise ConflictError(f"sweep `{run.id}` exists already")
            else:
                changed = conn.execute(
                    "UPDATE sweeps SET started_at = ?, status = ?, revision = ?, body = ?"
                    " WHERE id = ? AND revision = ?", (*columns, stored.id, expected_revision),
                ).rowcount  # fmt: skip
            if not changed:
                _missed(conn, "sweeps", "sweep", run.id, expected_revision)
        return stored

    def get_sweep(self, sweep_id: str) -> SweepRun | None:
        row = self._one("SELECT body FROM sweeps WHERE id = ?", (sweep_id,))
        return None if row is None else _decode(SweepRun, row[0])

    def list_sweeps(self, *, status: str | None = None, limit: int = 20) -> Sequence[SweepRun]:
        """Newest first (started_at, then id, descending), of ``status`` when given."""
        clauses, params = _filters(("status", status))
        rows = self._all(f"SELECT body FROM sweeps{_where(clauses)}"  # noqa: S608 - our names
                         " ORDER BY started_at DESC, id DESC LIMIT ?",
                         (*params, max(limit, 0)))  # fmt: skip
        return [_decode(SweepRun, body) for (body,) in rows]

    def sessions_after(self, cursor: str | None, *, limit: int = 500) -> SessionPage:
        """Active sessions with id > cursor (None: from the start), by id, at most ``limit``.

        Walks the primary key from the cursor, the status checked on each row (``+status``
        keeps SQLite off the status index, which would sort every active session for a page).
        """
        after, params = ("", ()) if cursor is None else (" AND id > ?", (cursor,))
        rows = self._all(f"SELECT id, body FROM sessions WHERE +status = 'active'{after}"  # noqa: S608
                         " ORDER BY id LIMIT ?", (*params, max(limit, 0)))  # fmt: skip
        sessions: list[Session] = []
        corrupt: list[str] = []
        decode = _decoders[Session].decode
        for session_id, body in rows:
            try:
                sessions.append(decode(body))
            except msgspec.DecodeError:
                corrupt.append(session_id)
        return SessionPage(
            sessions=sessions,
            corrupt=corrupt,
            last=rows[-1][0] if rows else None,
            rows=len(rows),
        )


#: The SSF delivery methods (RFC 8935 push, RFC 8936 poll): only push streams are ever due.
PUSH = "urn:ietf:rfc:8935"

_OUTBOX_FIELDS = (
    "seq", "stream_id", "jti", "token", "event_type", "created_at", "next_attempt_at",
    "attempts", "delivered_at", "last_error", "given_up_at",
)  # fmt: skip
_OUTBOX_COLUMNS = ", ".join(_OUTBOX_FIELDS)


def _json_list(values: Sequence[str]) -> str:
    """Values as one JSON array, for ``json_each(?)`` (one parameter, whatever the count)."""
    return _encode(list(values)).decode()


def _canonical(subject: dict[str, Any]) -> str:
    """A subject identifier's canonical JSON: keys sorted at every depth, no whitespace."""
    return msgspec.json.encode(subject, order="sorted").decode()


def _received_row(event: ReceivedEvent) -> tuple[str, str, int, str | None, bytes]:
    _aware(event.event_time)
    return (event.issuer, event.jti, _micros(event.received_at), event.subject_id,
            _encode(event))  # fmt: skip


def _name_sessions(conn: sqlite3.Connection, event: ReceivedEvent, received_at: int) -> None:
    """Index the sessions a received event names (a repeated id once)."""
    conn.executemany(
        "INSERT INTO received_sessions (issuer, jti, session_id, received_at)"
        " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [(event.issuer, event.jti, session_id, received_at) for session_id in event.session_ids],
    )  # fmt: skip


def _optional_micros(at: datetime | None) -> int | None:
    return None if at is None else _micros(at)


def _optional_time(micros: int | None) -> datetime | None:
    return None if micros is None else _from_micros(micros)


def _outbox_row(item: OutboxItem) -> tuple[object, ...]:
    """The outbox columns of an item, after ``seq`` (which the store assigns)."""
    return (item.stream_id, item.jti, item.set, item.event_type, _micros(item.created_at),
            _micros(item.next_attempt_at), item.attempts, _optional_micros(item.delivered_at),
            item.last_error, _optional_micros(item.given_up_at))  # fmt: skip


def _outbox_item(row: Sequence[Any]) -> OutboxItem:
    """An item from its row (`_OUTBOX_FIELDS`, in order): outbox items are columns only, so
    marking one delivered or failed is one UPDATE, not a read and a rewrite."""
    (seq, stream_id, jti, token, event_type, created_at, next_attempt_at, attempts,
     delivered_at, last_error, given_up_at) = row  # fmt: skip
    return OutboxItem(
        stream_id=stream_id, jti=jti, set=token, event_type=event_type,
        created_at=_from_micros(created_at), next_attempt_at=_from_micros(next_attempt_at),
        seq=seq, attempts=attempts, delivered_at=_optional_time(delivered_at),
        last_error=last_error, given_up_at=_optional_time(given_up_at),
    )  # fmt: skip


def _failures_row(conn: sqlite3.Connection, key: tuple[str, str, str]) -> Failures | None:
    row = conn.execute("SELECT body FROM failures WHERE subject_type = ?"
                       " AND subject_id = ? AND counter = ?", key).fetchone()  # fmt: skip
    return None if row is None else _decode(Failures, row[0])


def _write_failures(conn: sqlite3.Connection, key: tuple[str, str, str], value: Failures) -> None:
    conn.execute("INSERT INTO failures (subject_type, subject_id, counter, body)"
                 " VALUES (?, ?, ?, ?) ON CONFLICT (subject_type, subject_id, counter)"
                 " DO UPDATE SET body = excluded.body", (*key, _encode(value)))  # fmt: skip


def _count_failure(
    before: Failures | None,
    key: tuple[str, str, str],
    *,
    at: datetime,
    window: timedelta,
    lock_after: int,
    lock_for: timedelta,
) -> Failures:
    """The counter after one more failure at ``at`` (see `SqliteStore.record_failure`)."""
    subject_type, subject_id, counter = key
    if before is None or before.last_at is None or at - before.last_at > window:
        count, first_at, last_at = 1, at, at
    else:
        count = before.count + 1
        first_at = before.first_at or at
        last_at = max(before.last_at, at)  # a late arrival does not move the window back
    running = None if before is None else before.locked_until
    locked_until = running if running is not None and running > at else None
    if lock_after >= 1 and count >= lock_after:
        locked_until = at + lock_for if locked_until is None else max(locked_until, at + lock_for)
    return Failures(subject_type=subject_type, subject_id=subject_id, counter=counter,
                    count=count, first_at=first_at, last_at=last_at,
                    locked_until=locked_until,
                    pending={} if before is None else before.pending)  # fmt: skip


def _live_challenge(conn: sqlite3.Connection, challenge_id: str, at: datetime) -> Challenge:
    row = conn.execute("SELECT body FROM challenges WHERE id = ?", (challenge_id,)).fetchone()
    if row is None:
        raise NotFound(f"no challenge `{challenge_id}`")
    challenge = _decode(Challenge, row[0])
    if challenge.consumed_at is not None:
        raise ConflictError(f"challenge `{challenge_id}` was already used")
    if at >= challenge.expires_at:
        raise ConflictError(f"challenge `{challenge_id}` has expired")
    return challenge


def _missed(
    conn: sqlite3.Connection, table: str, what: str, record_id: str, expected: int
) -> NoReturn:
    """An update at revision ``expected`` changed nothing: NotFound when the record is gone,
    else ConflictError naming the revision it is at."""
    found = conn.execute(f"SELECT revision FROM {table} WHERE id = ?",  # noqa: S608 - our names
                         (record_id,)).fetchone()  # fmt: skip
    if found is None:
        raise NotFound(f"no {what} `{record_id}`")
    raise ConflictError(f"{what} `{record_id}` is at revision {found[0]}, not {expected}")


def _filters(*pairs: tuple[str, str | None]) -> tuple[list[str], list[object]]:
    """``name = ?`` clauses and their values for the pairs whose value is given."""
    given = [(name, value) for name, value in pairs if value is not None]
    return [f"{name} = ?" for name, _ in given], [value for _, value in given]


def _where(clauses: list[str]) -> str:
    return " WHERE " + " AND ".join(clauses) if clauses else ""
