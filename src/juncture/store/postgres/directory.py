"""The directory: subjects and their authenticators."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from juncture.records import Authenticator, Subject
from juncture.store.postgres.connection import PostgresConnections
from juncture.store.postgres.rows import (
    decode,
    encode,
    filters,
    missed,
    require_aware,
    to_micros,
    where,
)
from juncture.store.protocols import ConflictError, NotFound


class PostgresDirectory(PostgresConnections):
    """`DirectoryStore` over the ``subjects`` and ``authenticators`` tables."""

    def put_subject(self, subject: Subject, *, expected_revision: int) -> Subject:
        """Create (``expected_revision`` 0) or replace the subject at that revision.

        Returns it at revision ``expected_revision + 1``. Raises ConflictError when it exists
        already (creating) or its revision moved on, NotFound when replacing an absent one.
        """
        require_aware(subject.created_at, subject.updated_at)
        stored = msgspec.structs.replace(subject, revision=expected_revision + 1)
        key = (subject.type, subject.id)
        with self._transaction() as conn:
            if expected_revision == 0:
                changed = conn.execute(
                    "INSERT INTO subjects (type, id, status, revision, body)"
                    " VALUES (%s, %s, %s, 1, %s) ON CONFLICT DO NOTHING",
                    (*key, stored.status, encode(stored)),
                ).rowcount  # fmt: skip
                if not changed:
                    raise ConflictError(f"subject `{subject.type}:{subject.id}` exists already")
            else:
                changed = conn.execute(
                    "UPDATE subjects SET status = %s, revision = %s, body = %s"
                    " WHERE type = %s AND id = %s AND revision = %s",
                    (stored.status, stored.revision, encode(stored), *key, expected_revision),
                ).rowcount  # fmt: skip
            if not changed:
                found = conn.execute("SELECT revision FROM subjects WHERE type = %s AND id = %s",
                                     key).fetchone()  # fmt: skip
                if found is None:
                    raise NotFound(f"no subject `{subject.type}:{subject.id}`")
                raise ConflictError(f"subject `{subject.type}:{subject.id}` is at revision "
                                    f"{found[0]}, not {expected_revision}")  # fmt: skip
        return stored

    def get_subject(self, subject_type: str, subject_id: str) -> Subject | None:
        row = self._one("SELECT body FROM subjects WHERE type = %s AND id = %s",
                        (subject_type, subject_id))  # fmt: skip
        return None if row is None else decode(Subject, row[0])

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
        clauses, params = filters(("type", subject_type), ("status", status))
        if after is not None:
            after_type, _, after_id = after.partition(":")
            if subject_type is None:
                clauses.append("(type, id) > (%s, %s)")
                params.extend((after_type, after_id))
            elif subject_type == after_type:  # `id > %s`: an index range, unlike a row value
                clauses.append("id > %s")
                params.append(after_id)
            elif subject_type < after_type:
                return []
        rows = self._all(f"SELECT body FROM subjects{where(clauses)}"  # noqa: S608 - our names
                         " ORDER BY type, id LIMIT %s", (*params, max(limit, 0)))  # fmt: skip
        return [decode(Subject, body) for (body,) in rows]

    def create_authenticator(self, authenticator: Authenticator) -> Authenticator:
        """Insert a new authenticator at revision 1. Raises ConflictError when its id or its
        ``lookup`` is taken."""
        stored = msgspec.structs.replace(authenticator, revision=1)
        require_aware(stored.confirmed_at, stored.last_used_at)
        row = (stored.id, stored.subject_type, stored.subject_id, to_micros(stored.created_at),
               stored.lookup, encode(stored))  # fmt: skip
        with self._transaction() as conn:
            conn.execute("INSERT INTO authenticators (id, subject_type, subject_id, created_at,"
                         " lookup, revision, body) VALUES (%s, %s, %s, %s, %s, 1, %s)",
                         row)  # fmt: skip
        return stored

    def get_authenticator(self, authenticator_id: str) -> Authenticator | None:
        row = self._one("SELECT body FROM authenticators WHERE id = %s", (authenticator_id,))
        return None if row is None else decode(Authenticator, row[0])

    def find_authenticator(self, lookup: str) -> Authenticator | None:
        row = self._one("SELECT body FROM authenticators WHERE lookup = %s", (lookup,))
        return None if row is None else decode(Authenticator, row[0])

    def list_authenticators(self, subject_type: str, subject_id: str) -> Sequence[Authenticator]:
        """The subject's authenticators, oldest first (``created_at``, then id)."""
        rows = self._all("SELECT body FROM authenticators WHERE subject_type = %s"
                         " AND subject_id = %s ORDER BY created_at, id",
                         (subject_type, subject_id))  # fmt: skip
        return [decode(Authenticator, body) for (body,) in rows]

    def update_authenticator(
        self, authenticator: Authenticator, *, expected_revision: int
    ) -> Authenticator:
        """Replace the authenticator if its stored revision is ``expected_revision``.

        Returns it at revision ``expected_revision + 1``. Raises NotFound when absent,
        ConflictError when the revision moved on or the new ``lookup`` is taken.
        """
        stored = msgspec.structs.replace(authenticator, revision=expected_revision + 1)
        require_aware(stored.confirmed_at, stored.last_used_at)
        row = (stored.subject_type, stored.subject_id, to_micros(stored.created_at), stored.lookup,
               stored.revision, encode(stored), stored.id, expected_revision)  # fmt: skip
        with self._transaction() as conn:
            changed = conn.execute(
                "UPDATE authenticators SET subject_type = %s, subject_id = %s, created_at = %s,"
                " lookup = %s, revision = %s, body = %s WHERE id = %s AND revision = %s", row,
            ).rowcount  # fmt: skip
            if not changed:
                missed(conn, "authenticators", "authenticator", stored.id, expected_revision)
        return stored

    def delete_authenticator(self, authenticator_id: str) -> bool:
        """Delete an authenticator; True when it existed."""
        with self._transaction() as conn:
            deleted: int = conn.execute("DELETE FROM authenticators WHERE id = %s",
                                        (authenticator_id,)).rowcount  # fmt: skip
        return deleted == 1
