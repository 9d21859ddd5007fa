"""I9, same answers everywhere: one history of requests gives the same decisions on SQLite and
on PostgreSQL. Hypothesis draws histories (sessions started from the corporate network or
outside it, decisions, context updates, sessions ended, versions published, time passing);
each runs on a fresh SQLite file and a fresh PostgreSQL database, in process, and every answer
(outcome, reason, scopes, path) must match."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from juncture.records import StoredProof
from juncture.service.outcome import ServiceError
from juncture.service.runtime import Runtime
from juncture.service.setup import open_store
from service.test_sweep_http import V1, V2
from service.test_sweep_resume import APP, NOW

IPS = ("10.1.2.3", "198.51.100.7")
ACTIONS = ("login", "dashboard", "reports", "change_email")
SLOT = st.integers(min_value=0, max_value=3)
OPS = st.one_of(
    st.tuples(st.just("start"), st.integers(0, 2), st.sampled_from(IPS)),
    st.tuples(st.just("decide"), SLOT, st.sampled_from(ACTIONS)),
    st.tuples(st.just("context"), SLOT, st.sampled_from(IPS)),
    st.tuples(st.just("end"), SLOT, st.booleans()),
    st.tuples(st.just("publish"), st.sampled_from(("v1", "v2")), st.none()),
    st.tuples(st.just("wait"), st.sampled_from((60, 3700, 9 * 3600)), st.none()),
    st.tuples(st.just("rebind"), st.none(), st.sampled_from(((), ("desk",), ("elsewhere",)))),
)


class History:
    """One backend living through a history; what it answered, in order."""

    def __init__(self, db: str) -> None:
        self.at = NOW
        self.runtime = Runtime(open_store(db), now=lambda: self.at, log_interval=60)
        self.versions: dict[str, str] = {}
        for name, text in (("v1", V1), ("v2", V2)):
            version, problems, _ = self.runtime.policies.upload(
                {"desk.yaml": text.encode()}, author="t"
            )
            assert version is not None, problems
            self.versions[name] = version
        self.runtime.policies.activate(self.versions["v1"], by="t")
        self.runtime.store.put_app(APP)
        self.app = APP
        self.sessions: list[str] = []

    def close(self) -> None:
        self.runtime.close()
        self.runtime.store.close()

    def apply(self, op: tuple[str, Any, Any]) -> Any:
        kind, a, b = op
        rt = self.runtime
        try:
            if kind == "start":
                outcome = rt.sessions.start(
                    self.app, {"id": f"user{a}"}, {"network": {"ip": b}},
                    [StoredProof(method="password", at=self.at, asserted_by=self.app.id)],
                )  # fmt: skip
                if outcome.session is not None:
                    self.sessions.append(outcome.session.id)
                return _answer(outcome.decision)
            if kind == "publish":
                rt.policies.activate(self.versions[a], by="t")
                return "published"
            if kind == "rebind":  # the app's journeys changed (a moment later: its own time)
                self.at += timedelta(microseconds=1)
                self.app = rt.apps.configure(self.app.id, None, None, journeys=b)
                return "rebound"
            if kind == "wait":
                self.at += timedelta(seconds=a)
                return "waited"
            if a >= len(self.sessions):
                return "no session"
            session_id = self.sessions[a]
            if kind == "decide":
                decided = rt.decisions.decide(self.app, b, {}, session_id=session_id)
                return _answer(decided.decision)
            if kind == "context":
                outcome = rt.sessions.update_context(
                    self.app, session_id, context={"network": {"ip": b}}, signals={}
                )
                return _answer(outcome.decision)
            session = rt.sessions.end(self.app, session_id, revoke_reason="test" if b else None)
            return (session.status, session.status_reason)
        except ServiceError as error:
            return ("refused", error.code)


def _answer(decision: Any) -> tuple[Any, ...]:
    return (decision.outcome, decision.reason, tuple(decision.scopes), decision.path)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=st.lists(OPS, min_size=1, max_size=25))
def test_sqlite_and_postgresql_answer_the_same_history_the_same(
    history: list[tuple[str, Any, Any]], postgres_server: Any
) -> None:
    with tempfile.TemporaryDirectory(prefix="jct-i9-") as name:
        lite = History(str(Path(name) / "j.db"))
        pg = History(postgres_server.create_database())
        try:
            for step, op in enumerate(history):
                assert lite.apply(op) == pg.apply(op), (step, op)
        finally:
            lite.close()
            pg.close()

