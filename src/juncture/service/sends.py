"""The send limit: how often a challenge's messages (an email code) may go to one subject.

Whoever can name a subject can ask for a code to be sent to it: the hosted login takes any
user name before anyone has proved anything. Without a limit, a script fills a person's
inbox. Each send is admitted first, on the subject's ``sends:<kind>`` counter of the store
(the lockout's counters, so one admission at a time across workers and nodes), then counted.
A send is refused when the last one (or one being admitted) is less than the method's
``gap`` ago, or when ``at_most`` sends in a row, each at most ``within`` after the one
before, locked the counter for ``within`` (and a second). A refused send changes nothing:
no code is drawn into the challenge, nothing is sent. A send whose delivery then fails
still counts (the message may have gone).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from juncture.methods.delivery import SendLimit
from juncture.records import Failures
from juncture.service.authn import ATTEMPT_HOLD, AuthnError
from juncture.service.ids import new_id
from juncture.store.protocols import Store


def _seconds(delta: timedelta) -> int:
    """Whole seconds to wait, at least 1."""
    return max(1, int(delta.total_seconds() + 0.999))


def wait_for(failures: Failures | None, limit: SendLimit, now: datetime) -> int | None:
    """Seconds until one more send may be admitted, or None to admit it now."""
    if failures is None:
        return None
    if failures.locked_until is not None and now < failures.locked_until:
        return _seconds(failures.locked_until - now)
    sent = [*failures.pending.values(), *([failures.last_at] if failures.last_at else [])]
    gap = timedelta(seconds=limit.gap)
    if sent and now - max(sent) < gap:
        return _seconds(max(sent) + gap - now)
    recent = failures.last_at is not None and now - failures.last_at <= timedelta(
        seconds=limit.within
    )
    # INVARIANT: sends being admitted count, so racing workers never pass `at_most`.
    if (failures.count if recent else 0) + len(failures.pending) >= limit.at_most:
        return 1
    return None


class Sends:
    """The send limit's counters over the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def admit(
        self, subject_type: str, subject_id: str, kind: str, limit: SendLimit, now: datetime
    ) -> str:
        """Admit one send to the subject; its id, to `count` or `release`.

        Raises AuthnError ``challenge.send_limited`` (429, with Retry-After).
        """
        attempt = new_id("snd")
        wait = self.store.reserve_attempt(
            subject_type,
            subject_id,
            f"sends:{kind}",
            attempt=attempt,
            at=now,
            hold=ATTEMPT_HOLD,
            admit=lambda failures: wait_for(failures, limit, now),
        )
        if wait is not None:
            raise AuthnError(
                "challenge.send_limited",
                "a code was sent to this account a moment ago, or too many were: wait before "
                "asking for another",
                429,
                retry_after=wait,
            )
        return attempt

    def count(
        self,
        subject_type: str,
        subject_id: str,
        kind: str,
        limit: SendLimit,
        now: datetime,
        attempt: str,
    ) -> None:
        """Count an admitted send (locking the counter once ``at_most`` are in a row)."""
        within = timedelta(seconds=limit.within)
        self.store.record_failure(
            subject_type,
            subject_id,
            f"sends:{kind}",
            at=now,
            window=within,
            lock_after=limit.at_most,
            # A second past the window: the first send after the lock is more than `within`
            # after the last one, so it starts a new count (at exactly `within` the store
            # would go on counting, and lock again at once).
            lock_for=within + timedelta(seconds=1),
            attempt=attempt,
        )

    def release(self, subject_type: str, subject_id: str, kind: str, attempt: str) -> None:
        """Give an admitted send back uncounted (nothing was drawn or sent)."""
        self.store.release_attempt(subject_type, subject_id, f"sends:{kind}", attempt)
