"""The PostgreSQL schema: its migrations, one list of statements per version, applied on
open under an advisory lock (nodes starting together migrate once).

The tables mirror the SQLite schema (`juncture.store.sqlite.schema`) at its latest version:
times are exact microseconds since the epoch (BIGINT), bodies msgspec JSON (BYTEA), and every
text column sorts bytewise (``COLLATE "C"``), as SQLite's do, so pages and orders agree on
both backends whatever the database's default collation.
"""

from __future__ import annotations

import psycopg

from juncture.store.protocols import StoreError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate", "schema_version"]

_T = 'TEXT COLLATE "C"'

#: The advisory lock key that migrations hold (any constant unlikely to collide: "junc").
MIGRATION_LOCK = 0x6A756E63

#: The channel on which the database says what changed (`changes.py` listens on it): a
#: payload is a table's short name and the ids of rows a statement changed, comma separated
#: (`NOTIFY_IDS` at most a payload: a statement that changed more sends several), or ``*``
#: when it changed more than `NOTIFY_ROWS` (or the ids are not told, as for apps).
CHANGES = "juncture_changes"
NOTIFY_IDS = 100
NOTIFY_ROWS = 10_000
#: PL/pgSQL: how many rows the statement changed (up to `NOTIFY_ROWS` + 1), and then its ids
#: in groups of `NOTIFY_IDS` (a payload stays far under PostgreSQL's 8000 bytes).
_COUNT_ROWS = "SELECT count(*) INTO n FROM (SELECT 1 FROM changed LIMIT 10001) AS c;"
_ID_GROUPS = ("SELECT string_agg(id, ',') FROM (SELECT id, row_number() OVER () - 1 AS r"
              " FROM changed) AS c GROUP BY r / 100")  # fmt: skip


def _notify_changed(table: str, what: str, *, ids: bool) -> tuple[str, ...]:
    """A function and the statement-level triggers that notify `CHANGES` of the rows of
    ``table`` that an UPDATE or DELETE changed, as ``what <ids>`` (its ``id`` column; without
    ``ids``: ``what *``). In the writing transaction: the notification is sent at its commit,
    never for one rolled back, and every write path is covered, ours or an operator's by hand.
    Inserts notify nothing: no node caches a row's absence."""
    function = f"juncture_notify_{table}"
    everything = f"PERFORM pg_notify('{CHANGES}', '{what} *');"
    if ids:
        body = _COUNT_ROWS + (
            f" IF n > {NOTIFY_ROWS} THEN {everything} ELSE FOR ids IN {_ID_GROUPS} LOOP"
            f" PERFORM pg_notify('{CHANGES}', '{what} ' || ids); END LOOP; END IF;"
        )
    else:
        body = everything
    statements = [
        f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" DECLARE n bigint; ids text; BEGIN {body} RETURN NULL; END $$",
    ]
    for event, rows in (("UPDATE", "NEW"), ("DELETE", "OLD")):
        statements.append(
            f"CREATE TRIGGER {table}_{event.lower()}_notify AFTER {event} ON {table}"
            f" REFERENCING {rows} TABLE AS changed FOR EACH STATEMENT"
            f" EXECUTE FUNCTION {function}()"
        )
    return tuple(statements)


#: One list of statements per schema version; version N is reached by running ``MIGRATIONS[N-1]``.
#: Released versions never change: a later schema appends a list.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        f"""CREATE TABLE sessions (
            id {_T} PRIMARY KEY,
            handle {_T} NOT NULL UNIQUE,
            app {_T} NOT NULL,
            subject_id {_T} NOT NULL,
            status {_T} NOT NULL,
            started_at BIGINT NOT NULL,
            revision BIGINT NOT NULL,
            parent {_T},
            email {_T},
            body BYTEA NOT NULL
        )""",
        "CREATE INDEX sessions_app ON sessions (app, started_at)",
        "CREATE INDEX sessions_subject ON sessions (subject_id, started_at)",
        "CREATE INDEX sessions_status ON sessions (status, started_at)",
        "CREATE INDEX sessions_parent ON sessions (parent) WHERE parent IS NOT NULL",
        "CREATE INDEX sessions_email ON sessions (email, id) WHERE email IS NOT NULL",
        f"""CREATE TABLE versions (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id {_T} NOT NULL UNIQUE,
            created_at BIGINT NOT NULL,
            active BOOLEAN NOT NULL DEFAULT false,
            activated_at BIGINT,
            activated_by {_T},
            body BYTEA NOT NULL
        )""",
        "CREATE INDEX versions_created ON versions (created_at, seq)",
        # INVARIANT: at most one active version (activate swaps it in one transaction).
        "CREATE UNIQUE INDEX versions_one_active ON versions (active) WHERE active",
        # The decision log is partitioned by day of `at` (see decisions.py): retention drops
        # whole days instead of deleting row by row under traffic. Records outside the days
        # made so far land in the default partition.
        f"""CREATE TABLE decisions (
            id {_T} NOT NULL,
            at BIGINT NOT NULL,
            app {_T},
            subject_id {_T},
            session_id {_T},
            action {_T} NOT NULL,
            outcome {_T} NOT NULL,
            body BYTEA NOT NULL,
            UNIQUE (id, at)
        ) PARTITION BY RANGE (at)""",
        "CREATE TABLE decisions_default PARTITION OF decisions DEFAULT",
        "CREATE INDEX decisions_id ON decisions (id)",
        "CREATE INDEX decisions_at ON decisions (at, id)",
        "CREATE INDEX decisions_app ON decisions (app, at, id)",
        "CREATE INDEX decisions_subject ON decisions (subject_id, at, id)",
        "CREATE INDEX decisions_session ON decisions (session_id, at, id)",
        "CREATE INDEX decisions_action ON decisions (action, at, id)",
        "CREATE INDEX decisions_outcome ON decisions (outcome, at, id)",
        f"CREATE TABLE apps (id {_T} PRIMARY KEY, body BYTEA NOT NULL)",
        f"CREATE TABLE admins (id {_T} PRIMARY KEY, body BYTEA NOT NULL)",
        # INVARIANT: a key prefix finds exactly one holder, an app or an admin.
        f"""CREATE TABLE key_prefixes (
            prefix {_T} PRIMARY KEY,
            app_id {_T} REFERENCES apps (id) ON DELETE CASCADE,
            admin_id {_T} REFERENCES admins (id) ON DELETE CASCADE,
            CHECK ((app_id IS NULL) <> (admin_id IS NULL))
        )""",
        "CREATE INDEX key_prefixes_app ON key_prefixes (app_id)",
        "CREATE INDEX key_prefixes_admin ON key_prefixes (admin_id)",
        f"""CREATE TABLE challenges (
            id {_T} PRIMARY KEY,
            session_id {_T} NOT NULL,
            expires_at BIGINT NOT NULL,
            body BYTEA NOT NULL
        )""",
        "CREATE INDEX challenges_expires ON challenges (expires_at)",
        f"""CREATE TABLE subjects_seen (
            subject_type {_T} NOT NULL,
            subject_id {_T} NOT NULL,
            revision BIGINT NOT NULL,
            body BYTEA NOT NULL,
            PRIMARY KEY (subject_type, subject_id)
        )""",
        f"""CREATE TABLE subjects (
            type {_T} NOT NULL,
            id {_T} NOT NULL,
            status {_T} NOT NULL,
            revision BIGINT NOT NULL,
            body BYTEA NOT NULL,
            PRIMARY KEY (type, id)
        )""",
        "CREATE INDEX subjects_status ON subjects (status, type, id)",
        # INVARIANT: a lookup key (a WebAuthn credential id) finds at most one authenticator.
        f"""CREATE TABLE authenticators (
            id {_T} PRIMARY KEY,
            subject_type {_T} NOT NULL,
            subject_id {_T} NOT NULL,
            created_at BIGINT NOT NULL,
            lookup {_T} UNIQUE,
            revision BIGINT NOT NULL,
            body BYTEA NOT NULL
        )""",
        "CREATE INDEX authenticators_subject"
        " ON authenticators (subject_type, subject_id, created_at, id)",
        f"""CREATE TABLE failures (
            subject_type {_T} NOT NULL,
            subject_id {_T} NOT NULL,
            counter {_T} NOT NULL,
            body BYTEA NOT NULL,
            PRIMARY KEY (subject_type, subject_id, counter)
        )""",
        # INVARIANT: a SET is kept once per (issuer, jti): the receiver's replay guard.
        f"""CREATE TABLE received_events (
            issuer {_T} NOT NULL,
            jti {_T} NOT NULL,
            received_at BIGINT NOT NULL,
            subject_id {_T},
            body BYTEA NOT NULL,
            PRIMARY KEY (issuer, jti)
        )""",
        "CREATE INDEX received_events_at ON received_events (received_at, jti, issuer)",
        "CREATE INDEX received_events_subject"
        " ON received_events (subject_id, received_at, jti, issuer)",
        f"""CREATE TABLE received_sessions (
            issuer {_T} NOT NULL,
            jti {_T} NOT NULL,
            session_id {_T} NOT NULL,
            received_at BIGINT NOT NULL,
            PRIMARY KEY (issuer, jti, session_id),
            FOREIGN KEY (issuer, jti) REFERENCES received_events (issuer, jti) ON DELETE CASCADE
        )""",
        "CREATE INDEX received_sessions_session"
        " ON received_sessions (session_id, received_at, jti, issuer)",
        f"""CREATE TABLE event_times (
            subject_key {_T} NOT NULL,
            signal {_T} NOT NULL,
            at BIGINT NOT NULL,
            PRIMARY KEY (subject_key, signal)
        )""",
        f"""CREATE TABLE streams (
            id {_T} PRIMARY KEY,
            app {_T} NOT NULL,
            created_at BIGINT NOT NULL,
            delivery_method {_T} NOT NULL,
            status {_T} NOT NULL,
            revision BIGINT NOT NULL,
            body BYTEA NOT NULL
        )""",
        "CREATE INDEX streams_created ON streams (created_at, id)",
        "CREATE INDEX streams_app ON streams (app, created_at, id)",
        # INVARIANT: a subject is on a stream once (keyed by its canonical JSON).
        f"""CREATE TABLE stream_subjects (
            stream_id {_T} NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
            subject {_T} NOT NULL,
            added_at BIGINT NOT NULL,
            body BYTEA NOT NULL,
            PRIMARY KEY (stream_id, subject)
        )""",
        "CREATE INDEX stream_subjects_added ON stream_subjects (stream_id, added_at, subject)",
        # INVARIANT: seq only grows and is never reused (an identity), even after deletes.
        f"""CREATE TABLE outbox (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            stream_id {_T} NOT NULL,
            jti {_T} NOT NULL,
            token {_T} NOT NULL,
            event_type {_T} NOT NULL,
            created_at BIGINT NOT NULL,
            next_attempt_at BIGINT NOT NULL,
            attempts BIGINT NOT NULL,
            delivered_at BIGINT,
            last_error {_T},
            given_up_at BIGINT,
            UNIQUE (stream_id, jti)
        )""",
        "CREATE INDEX outbox_due ON outbox (stream_id, next_attempt_at)"
        " WHERE delivered_at IS NULL AND given_up_at IS NULL",
        "CREATE INDEX outbox_pending ON outbox (stream_id, seq)"
        " WHERE delivered_at IS NULL AND given_up_at IS NULL",
        f"""CREATE TABLE sweeps (
            id {_T} PRIMARY KEY,
            started_at BIGINT NOT NULL,
            status {_T} NOT NULL,
            revision BIGINT NOT NULL,
            body BYTEA NOT NULL
        )""",
        "CREATE INDEX sweeps_started ON sweeps (started_at, id)",
        "CREATE INDEX sweeps_status ON sweeps (status, started_at, id)",
        # Who pushes a stream now: one deliverer per stream across nodes.
        f"""CREATE TABLE delivery_leases (
            stream_id {_T} PRIMARY KEY,
            owner {_T} NOT NULL,
            "until" BIGINT NOT NULL
        )""",
        f"""CREATE TABLE approvals (
            id {_T} PRIMARY KEY,
            challenge_id {_T} NOT NULL,
            method {_T} NOT NULL,
            user_id {_T} NOT NULL,
            status {_T} NOT NULL,
            created_at BIGINT NOT NULL,
            revision BIGINT NOT NULL,
            body BYTEA NOT NULL,
            UNIQUE (challenge_id, method)
        )""",
        "CREATE INDEX approvals_user ON approvals (user_id, created_at, id)",
        # Node heartbeats: each node's clock and the store's (µs since the epoch).
        f"""CREATE TABLE heartbeats (
            node {_T} PRIMARY KEY,
            clock BIGINT NOT NULL,
            store_at BIGINT NOT NULL
        )""",
    ),
    # 2: what changed is notified (`CHANGES`): nodes keep caches of what every decision reads
    # (a session, an app by its key, the active version) and drop an entry when it changes.
    (
        *_notify_changed("sessions", "session", ids=True),
        *_notify_changed("apps", "app", ids=False),
        *_notify_changed("key_prefixes", "app", ids=False),
        *_notify_changed("versions", "version", ids=False),
    ),
    # 3: the shadow version (service/shadow.py) and what it decided otherwise. Marking it
    # updates ``versions``, whose changes are notified already.
    (
        "ALTER TABLE versions ADD COLUMN shadow BOOLEAN NOT NULL DEFAULT false",
        "CREATE UNIQUE INDEX versions_one_shadow ON versions (shadow) WHERE shadow",
        f"""CREATE TABLE shadow_decisions (
            shadow_version {_T} NOT NULL,
            decision_id {_T} NOT NULL,
            at BIGINT NOT NULL,
            transition {_T} NOT NULL,
            body BYTEA NOT NULL,
            PRIMARY KEY (shadow_version, decision_id)
        )""",
        "CREATE INDEX shadow_decisions_at ON shadow_decisions (shadow_version, at, decision_id)",
        "CREATE INDEX shadow_decisions_purge ON shadow_decisions (at)",
    ),
    # 4: replay jobs, read by every node, one running at a time; each app's journey
    # bindings over time (apps stored before: their journeys since the epoch).
    (
        f"""CREATE TABLE replay_jobs (
            id {_T} PRIMARY KEY,
            started_at BIGINT NOT NULL,
            status {_T} NOT NULL,
            updated_at BIGINT NOT NULL,
            body BYTEA NOT NULL,
            report BYTEA
        )""",
        "CREATE UNIQUE INDEX replay_jobs_one_running ON replay_jobs (status)"
        " WHERE status = 'running'",
        "CREATE INDEX replay_jobs_started ON replay_jobs (started_at, id)",
        f"""CREATE TABLE app_bindings (
            seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            app {_T} NOT NULL,
            since BIGINT NOT NULL,
            journeys TEXT NOT NULL
        )""",
        "CREATE INDEX app_bindings_app ON app_bindings (app, since, seq)",
        "INSERT INTO app_bindings (app, since, journeys) SELECT id, 0,"
        " coalesce((convert_from(body, 'UTF8')::jsonb -> 'journeys')::text, '[]') FROM apps"
        " ORDER BY id",
    ),
)

#: The schema version this code writes (kept in the ``juncture_schema`` table).
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """The database's schema version (0: no Juncture schema yet)."""
    (exists,) = conn.execute("SELECT to_regclass('juncture_schema') IS NOT NULL").fetchone() or (
        False,
    )
    if not exists:
        return 0
    row = conn.execute("SELECT version FROM juncture_schema").fetchone()
    return 0 if row is None else int(row[0])  # type: ignore[call-overload]


def migrate(conn: psycopg.Connection[tuple[object, ...]], *, apply: bool = True) -> int:
    """Bring the schema to `SCHEMA_VERSION` under the migration lock (an autocommit
    connection; each version in its own transaction); returns the version found before.

    Raises StoreError when the database's schema is newer than this code knows. With
    ``apply`` False nothing changes (the lock is still taken: a migration running elsewhere
    is waited for).
    """
    conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        found = schema_version(conn)
        if found > SCHEMA_VERSION:
            raise StoreError(f"the database has schema version {found}, newer than the "
                             f"{SCHEMA_VERSION} this juncture knows")  # fmt: skip
        if not apply:
            return found
        for number in range(found, SCHEMA_VERSION):
            with conn.transaction():
                conn.execute("CREATE TABLE IF NOT EXISTS juncture_schema"
                             " (version INTEGER NOT NULL)")  # fmt: skip
                for statement in MIGRATIONS[number]:
                    conn.execute(statement)
                conn.execute("DELETE FROM juncture_schema")
                conn.execute("INSERT INTO juncture_schema (version) VALUES (%s)", (number + 1,))
        return found
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
