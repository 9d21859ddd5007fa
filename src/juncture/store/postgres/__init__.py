"""The PostgreSQL backend: many Juncture nodes on one database (psycopg 3, psycopg-pool).

`PostgresStore` is composed of one class per concern, each the methods of one store Protocol
over its tables (as the SQLite backend is), all sharing the pool of `PostgresConnections`
(`connection.py`, which says how single use and optimistic concurrency hold across nodes).
The schema and its migrations are in `schema.py`.
"""

from __future__ import annotations

from juncture.store.postgres.approvals import PostgresApprovals
from juncture.store.postgres.apps import PostgresApps
from juncture.store.postgres.cached import PostgresCaches
from juncture.store.postgres.challenges import PostgresChallenges
from juncture.store.postgres.clocks import PostgresClocks
from juncture.store.postgres.decisions import PostgresDecisionLog
from juncture.store.postgres.directory import PostgresDirectory
from juncture.store.postgres.failures import PostgresFailures
from juncture.store.postgres.received import PostgresReceivedEvents
from juncture.store.postgres.replays import PostgresReplayJobs
from juncture.store.postgres.schema import SCHEMA_VERSION
from juncture.store.postgres.sessions import PostgresSessions
from juncture.store.postgres.shadow import PostgresShadowLog
from juncture.store.postgres.streams import PostgresStreams
from juncture.store.postgres.sweeps import PostgresSweeps
from juncture.store.postgres.versions import PostgresPolicyVersions

__all__ = ["SCHEMA_VERSION", "PostgresStore"]


class PostgresStore(
    PostgresCaches,
    PostgresSessions,
    PostgresPolicyVersions,
    PostgresApps,
    PostgresDecisionLog,
    PostgresShadowLog,
    PostgresChallenges,
    PostgresDirectory,
    PostgresFailures,
    PostgresClocks,
    PostgresReceivedEvents,
    PostgresStreams,
    PostgresApprovals,
    PostgresSweeps,
    PostgresReplayJobs,
):
    """`juncture.store.protocols.Store` over one PostgreSQL database, safe to share between
    threads and between nodes.

    Opening migrates the schema under an advisory lock (``migrate_schema=False``: only checks
    it is not newer). Raises StoreError when the server cannot be reached or its schema is
    newer than this code knows. A server's store calls `start_caches` (`cached.py`): the reads
    every decision makes are then served from this node's caches while every change is heard.
    """

    #: A database server: requests call it from worker threads (api/boundary.py says why).
    remote = True
