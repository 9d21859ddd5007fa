"""Replay (service/replay.py): recorded decisions decided again with a candidate version.

The differential test: a generated history (sessions started on and off the corporate network,
decisions, context updates, sessions ended and revoked, versions published, time passing) is
lived on SQLite and on PostgreSQL; replaying each record with the version that decided it
reproduces every recorded outcome exactly (I9's history, I7: one version per decision). The
others: a changed candidate's table and samples, records that cannot be replayed (no facts,
facts of another schema, facts not recorded, built-in checkpoints), and a store snapshot equal
before and after a replay (it writes nothing, emits nothing, spends no challenge).
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from juncture.policy import compile_plan, load_sources
from juncture.records import DecisionQuery, DecisionRecord
from juncture.service.replay import (
    Bindings,
    Replayer,
    ReplayError,
    ReplayFilter,
    parse_moment,
    parse_rule,
    redecide,
)
from properties.test_backends_differential import OPS, History
from service.test_sweep_http import V1, V2
from service.test_sweep_resume import APP, NOW

EVERYTHING = ReplayFilter(since=NOW - timedelta(days=1))
ALWAYS = [
    ("start", 0, "10.1.2.3"), ("start", 1, "198.51.100.7"), ("decide", 0, "dashboard"),
    ("decide", 1, "dashboard"), ("decide", 1, "reports"), ("decide", 0, "reports"),
    ("decide", 0, "change_email"), ("end", 1, True), ("decide", 1, "dashboard"),
]  # fmt: skip
#: The app rebound to a journey that is not its own, then back: denied meanwhile.
REBINDING = [
    ("rebind", None, ("elsewhere",)), ("decide", 0, "dashboard"), ("start", 2, "10.1.2.3"),
    ("decide", 2, "dashboard"), ("wait", 60, None), ("rebind", None, ("desk",)),
    ("decide", 0, "reports"),
]  # fmt: skip


def plan_of(text: str) -> Any:
    return compile_plan(load_sources({"desk.yaml": text.encode()}))


def records(history: History) -> list[DecisionRecord]:
    history.runtime.log.writer.flush()
    return list(history.runtime.store.query(DecisionQuery(limit=100_000)))


def reproduces(history: History) -> int:
    """Replay every record with the version that decided it and the app's journeys bound
    then; returns how many were decided by a journey (the others are kept: decided before
    any journey)."""
    plans = {v: history.runtime.policies.plan(v) for v in history.versions.values()}
    app = history.runtime.store.get_app(APP.id)
    assert app is not None
    bindings = Bindings(history.runtime.store.app_bindings)
    decided = 0
    for record in records(history):
        journeys, assumed = bindings.at(app, record.at)
        assert not assumed, record
        again = redecide(plans[record.version], app, record, journeys)
        assert again.undecidable is None, (record, again)
        if again.kept:
            assert not record.facts, record
            continue
        decided += 1
        assert again.decision is not None
        new = msgspec.json.decode(msgspec.json.encode(again.decision))  # as the log keeps it
        old = record.decision
        for key in ("outcome", "reason", "scopes", "path", "checkpoint", "journey", "ttl"):
            assert old.get(key) == new.get(key), (key, record, new)
        assert old.get("explanation") == new.get("explanation"), record
    return decided


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=st.lists(OPS, min_size=1, max_size=20))
def test_replay_of_the_deciding_version_reproduces_every_outcome(
    history: list[tuple[str, Any, Any]], postgres_server: Any
) -> None:
    """I9 and I7: every record, replayed with its own version at its time from its facts,
    gets exactly the recorded answer and explanation, on SQLite and on PostgreSQL."""
    with tempfile.TemporaryDirectory(prefix="jct-replay-") as name:
        lite = History(str(Path(name) / "j.db"))
        pg = History(postgres_server.create_database())
        try:
            for op in [*ALWAYS, *REBINDING, *history]:
                lite.apply(op)
                pg.apply(op)
            assert reproduces(lite) == reproduces(pg) > 0
        finally:
            lite.close()
            pg.close()


@pytest.fixture
def lived(tmp_path: Path) -> Any:
    """A history decided by v1 only (no publish), on SQLite."""
    history = History(str(tmp_path / "j.db"))
    for op in ALWAYS:
        history.apply(op)
    history.runtime.log.writer.flush()
    yield history
    history.close()


def test_an_unchanged_candidate_changes_nothing(lived: History) -> None:
    report = Replayer(lived.runtime.store).run(plan_of(V1), EVERYTHING)
    assert report.total == len(records(lived)) > 0
    assert report.changed == 0 and report.undecidable == 0
    assert report.replayed + report.kept == report.total
    assert report.kept >= 1  # the decision after the session was revoked
    assert all(c.old == c.new for c in report.table)


def test_records_are_decided_with_the_journeys_their_app_was_bound_to_then(
    lived: History,
) -> None:
    """The app rebound inside the window: each record is replayed with its own time's
    bindings, so an unchanged version reproduces the denials of the rebound minutes and the
    allows around them, where today's bindings would decide them all alike."""
    for op in REBINDING:
        lived.apply(op)
    history = lived.runtime.store.app_bindings(APP.id)
    assert [b.journeys for b in history] == [(), ("elsewhere",), ("desk",)]
    outcomes = [(r.action, r.outcome, r.reason) for r in reversed(records(lived))]
    assert ("dashboard", "deny", "journey_not_allowed") in outcomes
    assert ("reports", "allow", None) in outcomes or ("reports", "reroute", None) in outcomes
    report = Replayer(lived.runtime.store).run(plan_of(V1), EVERYTHING)
    assert (report.changed, report.undecidable, report.bindings_assumed) == (0, 0, 0), report
    app = lived.runtime.store.get_app(APP.id)
    now_bound = [redecide(plan_of(V1), app, r) for r in records(lived)]  # as bound now
    assert any(again.decision is not None and again.decision.outcome != r.outcome
               for again, r in zip(now_bound, records(lived), strict=True))  # fmt: skip


def test_a_record_older_than_its_apps_bindings_is_counted(lived: History) -> None:
    """Decided with the earliest known bindings, and said so: never silently."""
    store = lived.runtime.store
    first = next(r for r in reversed(records(lived)) if r.action == "dashboard")
    late_app = msgspec.structs.replace(APP, id="app_late", created_at=first.at + timedelta(hours=1))
    store.put_app(late_app)
    late = msgspec.structs.replace(first, id="d_late", app="app_late")
    store.record([late])
    report = Replayer(store).run(plan_of(V1), EVERYTHING)
    assert report.bindings_assumed == 1 and report.changed == 0, report
    assert report.to_dict()["bindings_assumed"] == 1


def test_a_limit_replays_the_newest_records_and_says_so(lived: History) -> None:
    every = Replayer(lived.runtime.store).run(plan_of(V1), EVERYTHING)
    newest = Replayer(lived.runtime.store).run(plan_of(V1), EVERYTHING, limit=2)
    assert newest.total == 2 and newest.limited and not every.limited
    assert Replayer(lived.runtime.store).run(plan_of(V1), EVERYTHING,
                                             limit=every.total).limited is False  # fmt: skip


def test_a_changed_candidate_reports_the_cells_that_change(lived: History) -> None:
    report = Replayer(lived.runtime.store).run(plan_of(V2), EVERYTHING)
    # user1 started off the corporate network: v2 denies its dashboard.
    changed = [c for c in report.table if c.old != c.new]
    assert [(c.checkpoint, c.old, c.new, c.count) for c in changed] == [
        ("dashboard", "allow", "deny", 1)
    ]
    assert report.changed == 1 and report.count("allow", "deny") == 1
    sample = changed[0].samples[0]
    assert sample.subject_id == "user1"
    assert sample.old["reason"] is None and sample.new["reason"] == "off_network"
    assert any("network.segment != 'corporate'" in line for line in sample.new["explanation"])
    # the conditions only one side holds: v2's network test, and its new guard
    assert sample.facts == {"network": {"ip": "198.51.100.7"}, "subject.id": "user1"}
    assert report.subjects == ["user:user1"] and len(report.sessions) == 1
    unchanged = {(c.checkpoint, c.old, c.new) for c in report.table if c.old == c.new}
    assert ("dashboard", "allow", "allow") in unchanged  # user0, on the corporate network


def test_against_compares_two_versions_not_the_records(lived: History) -> None:
    store = lived.runtime.store
    same = Replayer(store).run(plan_of(V2), EVERYTHING, against=plan_of(V2))
    assert same.changed == 0 and same.against == same.candidate
    other = Replayer(store).run(plan_of(V1), EVERYTHING, against=plan_of(V2))
    assert other.count("deny", "allow") == 1  # v2's deny is v1's allow


def test_window_app_and_checkpoint_filters(lived: History) -> None:
    store = lived.runtime.store
    only = Replayer(store).run(
        plan_of(V2), ReplayFilter(since=EVERYTHING.since, checkpoint="reports")
    )
    assert only.total == 2 and {c.checkpoint for c in only.table} == {"reports"}
    assert Replayer(store).run(plan_of(V2), ReplayFilter(since=NOW + timedelta(1))).total == 0
    assert Replayer(store).run(plan_of(V2), ReplayFilter(since=EVERYTHING.since,
                                                         app="other")).total == 0  # fmt: skip


def _record(facts: Any, action: str = "dashboard", **decision: Any) -> DecisionRecord:
    body = {"outcome": "allow", "checkpoint": action, "explanation": [{"step": {
        "kind": "outcome", "text": "allow", "file": "desk.yaml", "line": 1}, "result": "outcome"}],
        **decision}  # fmt: skip
    return DecisionRecord(id="d_1", at=NOW, app=APP.id, subject_type="user", subject_id="u",
                          session_id="s_1", action=action, resource=None, outcome="allow",
                          reason=None, version="v", latency_us=1, decision=body,
                          facts=facts)  # fmt: skip


FACTS = {"app": "desk", "subject": {"type": "user", "id": "u"},
         "session": {"id": "s_1", "started_at": NOW.isoformat(),
                     "proofs": [{"method": "password", "at": NOW.isoformat()}]}}  # fmt: skip


def test_records_the_candidate_cannot_decide_say_why() -> None:
    """Never decided on defaults: no facts, another schema's facts, facts not recorded, a
    built-in checkpoint, an app that is gone."""
    v2 = plan_of(V2)
    assert redecide(v2, APP, _record({})).undecidable == "no_facts"
    odd = redecide(v2, APP, _record({**FACTS, "posture": {"managed": True}}))
    assert odd.undecidable == "facts_invalid" and "posture" in odd.detail
    # v2 reads network.segment; this record holds no network section at all
    unknown = redecide(v2, APP, _record(FACTS))
    assert (unknown.undecidable, unknown.detail) == ("missing_fact", "not recorded: network")
    # ... with the network's ip recorded, the segment is known: v2 decides
    seen = redecide(v2, APP, _record({**FACTS, "network": {"ip": "198.51.100.7"}}))
    assert seen.decision is not None and seen.decision.reason == "off_network"
    built = redecide(v2, APP, _record(FACTS, action="authenticator.enroll"))
    assert built.undecidable == "built_in_checkpoint"
    assert redecide(v2, None, _record(FACTS)).undecidable == "app_unknown"
    kept = redecide(v2, APP, _record({}, explanation=[], reason="session_revoked"))
    assert kept.kept


def test_not_replayable_records_are_counted_with_samples(tmp_path: Path) -> None:
    from juncture.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "j.db")
    try:
        store.put_app(APP)
        store.record([
            msgspec.structs.replace(_record({}), id="d_a"),
            msgspec.structs.replace(_record(FACTS), id="d_b"),
            msgspec.structs.replace(_record({**FACTS, "network": {"ip": "10.1.2.3"}}), id="d_c"),
        ])  # fmt: skip
        report = Replayer(store).run(plan_of(V2), EVERYTHING)
    finally:
        store.close()
    assert (report.total, report.replayed, report.undecidable) == (3, 1, 2)
    assert {k: v["count"] for k, v in report.not_replayable.items()} == {
        "no_facts": 1, "missing_fact": 1}  # fmt: skip
    assert report.not_replayable["no_facts"]["samples"][0]["id"] == "d_a"


def _snapshot(db: Path) -> dict[str, list[Any]]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}"))) for t in tables}


def _any_snapshot(db: str) -> dict[str, list[Any]]:
    """Every table's rows, on SQLite or on PostgreSQL."""
    if not db.startswith("postgresql://"):
        return _snapshot(Path(db))
    import psycopg

    with psycopg.connect(db) as conn:
        tables = [t for (t,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]  # fmt: skip
        return {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}"))) for t in tables}


def test_replay_writes_nothing(lived: History, tmp_path: Path) -> None:
    """A store snapshot before and after replays (with changes, with `--against`) is equal:
    no session written, no event queued, no challenge made or spent, no decision logged."""
    lived.runtime.log.writer.flush()
    before = _snapshot(tmp_path / "j.db")
    assert before["sessions"] and before["decisions"]
    store = lived.runtime.store
    Replayer(store).run(plan_of(V2), EVERYTHING)
    Replayer(store).run(plan_of(V1), EVERYTHING, against=plan_of(V2))
    lived.runtime.log.writer.flush()
    assert _snapshot(tmp_path / "j.db") == before


@pytest.mark.parametrize(
    ("text", "old", "new", "total", "limit", "percent"),
    [
        ("allow->deny>1%", "allow", "deny", None, 1.0, True),
        (" *->allow > 0 ", "*", "allow", None, 0.0, False),
        ("changed>10", None, None, "changed", 10.0, False),
        ("undecidable>0.5%", None, None, "undecidable", 0.5, True),
    ],
)
def test_rules_parse(text: str, old: Any, new: Any, total: Any, limit: float, percent: bool):
    rule = parse_rule(text)
    assert (rule.old, rule.new, rule.total, rule.limit, rule.percent) == (
        old, new, total, limit, percent)  # fmt: skip


@pytest.mark.parametrize(
    "text",
    ["", "allow->deny", "allow->nope>1", "allow-deny>1", "changed>101%", "x>1", "allow->deny>-1"],
)
def test_malformed_rules_are_refused_with_their_code(text: str):
    with pytest.raises(ReplayError) as caught:
        parse_rule(text)
    assert caught.value.code == "replay.rule_invalid" and caught.value.status == 400


def test_rules_break_on_counts_and_shares(lived: History) -> None:
    report = Replayer(lived.runtime.store).run(plan_of(V2), EVERYTHING)
    allows = report.count("allow", "*")
    assert parse_rule("allow->deny>0").broken(report) == "allow->deny>0: 1"
    assert parse_rule("allow->deny>1").broken(report) is None
    share = 100 / allows
    assert parse_rule(f"allow->deny>{share:.4f}%").broken(report) is None
    assert parse_rule(f"allow->deny>{share / 2:.4f}%").broken(report) is not None
    assert parse_rule("changed>0").broken(report) is not None
    assert parse_rule("changed>0%").broken(report) is not None
    assert parse_rule("undecidable>0").broken(report) is None
    assert parse_rule("undecidable>0%").broken(report) is None
    assert parse_rule("*->*>100%").broken(report) is None


def test_window_moments() -> None:
    assert parse_moment("24h", NOW) == NOW - timedelta(hours=24)
    assert parse_moment("2026-11-28T10:00:00Z", NOW) == NOW - timedelta(days=1)
    for bad in ("yesterday", "2026-11-28T10:00:00", ""):
        with pytest.raises(ReplayError) as caught:
            parse_moment(bad, NOW)
        assert caught.value.code == "replay.window_invalid"


def test_pages_of_the_log_on_both_backends_give_one_report(
    tmp_path: Path, postgres_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """I9: the log read a few records a page (every page boundary crossed, progress told at
    each) gives the same report on SQLite and on PostgreSQL."""
    import juncture.service.replay as replay

    monkeypatch.setattr(replay, "PAGE", 4)
    reports = []
    for db in (str(tmp_path / "j.db"), postgres_server.create_database()):
        history = History(db)
        try:
            for op in ALWAYS:
                history.apply(op)
            history.runtime.log.writer.flush()
            before = _any_snapshot(db)
            told: list[int] = []
            report = Replayer(history.runtime.store).run(plan_of(V2), EVERYTHING,
                                                         progress=told.append)  # fmt: skip
            assert report.total == len(records(history)) >= 8
            assert told == list(range(4, report.total + 1, 4))
            history.runtime.log.writer.flush()
            assert _any_snapshot(db) == before  # nothing written, on either backend
            reports.append(report)
        finally:
            history.close()
    lite, pg = ({k: v for k, v in msgspec.to_builtins(r).items() if k not in ("seconds",
                 "sessions", "table")} for r in reports)  # fmt: skip
    assert lite == pg
    assert [(c.checkpoint, c.old, c.new, c.count) for c in reports[0].table] == [
        (c.checkpoint, c.old, c.new, c.count) for c in reports[1].table
    ]
