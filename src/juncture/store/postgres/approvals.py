"""Approvals: a challenge waiting on another party's answer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from juncture.records import Approval
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
from juncture.store.protocols import ConflictError


class PostgresApprovals(PostgresConnections):
    """`ApprovalStore` over the ``approvals`` table."""

    def put_approval(self, approval: Approval, *, expected_revision: int) -> Approval:
        """Create (``expected_revision`` 0) or replace the approval at that revision.

        Returns it at revision ``expected_revision + 1``. Raises ConflictError when it exists
        already (creating: its id, or its challenge and method) or its revision moved on,
        NotFound when replacing an absent one.
        """
        require_aware(approval.created_at, approval.expires_at, approval.answered_at,
               approval.consumed_at)  # fmt: skip
        stored = msgspec.structs.replace(approval, revision=expected_revision + 1)
        with self._transaction() as conn:
            if expected_revision == 0:
                changed = conn.execute(
                    "INSERT INTO approvals (id, challenge_id, method, user_id, status, created_at,"
                    " revision, body) VALUES (%s, %s, %s, %s, %s, %s, 1, %s)"
                    " ON CONFLICT DO NOTHING",
                    (stored.id, stored.challenge_id, stored.method, stored.user_id,
                     stored.status, to_micros(stored.created_at), encode(stored)),
                ).rowcount  # fmt: skip
                if not changed:
                    raise ConflictError(f"approval `{approval.id}` exists already")
                return stored
            changed = conn.execute(
                "UPDATE approvals SET status = %s, revision = %s, body = %s WHERE id = %s"
                " AND revision = %s",
                (stored.status, stored.revision, encode(stored), stored.id, expected_revision),
            ).rowcount  # fmt: skip
            if not changed:
                missed(conn, "approvals", "approval", approval.id, expected_revision)
        return stored

    def get_approval(self, approval_id: str) -> Approval | None:
        row = self._one("SELECT body FROM approvals WHERE id = %s", (approval_id,))
        return None if row is None else decode(Approval, row[0])

    def find_approval(self, challenge_id: str, method: str) -> Approval | None:
        """The approval a challenge's method waits for."""
        row = self._one("SELECT body FROM approvals WHERE challenge_id = %s AND method = %s",
                        (challenge_id, method))  # fmt: skip
        return None if row is None else decode(Approval, row[0])

    def list_approvals(
        self, user_id: str, *, status: str | None = None, limit: int = 100
    ) -> Sequence[Approval]:
        """The approvals asked of a user (of ``status`` when given), newest first."""
        clauses, params = filters(("user_id", user_id), ("status", status))
        rows = self._all(f"SELECT body FROM approvals{where(clauses)}"  # noqa: S608 - our names
                         " ORDER BY created_at DESC, id DESC LIMIT %s",
                         (*params, max(limit, 0)))  # fmt: skip
        return [decode(Approval, body) for (body,) in rows]

    def lease_stream(self, stream_id: str, *, owner: str, now: datetime, until: datetime) -> bool:
        """Take the stream's delivery lease for ``owner`` until ``until``, or extend it: True
        when ``owner`` holds it now (it was free, expired at ``now``, or ``owner``'s already),
        False when another owner's lease runs past ``now``."""
        with self._transaction() as conn:
            changed: int = conn.execute(
                "INSERT INTO delivery_leases (stream_id, owner, \"until\") VALUES (%s, %s, %s)"
                " ON CONFLICT (stream_id) DO UPDATE SET owner = excluded.owner,"
                " \"until\" = excluded.\"until\""
                " WHERE delivery_leases.owner = excluded.owner OR delivery_leases.\"until\" <= %s",
                (stream_id, owner, to_micros(until), to_micros(now)),
            ).rowcount  # fmt: skip
        return changed == 1

    def release_stream(self, stream_id: str, *, owner: str) -> bool:
        """Give the lease up (only ``owner``'s); True when it was held."""
        with self._transaction() as conn:
            deleted: int = conn.execute(
                "DELETE FROM delivery_leases WHERE stream_id = %s AND owner = %s",
                (stream_id, owner),
            ).rowcount
        return deleted == 1
