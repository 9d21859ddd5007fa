"""The PostgreSQL connections every table shares: a pool, one connection per call.

Records are stored as msgspec JSON beside the columns that are queried, as in SQLite. Each
state-changing method is one transaction on a connection taken from the pool (safe to call
from any number of threads: the API runs requests in worker threads for a remote store);
a read is one autocommit statement. Single use and optimistic concurrency hold across nodes
because every such write is a conditional UPDATE (``WHERE revision = ...``) or reads its row
``FOR UPDATE`` first; PostgreSQL re-checks the condition against the committed row.

Every driver error surfaces as `StoreError` (a uniqueness violation as `ConflictError`)
without the driver's message: the API answers it as ``unavailable.store``, and the server's
own words (host names, users) stay in the server's log. A pool with no free connection
waits ``timeout`` seconds, then raises StoreError: a request never hangs on the database.
Nor on a database gone silent (a partition): every connection waits under the node's pulse of
the database (liveness.py), which cuts a call once nothing has answered for a few seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Self

import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict

from juncture.store.postgres.liveness import SILENCE, BoundedConnection, Heartbeat, Pulse
from juncture.store.postgres.schema import migrate
from juncture.store.protocols import ConflictError, StoreError
from juncture.waiting import check_may_wait

__all__ = ["PgConnection", "PostgresConnections", "store_error"]

log = logging.getLogger(__name__)
#: Seconds a statement may wait for a lock another client holds, and may run in all.
LOCK_TIMEOUT = 8.0
STATEMENT_TIMEOUT = 15.0

#: Milliseconds sent data (or a keepalive probe) may go unacknowledged before the
#: connection fails: a few retransmissions on a lossy link, never a slow query.
TCP_USER_TIMEOUT_MS = 5_000

#: A pooled connection (rows as tuples).
PgConnection = psycopg.Connection[tuple[Any, ...]]


def store_error(what: str, error: Exception) -> StoreError:
    """The store error for a driver error: ConflictError for an integrity violation, else
    StoreError naming what failed and the SQLSTATE only (never the server's message)."""
    if isinstance(error, psycopg.errors.IntegrityError):
        code = getattr(error, "sqlstate", None) or "integrity"
        return ConflictError(f"conflict: {what} ({code})")
    if isinstance(error, psycopg_pool.PoolTimeout):
        return StoreError(f"{what}: no database connection free in time")
    code = getattr(error, "sqlstate", None)
    log.warning("postgres: %s: %s", what, error)
    return StoreError(f"{what}: the database is unavailable" + (f" ({code})" if code else ""))


class PostgresConnections:
    """The pool that every table's methods share; opening creates or migrates the schema.

    ``url`` is a libpq connection string or ``postgresql://`` URL. ``timeout``: how long a
    call waits for a connection (seconds) before StoreError.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 16,
        timeout: float = 2.0,
        migrate_schema: bool = True,
        lock_timeout: float = LOCK_TIMEOUT,
        statement_timeout: float = STATEMENT_TIMEOUT,
    ) -> None:
        self.url = url
        self._closed = False
        self._checking = threading.Lock()  # held while the idle connections are checked
        connect_timeout = max(1, int(timeout + 0.999))
        # A call waits on the database until the pulse says it is gone (see liveness.py), or
        # at the most a while longer than any statement may run.
        self._pulse = Pulse(deadline=statement_timeout + SILENCE)
        #: What every connection is opened with (autocommit aside).
        self._options: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "options": _bounded(url, lock_timeout, statement_timeout),
            # A connection whose packets go unacknowledged (a partition on the node's own
            # link) fails within seconds, not when the operating system's TCP retries give
            # up: keepalive probes after 2 s idle, and the user timeout, which counts only
            # while sent data or probes go unacknowledged (the server's kernel acknowledges
            # at once, however long a statement runs), so a slow query never trips it.
            "keepalives": 1,
            "keepalives_idle": 2,
            "keepalives_interval": 1,
            "keepalives_count": 3,
            "tcp_user_timeout": TCP_USER_TIMEOUT_MS,
        }
        kwargs: dict[str, Any] = {"autocommit": True, **self._options}
        self._pool: psycopg_pool.ConnectionPool[BoundedConnection] = psycopg_pool.ConnectionPool(
            url,
            connection_class=BoundedConnection,
            configure=self._configure,
            min_size=1,
            max_size=max(1, pool_size),
            timeout=timeout,
            open=False,
            kwargs=kwargs,
            name="juncture",
        )
        try:
            self._pool.open(wait=True, timeout=max(timeout, connect_timeout + 0.5))
        except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
            self._pool.close(timeout=0)
            raise store_error("cannot open the store", error) from error
        except BaseException:
            self._pool.close(timeout=0)
            raise
        try:
            self.migrate(apply=migrate_schema)
        except BaseException:
            self._pool.close(timeout=0)
            raise
        self._heartbeat = Heartbeat(lambda: self._connect(url, kwargs), self._pulse)

    def _configure(self, conn: BoundedConnection) -> None:
        """Every connection waits on the database under the pulse."""
        conn.pulse = self._pulse

    def _connect(self, url: str, kwargs: dict[str, Any]) -> BoundedConnection:
        """A connection outside the pool, as the pool makes them (for the heartbeat)."""
        conn = BoundedConnection.connect(url, **kwargs)
        self._configure(conn)
        return conn

    # -- connections ----------------------------------------------------------------------
    @contextmanager
    def _connection(self) -> Iterator[PgConnection]:
        check_may_wait()  # on the event loop, a request goes to a thread first (waiting.py)
        if self._closed:
            raise StoreError("the store is closed")
        if self._pulse.silent():  # fail at once rather than wait on a database gone silent
            unheard = self._pulse.unheard_for()
            raise StoreError(f"no answer from the database for {unheard:.0f} s")
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
            if isinstance(error, psycopg.OperationalError):
                self._check_idle()
            raise store_error("database call failed", error) from error

    def _check_idle(self) -> None:
        """A connection failed (the server restarted, or is gone): check the idle ones in the
        background and replace the broken, so a restart costs about one failed call rather
        than one per pooled connection. In a thread: a check over a partitioned network may
        wait for TCP, and no caller must."""
        if self._closed or not self._checking.acquire(blocking=False):
            return

        def check() -> None:
            try:
                self._pool.check()
            except Exception as error:  # a closed pool, a server still gone
                log.info("postgres: checking idle connections: %s", error)
            finally:
                self._checking.release()

        threading.Thread(target=check, name="juncture-pg-check", daemon=True).start()

    def connect_options(self) -> dict[str, Any]:
        """What every connection of the pool is opened with (time limits, keepalives), for a
        connection of its own (the change listener's)."""
        return dict(self._options)

    def _one(self, sql: str, params: Sequence[object]) -> Any:
        with self._connection() as conn:
            return conn.execute(sql, params).fetchone()

    def _all(self, sql: str, params: Sequence[object]) -> list[Any]:
        with self._connection() as conn:
            return conn.execute(sql, params).fetchall()

    @contextmanager
    def _transaction(self) -> Iterator[PgConnection]:
        """One transaction, committed on exit, rolled back on any error."""
        with self._connection() as conn, conn.transaction():
            yield conn

    def migrate(self, *, apply: bool = True) -> int:
        """Bring the schema up to date (``apply``), or only read its version; returns the
        version found. Raises StoreError (a schema newer than this code knows included)."""
        with self._connection() as conn:
            return migrate(conn, apply=apply)

    def check_writable(self) -> None:
        """Raise StoreError when writes would fail: no server, or one that takes no writes (a
        standby, or read-only transactions by default). Nothing is written or locked: every
        node's health probe asks."""
        with self._connection() as conn:
            row = conn.execute(
                "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'"
            ).fetchone()
        if row is None or row[0]:
            raise StoreError("cannot write: the database takes no writes (a standby?)")

    def database_silent(self) -> bool:
        """Whether the database has gone unheard for the pulse's silence (calls fail at once
        meanwhile): nothing kept on this node (a cache) may answer for the database then."""
        return self._pulse.silent()

    def close(self) -> None:
        """Close the pool. Idempotent; later calls raise StoreError."""
        if self._closed:
            return
        self._closed = True
        self._heartbeat.stop()
        self._pool.close(timeout=1.0)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _bounded(url: str, lock_timeout: float, statement_timeout: float) -> str:
    """The URL's server ``options`` with the time limits every store statement runs under
    added: a statement waiting on another client's lock, or running away, ends with an error
    (503 `unavailable.store`) instead of holding its request."""
    given = str(conninfo_to_dict(url).get("options") or "")
    limits = (f"-c lock_timeout={int(lock_timeout * 1000)}"
              f" -c statement_timeout={int(statement_timeout * 1000)}")  # fmt: skip
    return f"{given} {limits}".strip()
