"""The SQLite connections every table shares: one writer, a pool of readers, one file.

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Self

from juncture.store.files import touch_private
from juncture.store.protocols import ConflictError, StoreError
from juncture.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["SqliteConnections"]

#: How long a write waits for another process's lock after one waited the whole busy timeout
#: in vain (seconds), until a write gets through again.
_BUSY_AGAIN = 0.1


def _read_only(error: sqlite3.Error) -> bool:
    """Whether SQLite refused a write because the file (or its directory) is read-only to it."""
    return (getattr(error, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_READONLY


class SqliteConnections:
    """The writer connection, the pool of readers and the write transaction that every
    table's methods share; opening creates or migrates the schema."""

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
                    for statement in MIGRATIONS[number]:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {number + 1}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise StoreError(f"cannot open `{self.path}`: {error}") from error

    def _close_others(self) -> None:
        """Close this store's other connections to the file (the caches' change log has one):
        a file opened read-only opens writable again only once every one is closed."""

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
                self._close_others()
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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
