"""Challenges: created, attempts spent, consumed once."""

from __future__ import annotations

import sqlite3
from datetime import datetime

import msgspec

from juncture.records import Challenge
from juncture.store.protocols import ConflictError, NotFound
from juncture.store.sqlite.connection import SqliteConnections
from juncture.store.sqlite.rows import decode, encode, to_micros


class SqliteChallenges(SqliteConnections):
    """`ChallengeStore` over the ``challenges`` table."""

    def create_challenge(self, challenge: Challenge) -> None:
        """Insert a new challenge. Raises ConflictError when its id is taken."""
        row = (challenge.id, challenge.session_id, to_micros(challenge.expires_at),
               encode(challenge))  # fmt: skip
        with self._transaction() as conn:
            conn.execute("INSERT INTO challenges (id, session_id, expires_at, body)"
                         " VALUES (?, ?, ?, ?)", row)  # fmt: skip

    def purge_abandoned(self, before: datetime, *, limit: int = 1000) -> tuple[int, int]:
        """Forget logins nobody finished: pending sessions started before ``before`` with no
        challenge expiring at or after it, then challenges expired before it (up to
        ``limit`` of each). Returns (sessions, challenges) deleted."""
        cut = to_micros(before)
        with self._transaction() as conn:
            sessions = conn.execute(
                "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE status ="
                " 'pending' AND started_at < ? AND id NOT IN (SELECT session_id FROM"
                " challenges WHERE expires_at >= ?) LIMIT ?)",
                (cut, cut, limit),
            ).rowcount
            challenges = conn.execute(
                "DELETE FROM challenges WHERE id IN (SELECT id FROM challenges"
                " WHERE expires_at < ? LIMIT ?)",
                (cut, limit),
            ).rowcount
        return sessions, challenges

    def get_challenge(self, challenge_id: str) -> Challenge | None:
        row = self._one("SELECT body FROM challenges WHERE id = ?", (challenge_id,))
        return None if row is None else decode(Challenge, row[0])

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
                         (encode(spent), challenge_id))  # fmt: skip
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
                         (encode(consumed), challenge_id))  # fmt: skip
        return consumed

    def set_challenge_state(
        self, challenge_id: str, method: str, state: bytes, *, at: datetime
    ) -> Challenge:
        """Keep a method's ceremony state on a live challenge, replacing that method's earlier
        state; returns the challenge with it.

        Raises NotFound, or ConflictError when it is expired (``at >= expires_at``) or
        consumed. Attempts are not checked.
        """
        to_micros(at)
        with self._transaction() as conn:
            challenge = _live_challenge(conn, challenge_id, at)
            kept = msgspec.structs.replace(challenge, states={**challenge.states, method: state})
            conn.execute("UPDATE challenges SET body = ? WHERE id = ?",
                         (encode(kept), challenge_id))  # fmt: skip
        return kept


def _live_challenge(conn: sqlite3.Connection, challenge_id: str, at: datetime) -> Challenge:
    row = conn.execute("SELECT body FROM challenges WHERE id = ?", (challenge_id,)).fetchone()
    if row is None:
        raise NotFound(f"no challenge `{challenge_id}`")
    challenge = decode(Challenge, row[0])
    if challenge.consumed_at is not None:
        raise ConflictError(f"challenge `{challenge_id}` was already used")
    if at >= challenge.expires_at:
        raise ConflictError(f"challenge `{challenge_id}` has expired")
    return challenge
