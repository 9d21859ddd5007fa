"""A recorded history on the shipped workforce journey (examples/journeys, version 1): what
`juncture replay` is shown and tested on (tests/cli/test_replay.py, docs/rehearse.md,
bench/replay.py).

Employees of the `expenses` app start sessions with a password, from the corporate network or
from home, some add a TOTP code, and submit and approve expenses over a working morning; one
session is revoked and asks again. Every decision is made by the real runtime (the decision log
holds each one's facts), on a clock the history moves.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from juncture.records import App, StoredProof
from juncture.service.runtime import Runtime
from juncture.service.setup import open_store, tree_files

ROOT = Path(__file__).resolve().parent.parent
V1 = ROOT / "examples" / "journeys"
V2 = ROOT / "examples" / "versions" / "workforce_v2"
START = datetime(2026, 11, 30, 8, tzinfo=UTC)
EXPENSES = App(id="app_expenses", name="expenses", created_at=START,
               assertable_methods=("password", "totp"))  # fmt: skip
OFFICE, HOME = "10.20.0.7", "203.0.113.9"


def workforce_history(db: str | Path, people: int = 6) -> str:
    """Live the history on ``db``; returns the id of version 1 (active throughout)."""
    at = [START]
    runtime = Runtime(open_store(db), now=lambda: at[0], log_interval=60)
    try:
        version, problems, _ = runtime.policies.upload(tree_files(V1), author="ops",
                                                       comment="workforce v1")  # fmt: skip
        assert version is not None, problems
        runtime.policies.activate(version, by="ops")
        runtime.store.put_app(EXPENSES)
        sessions = []
        for n in range(people):
            ip = OFFICE if n % 2 == 0 else HOME
            proofs = [StoredProof(method="password", at=at[0], asserted_by=EXPENSES.id)]
            if n % 3 == 0:  # every third one adds a TOTP code at login
                proofs.append(StoredProof(method="totp", at=at[0], asserted_by=EXPENSES.id))
            started = runtime.sessions.start(
                EXPENSES, {"id": f"emp{n}"}, {"network": {"ip": ip}}, proofs
            )
            assert started.session is not None, started.decision
            sessions.append(started.session.id)
            at[0] += timedelta(minutes=1)
        for _hour in range(3):
            for n, session_id in enumerate(sessions):
                network = {"network": {"ip": OFFICE if n % 2 == 0 else HOME}}
                for action in ("expenses:submit", "expenses:approve"):
                    runtime.decisions.decide(EXPENSES, action, network, session_id=session_id)
                at[0] += timedelta(seconds=20)
            at[0] += timedelta(hours=1)
        runtime.sessions.end(EXPENSES, sessions[-1], revoke_reason="lost_laptop")
        runtime.decisions.decide(EXPENSES, "expenses:approve", {}, session_id=sessions[-1])
        runtime.decisions.decide(EXPENSES, "expenses:delete", {}, session_id=sessions[0])
        runtime.log.writer.flush()
        return version
    finally:
        runtime.close()
        runtime.store.close()
