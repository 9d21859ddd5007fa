"""The failure counters' rules, shared by every store backend.

A backend reads a counter, applies one of these transitions and writes the result in one
transaction (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: under the counter's advisory lock); the
rules themselves live here once, so both backends count, lock and reserve the same way (the
store contract suite checks it on both).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec

from juncture.records import Failures

#: (subject type, subject id, counter name)
Key = tuple[str, str, str]


def counted(
    before: Failures | None,
    key: Key,
    *,
    at: datetime,
    window: timedelta,
    lock_after: int,
    lock_for: timedelta,
    attempt: str | None = None,
) -> Failures:
    """The counter after one more failure at ``at``, its reservation ``attempt`` settled.

    The count restarts at 1 when the last failure is older than ``window``, else goes up by 1;
    from ``lock_after`` failures on, each sets ``locked_until = at + lock_for`` (a running lock
    is never shortened; ``lock_after < 1`` never locks).
    """
    subject_type, subject_id, counter = key
    if before is None or before.last_at is None or at - before.last_at > window:
        count, first_at, last_at = 1, at, at
    else:
        count = before.count + 1
        first_at = before.first_at or at
        last_at = max(before.last_at, at)  # a late arrival does not move the window back
    running = None if before is None else before.locked_until
    locked_until = running if running is not None and running > at else None
    if lock_after >= 1 and count >= lock_after:
        locked_until = at + lock_for if locked_until is None else max(locked_until, at + lock_for)
    pending = {} if before is None else before.pending
    if attempt is not None and attempt in pending:
        pending = {k: v for k, v in pending.items() if k != attempt}
    return Failures(subject_type=subject_type, subject_id=subject_id, counter=counter,
                    count=count, first_at=first_at, last_at=last_at,
                    locked_until=locked_until, pending=pending)  # fmt: skip


def reserved(
    before: Failures | None,
    key: Key,
    *,
    attempt: str,
    at: datetime,
    hold: timedelta,
    admit: Callable[[Failures | None], int | None],
) -> tuple[int | None, Failures | None]:
    """(seconds to wait, None) when ``admit`` refuses the attempt, else (None, the counter
    with the attempt reserved). Reservations older than ``hold`` are let go first."""
    if before is not None and before.pending:
        live = {k: v for k, v in before.pending.items() if v >= at - hold}
        if len(live) != len(before.pending):
            before = msgspec.structs.replace(before, pending=live)
    wait = admit(before)
    if wait is not None:
        return wait, None
    if before is None:
        subject_type, subject_id, counter = key
        before = Failures(subject_type=subject_type, subject_id=subject_id, counter=counter)
    return None, msgspec.structs.replace(before, pending={**before.pending, attempt: at})


def released(before: Failures | None, attempt: str) -> Failures | None:
    """The counter without the reservation ``attempt``; None when there is nothing to change."""
    if before is None or attempt not in before.pending:
        return None
    pending = {k: v for k, v in before.pending.items() if k != attempt}
    return msgspec.structs.replace(before, pending=pending)
