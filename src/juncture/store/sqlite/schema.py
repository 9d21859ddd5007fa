"""The SQLite schema: its migrations, one list of statements per version."""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

#: One list of statements per schema version; version N is reached by running ``MIGRATIONS[N-1]``.
#: Released versions never change: a later schema appends a list (ALTER TABLE ..., new indexes).
MIGRATIONS: tuple[tuple[str, ...], ...] = (
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
    (
        # What changed, for the caches of every process on the file (sqlite/changes.py): a
        # row per session, app key or activation updated or deleted, written by triggers in
        # the writing transaction; the oldest are pruned as new ones come.
        """CREATE TABLE changes (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            what TEXT NOT NULL,
            id TEXT
        )""",
        "CREATE TRIGGER sessions_update_change AFTER UPDATE ON sessions BEGIN"
        " INSERT INTO changes (what, id) VALUES ('session', OLD.id); END",
        "CREATE TRIGGER sessions_delete_change AFTER DELETE ON sessions BEGIN"
        " INSERT INTO changes (what, id) VALUES ('session', OLD.id); END",
        "CREATE TRIGGER apps_update_change AFTER UPDATE ON apps BEGIN"
        " INSERT INTO changes (what, id) VALUES ('app', NULL); END",
        "CREATE TRIGGER apps_delete_change AFTER DELETE ON apps BEGIN"
        " INSERT INTO changes (what, id) VALUES ('app', NULL); END",
        "CREATE TRIGGER key_prefixes_update_change AFTER UPDATE ON key_prefixes BEGIN"
        " INSERT INTO changes (what, id) VALUES ('app', NULL); END",
        "CREATE TRIGGER key_prefixes_delete_change AFTER DELETE ON key_prefixes BEGIN"
        " INSERT INTO changes (what, id) VALUES ('app', NULL); END",
        "CREATE TRIGGER versions_update_change AFTER UPDATE ON versions BEGIN"
        " INSERT INTO changes (what, id) VALUES ('version', NULL); END",
        "CREATE TRIGGER versions_delete_change AFTER DELETE ON versions BEGIN"
        " INSERT INTO changes (what, id) VALUES ('version', NULL); END",
        "CREATE TRIGGER changes_pruned AFTER INSERT ON changes WHEN NEW.seq % 1000 = 0 BEGIN"
        " DELETE FROM changes WHERE seq <= NEW.seq - 10000; END",
    ),
    (
        # The shadow version (service/shadow.py): decided beside the active one, its answers
        # only recorded where they differ. Marking it updates ``versions``, which the caches
        # of every process follow already (``versions_update_change``).
        "ALTER TABLE versions ADD COLUMN shadow INTEGER NOT NULL DEFAULT 0"
        " CHECK (shadow IN (0, 1))",
        # INVARIANT: at most one shadow version.
        "CREATE UNIQUE INDEX versions_one_shadow ON versions (shadow) WHERE shadow = 1",
        """CREATE TABLE shadow_decisions (
            shadow_version TEXT NOT NULL,
            decision_id TEXT NOT NULL,
            at INTEGER NOT NULL,
            transition TEXT NOT NULL,
            body BLOB NOT NULL,
            PRIMARY KEY (shadow_version, decision_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX shadow_decisions_at ON shadow_decisions (shadow_version, at, decision_id)",
        "CREATE INDEX shadow_decisions_purge ON shadow_decisions (at)",
    ),
    (
        # Replay jobs (service/rehearsals.py), read by every node: the job without its report
        # in ``body``, the report apart (lists leave it out); ``updated_at`` is the running
        # node's heartbeat.
        """CREATE TABLE replay_jobs (
            id TEXT PRIMARY KEY,
            started_at INTEGER NOT NULL,
            status TEXT NOT NULL,
            updated_at INTEGER NOT NULL,
            body BLOB NOT NULL,
            report BLOB
        )""",
        # INVARIANT: one replay running at a time, whatever the node.
        "CREATE UNIQUE INDEX replay_jobs_one_running ON replay_jobs (status)"
        " WHERE status = 'running'",
        "CREATE INDEX replay_jobs_started ON replay_jobs (started_at, id)",
        # Each app's journey bindings over time (a row from each change on), for replay. An
        # app stored before holds its journeys since the epoch: they were set only when it
        # was made.
        """CREATE TABLE app_bindings (
            seq INTEGER PRIMARY KEY,
            app TEXT NOT NULL,
            since INTEGER NOT NULL,
            journeys TEXT NOT NULL
        )""",
        "CREATE INDEX app_bindings_app ON app_bindings (app, since, seq)",
        "INSERT INTO app_bindings (app, since, journeys) SELECT id, 0,"
        " coalesce(json_extract(CAST(body AS TEXT), '$.journeys'), '[]') FROM apps"
        " WHERE json_valid(CAST(body AS TEXT)) ORDER BY id",
    ),
)

#: The schema version this code writes (``PRAGMA user_version``).
SCHEMA_VERSION = len(MIGRATIONS)
