"""What changed in the SQLite file, for the caches of every process that has it open.

Triggers (schema version 9, `schema.py`) add a row to ``changes`` for every session, app key
or activation updated or deleted, in the writing transaction, whichever process wrote it. A
process's caches are trusted only after it has read every such row committed so far:
`ChangeLog.trusted` asks SQLite whether anything was committed since it last looked
(``PRAGMA data_version``, answered from memory), and if so reads the new rows and drops what
they name before saying yes. So a revocation committed by one worker process is in force at
the next decision of every other one, exactly, at the price of one pragma per cached read.
Rows are pruned by a trigger as new ones come; a process that finds the rows it had not read
pruned away drops everything. An error reading the log says no: the caches are bypassed.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from juncture.records import CacheState
from juncture.store.cache import OnChange
from juncture.store.protocols import StoreError

__all__ = ["ChangeLog"]


class ChangeLog:
    """The caches' feed over one read-only connection to the file (``connect`` opens it;
    `detach` closes it, and the next look opens it again and starts over)."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        on_change: OnChange,
        on_reset: Callable[[], None],
    ) -> None:
        self._connect = connect
        self._on_change = on_change
        self._on_reset = on_reset
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._version = self._seq = 0
        self._failed: str | None = None
        self._looked: ContextVar[list[bool] | None] = ContextVar("juncture_looked", default=None)
        with self._lock:
            try:
                self._attach()
            except sqlite3.Error as error:
                raise StoreError(f"cannot read the change log: {error}") from error

    def _attach(self) -> sqlite3.Connection:
        """A new connection: from the log's end, with nothing cached (changes may have been
        missed while there was none)."""
        conn = self._connect()
        try:
            (self._version,) = conn.execute("PRAGMA data_version").fetchone()
            (self._seq,) = conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()
        except BaseException:
            conn.close()
            raise
        self._on_reset()
        self._conn = conn
        return conn

    def detach(self) -> None:
        """Close the connection (the store reopens the file); the next look opens another."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextlib.contextmanager
    def looked_once(self) -> Iterator[None]:
        """Within this block (this task or thread), one look: the first `trusted` call's
        answer is every later one's. A block within another shares the outer one's look."""
        if self._looked.get() is not None:
            yield
            return
        token = self._looked.set([])
        try:
            yield
        finally:
            self._looked.reset(token)

    def trusted(self) -> bool:
        looked = self._looked.get()  # None outside a `looked_once` block
        if looked:
            return looked[0]
        answer = self._look()
        if looked is not None:
            looked.append(answer)
        return answer

    def _look(self) -> bool:
        with self._lock:
            try:
                conn = self._conn if self._conn is not None else self._attach()
                (version,) = conn.execute("PRAGMA data_version").fetchone()
                if version != self._version:
                    self._catch_up()
                    self._version = version
            except (sqlite3.Error, StoreError) as error:
                self._failed = str(error)
                return False
            self._failed = None
            return True

    def _catch_up(self) -> None:
        assert self._conn is not None
        rows = self._conn.execute(
            "SELECT seq, what, id FROM changes WHERE seq > ? ORDER BY seq", (self._seq,)
        ).fetchall()
        if not rows:
            return
        if rows[0][0] != self._seq + 1:  # pruned before this process read them
            self._on_reset()
        else:
            sessions = [key for _, what, key in rows if what == "session" and key is not None]
            if sessions:
                self._on_change("session", sessions)
            for what in {what for _, what, _ in rows if what != "session"}:
                self._on_change(what, None)
        self._seq = rows[-1][0]

    def state(self) -> CacheState:
        if self._failed is not None:
            return CacheState(state="bypassed", reason=f"cannot read the change log: "
                              f"{self._failed}: reading the file")  # fmt: skip
        return CacheState(state="live")

    def close(self) -> None:
        self.detach()
