"""The lockout: the journey's ``lockout:`` counters of failed verifications, per subject.

A verification is admitted first (the lock checked and the attempt reserved in one store step,
so workers racing never check more guesses than the journey allows); then its failure is
counted, settling the reservation, or the attempt is given back uncounted when its input was
refused before any check said right or wrong. Which counter a method's failures count on is
its kind's (``password`` or ``second_factor``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from juncture.policy.plan import JourneyPlan, counter_for_kind
from juncture.service.authn import ATTEMPT_HOLD, AuthnError, admission
from juncture.service.ids import new_id
from juncture.store.protocols import Store


class Lockout:
    """The lockout counters over the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def _limits(journey: JourneyPlan, kind: str) -> tuple[str, Any]:
        counter = counter_for_kind(kind)
        return counter, journey.lockout[counter]

    def reserve(
        self, journey: JourneyPlan, subject_type: str, subject_id: str, kind: str, now: datetime
    ) -> str:
        """Admit one attempt; its id.

        Raises AuthnError ``auth.locked`` (429, with Retry-After).
        """
        counter, spec = self._limits(journey, kind)
        attempt = new_id("att")
        wait = self.store.reserve_attempt(
            subject_type,
            subject_id,
            counter,
            attempt=attempt,
            at=now,
            hold=ATTEMPT_HOLD,
            admit=lambda failures: admission(failures, now=now, spec=spec),
        )
        if wait is not None:
            raise AuthnError(
                "auth.locked",
                "too many failed verifications: try again later",
                429,
                retry_after=wait,
            )
        return attempt

    def release(
        self, journey: JourneyPlan, subject_type: str, subject_id: str, kind: str, attempt: str
    ) -> None:
        """Give an admitted attempt back uncounted."""
        counter, _ = self._limits(journey, kind)
        self.store.release_attempt(subject_type, subject_id, counter, attempt)

    def count_failure(
        self,
        journey: JourneyPlan,
        subject_type: str,
        subject_id: str,
        kind: str,
        now: datetime,
        attempt: str,
    ) -> None:
        """Count an admitted attempt's failure (locking the counter past the journey's limit)."""
        counter, spec = self._limits(journey, kind)
        self.store.record_failure(
            subject_type,
            subject_id,
            counter,
            at=now,
            window=timedelta(seconds=spec.within),
            lock_after=spec.after,
            lock_for=timedelta(seconds=spec.lock),
            attempt=attempt,
        )
