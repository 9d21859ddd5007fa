"""The SQLite backend: the embedded default, one file, standard library `sqlite3` only.

`SqliteStore` is composed of one class per concern, each the methods of one store Protocol
over its tables, all sharing the connections and write transaction of `SqliteConnections`
(`connection.py`, which says how writes are made durable and readers kept apart). The schema
and its migrations are in `schema.py`; how records become rows, in `rows.py`.
"""

from __future__ import annotations

from juncture.store.sqlite.approvals import SqliteApprovals
from juncture.store.sqlite.apps import SqliteApps
from juncture.store.sqlite.cached import SqliteCaches
from juncture.store.sqlite.challenges import SqliteChallenges
from juncture.store.sqlite.clocks import SqliteClocks
from juncture.store.sqlite.decisions import SqliteDecisionLog
from juncture.store.sqlite.directory import SqliteDirectory
from juncture.store.sqlite.failures import SqliteFailures
from juncture.store.sqlite.received import SqliteReceivedEvents
from juncture.store.sqlite.replays import SqliteReplayJobs
from juncture.store.sqlite.schema import SCHEMA_VERSION
from juncture.store.sqlite.sessions import SqliteSessions
from juncture.store.sqlite.shadow import SqliteShadowLog
from juncture.store.sqlite.streams import SqliteStreams
from juncture.store.sqlite.sweeps import SqliteSweeps
from juncture.store.sqlite.versions import SqlitePolicyVersions

__all__ = ["SCHEMA_VERSION", "SqliteStore"]


class SqliteStore(
    SqliteCaches,
    SqliteSessions,
    SqlitePolicyVersions,
    SqliteDecisionLog,
    SqliteShadowLog,
    SqliteApps,
    SqliteChallenges,
    SqliteDirectory,
    SqliteFailures,
    SqliteClocks,
    SqliteReceivedEvents,
    SqliteStreams,
    SqliteApprovals,
    SqliteSweeps,
    SqliteReplayJobs,
):
    """`juncture.store.protocols.Store` over one SQLite file, safe to share between threads.

    Opening creates or migrates the schema (``PRAGMA user_version``). Raises StoreError when
    the file is not a database or was written by a newer schema.
    """

    #: A local file: requests call it on the server's event loop (api/boundary.py says why).
    remote = False
