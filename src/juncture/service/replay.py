"""Replay: re-decide recorded decisions with a candidate version, to see what it would change.

Each recorded decision is decided again by the candidate's plan at its original time, from the
facts document it was recorded with (the session's proofs, signals and context as they were).
Nothing is written: the decision log is read through the store's `DecisionLog` protocol, the
app and the journeys it was bound to at each record's time (its binding history) through
`AppStore`; no session is loaded or changed, no event emitted, no challenge made or spent. A
record older than its app's first known binding is decided with that earliest binding and
counted (``bindings_assumed``): never silently.

A record the candidate cannot decide is reported with why, never decided on defaults:

- ``no_facts``: recorded without its facts (a revocation by the sweep, which logs none, or a
  record older than facts in the log);
- ``facts_invalid``: its facts do not decode under this schema (recorded before a change);
- ``missing_fact``: the candidate reads a fact the record does not hold (and the recorded
  decision did not miss it): the fact was not recorded then, so its value is unknown;
- ``built_in_checkpoint``: decided by a built-in rule that reads the directory
  (``authenticator.*``, ``approval.approve``), not by the journey;
- ``app_unknown``: the app that asked is gone.

Records decided before any journey was consulted (a revoked or ended session, a disabled
subject, an agent refused for its delegation, a store failure) are ``kept``: no version
changes them, and they are counted apart.
"""

from __future__ import annotations

import bisect
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import msgspec

from juncture.engine import Decision, Facts, evaluate
from juncture.engine.facts import parse_now
from juncture.errors import CodedRefusal, FactsError
from juncture.policy import Plan
from juncture.policy.duration import parse_duration
from juncture.records import App, AppBinding, DecisionQuery, DecisionRecord
from juncture.service.approval_requests import APPROVE
from juncture.service.directory import CHECKPOINTS as AUTHENTICATOR_CHECKPOINTS
from juncture.service.session_changes import CONTEXT_UPDATE
from juncture.store.protocols import NotFound, Store

log = logging.getLogger("juncture.runtime")
#: Records read from the log per page.
PAGE = 1000
#: Samples kept per changed cell of the table.
SAMPLES = 3
#: The names the candidate cannot decide a record for (see the module's docstring).
UNDECIDABLE = ("no_facts", "facts_invalid", "missing_fact", "built_in_checkpoint", "app_unknown")
#: A fact path in a condition's text (``network.segment``, ``risk.score``).
_FACT = re.compile(
    r"\b(?:subject|session|network|geo|device|risk|signals|context|agent|grants|resource|action"
    r"|task)(?:\.[A-Za-z_][A-Za-z0-9_]*)+"
)


class ReplayFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which recorded decisions to replay: ``since`` inclusive, ``until`` exclusive."""

    since: datetime
    until: datetime | None = None
    app: str | None = None
    checkpoint: str | None = None


class Redecided(msgspec.Struct, frozen=True, kw_only=True):
    """One record decided again: the decision, or why it could not be (``undecidable``)."""

    decision: Decision | None = None
    undecidable: str | None = None
    detail: str = ""
    #: Decided before any journey (session state): the record's outcome stands.
    kept: bool = False


class Sample(msgspec.Struct, frozen=True, kw_only=True):
    """A changed decision, both explanations side by side and the facts they read that differ."""

    id: str
    at: datetime
    app: str | None
    session_id: str | None
    subject_id: str | None
    old: dict[str, Any]
    new: dict[str, Any]
    facts: dict[str, Any]


class Cell(msgspec.Struct, kw_only=True):
    checkpoint: str
    old: str
    new: str
    count: int = 0
    samples: list[Sample] = []


class ReplayReport(msgspec.Struct, kw_only=True):
    """What replaying a window of the log with a candidate found."""

    candidate: str
    against: str | None
    since: datetime
    until: datetime | None
    total: int = 0
    replayed: int = 0
    changed: int = 0
    kept: int = 0
    undecidable: int = 0
    #: checkpoint -> "old->new" -> count (every replayed decision, changed or not).
    table: list[Cell] = []
    sessions: list[str] = []
    subjects: list[str] = []
    #: reason -> {count, samples: [{id, detail}]}.
    not_replayable: dict[str, dict[str, Any]] = {}
    seconds: float = 0.0
    #: The window held more records than the replay's limit: the newest were replayed.
    limited: bool = False
    #: Replayed records older than their app's first known journey binding: decided with
    #: that earliest binding, an assumption (`Bindings`).
    bindings_assumed: int = 0

    def count(self, old: str, new: str) -> int:
        """Replayed decisions that went from ``old`` to ``new`` (``*``: any)."""
        return sum(c.count for c in self.table if old in ("*", c.old) and new in ("*", c.new))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


def explanation(decision: Mapping[str, Any] | Decision) -> list[str]:
    """An explanation as lines: ``file:line  step -> result (detail)``."""
    traces = (
        decision.get("explanation", ())
        if isinstance(decision, Mapping)
        else [msgspec.to_builtins(t) for t in decision.explanation]
    )
    lines = []
    for trace in traces:
        step = trace.get("step") or {}
        where = f"{step.get('file', '')}:{step.get('line', 0)}" if step.get("line") else ""
        detail = f" ({trace['detail']})" if trace.get("detail") else ""
        lines.append(f"{where}  {step.get('text', '')} -> {trace.get('result')}{detail}".strip())
    return lines


def built_in(plan: Plan, app: App, record: DecisionRecord) -> bool:
    """Whether ``record``'s action is decided by a built-in rule under ``plan`` (as
    `Decisions._built_in_checkpoint` decides it): the journey names no such checkpoint."""
    if record.action not in AUTHENTICATOR_CHECKPOINTS and record.action != APPROVE:
        return False
    if record.session_id is None:
        return False
    journey, _ = plan.route(app.name, record.subject_type or "user")
    return journey is not None and record.action not in journey.exact


def redecide(
    plan: Plan,
    app: App | None,
    record: DecisionRecord,
    journeys: tuple[str, ...] | None = None,
) -> Redecided:
    """Decide ``record`` again with ``plan`` at its time, from its recorded facts, the app
    bound to ``journeys`` (its bindings at the record's time; None: as it is bound now).
    Pure: no store, no clock."""
    recorded = record.decision if isinstance(record.decision, Mapping) else {}
    facts = record.facts if isinstance(record.facts, Mapping) else {}
    if not facts:
        if not recorded.get("explanation") or str(record.reason or "").startswith("unavailable."):
            return Redecided(kept=True)
        return Redecided(undecidable="no_facts", detail="recorded without its facts")
    if str(record.reason or "").startswith("unavailable."):
        return Redecided(kept=True)
    if app is None:
        return Redecided(undecidable="app_unknown", detail=f"app `{record.app}` is gone")
    if built_in(plan, app, record):
        return Redecided(undecidable="built_in_checkpoint",
                         detail=f"`{record.action}` is decided by the built-in rule")  # fmt: skip
    try:
        assembled = Facts.from_document(facts)
    except FactsError as exc:
        return Redecided(undecidable="facts_invalid", detail=exc.message)
    decision = evaluate(
        plan,
        record.action,
        assembled,
        record.at,
        decision_id=record.id,
        allowed_journeys=frozenset(app.journeys if journeys is None else journeys) or None,
        guard_only=record.action == CONTEXT_UPDATE,  # a context update runs the guard alone
    )
    if decision.missing:
        before = set(recorded.get("missing") or ())
        unknown = [m for m in decision.missing if m not in before]
        if unknown:  # read by the candidate, not held by the record: its value is unknown
            return Redecided(undecidable="missing_fact",
                             detail="not recorded: " + ", ".join(unknown))  # fmt: skip
    return Redecided(decision=decision)


def _lookup(doc: Mapping[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _summary(decision: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "outcome": decision.get("outcome"),
        "reason": decision.get("reason"),
        "version": decision.get("version"),
        "explanation": explanation(decision),
    }


def _conditions(decision: Mapping[str, Any]) -> set[tuple[str, Any]]:
    """What an explanation's steps read and what came of each, wherever the step is."""
    return {
        ((t.get("step") or {}).get("text", ""), t.get("result"))
        for t in decision.get("explanation", ())
    }


def _differing_facts(
    facts: Mapping[str, Any], old: Mapping[str, Any], new: Mapping[str, Any]
) -> dict[str, Any]:
    """The facts read by the conditions that only one of the two explanations holds (or
    that came out differently), with their recorded values. A fact derived when deciding
    (``network.segment`` from ``network.ip``) is shown by the nearest recorded part."""
    found: dict[str, Any] = {}
    for text, _ in sorted(_conditions(old) ^ _conditions(new), key=str):
        for path in _FACT.findall(text):
            if path.startswith("risk."):
                found[path] = _lookup({"risk": new.get("risk") or {}}, path)
                continue
            parts = path.split(".")
            while parts and _lookup(facts, ".".join(parts)) is None:
                parts.pop()
            where = ".".join(parts) if parts else path
            found[where] = _lookup(facts, where)
    return found


class Bindings:
    """Each app's journeys as they were bound at a time, from its binding history
    (`AppStore.app_bindings`, read once per app)."""

    def __init__(self, history: Callable[[str], Sequence[AppBinding]]) -> None:
        self._history = history
        self._apps: dict[str, tuple[list[datetime], list[tuple[str, ...]]]] = {}

    def at(self, app: App, at: datetime) -> tuple[tuple[str, ...], bool]:
        """The journeys ``app`` was bound to at ``at``, and whether that is assumed: ``at``
        is older than its first known binding (that one is used), or it has none (its
        journeys now)."""
        known = self._apps.get(app.id)
        if known is None:
            rows = sorted(self._history(app.id), key=lambda b: b.since)
            known = self._apps[app.id] = ([b.since for b in rows], [b.journeys for b in rows])
        sinces, journeys = known
        if not journeys:
            return app.journeys, True
        found = bisect.bisect_right(sinces, at)
        if found == 0:
            return journeys[0], True
        return journeys[found - 1], False


class Replayer:
    """Replays a window of the decision log with a candidate plan (read only)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def records(self, window: ReplayFilter) -> Iterator[DecisionRecord]:
        """The window's records, newest first, a page at a time (through `DecisionLog.query`)."""
        before: str | None = None
        while True:
            try:
                page = self.store.query(
                    DecisionQuery(
                        app=window.app,
                        action=window.checkpoint,
                        since=window.since,
                        until=window.until,
                        limit=PAGE,
                        before=before,
                    )
                )
            except NotFound:  # the page's last record was purged meanwhile: the window ends
                return
            yield from page
            if len(page) < PAGE:
                return
            before = page[-1].id

    def run(
        self,
        candidate: Plan,
        window: ReplayFilter,
        *,
        against: Plan | None = None,
        progress: Callable[[int], None] | None = None,
        limit: int | None = None,
    ) -> ReplayReport:
        """Replay every record of ``window`` with ``candidate``; the old outcome is the
        recorded one, or ``against``'s when given (both decided the same way). ``limit``: the
        newest that many records at most (the report says it stopped there: ``limited``)."""
        started = time.perf_counter()
        report = ReplayReport(
            candidate=candidate.version,
            against=against.version if against is not None else None,
            since=window.since,
            until=window.until,
        )
        apps: dict[str | None, App | None] = {}
        bindings = Bindings(self.store.app_bindings)
        cells: dict[tuple[str, str, str], Cell] = {}
        sessions: set[str] = set()
        subjects: set[str] = set()
        for record in self.records(window):
            if limit is not None and report.total >= limit:
                report.limited = True
                break
            report.total += 1
            if progress is not None and report.total % PAGE == 0:
                progress(report.total)
            if record.app not in apps:
                apps[record.app] = self.store.get_app(record.app) if record.app else None
            app = apps[record.app]
            journeys, assumed = bindings.at(app, record.at) if app is not None else ((), False)
            new = redecide(candidate, app, record, journeys)
            old: Mapping[str, Any] = record.decision if isinstance(record.decision, Mapping) else {}
            if against is not None and new.decision is not None:
                base = redecide(against, app, record, journeys)
                if base.decision is None:
                    new = base
                else:
                    old = msgspec.to_builtins(base.decision)
            if new.kept:
                report.kept += 1
                continue
            if new.decision is None:
                report.undecidable += 1
                why = report.not_replayable.setdefault(
                    new.undecidable or "", {"count": 0, "samples": []}
                )
                why["count"] += 1
                if len(why["samples"]) < SAMPLES:
                    why["samples"].append({"id": record.id, "action": record.action,
                                           "detail": new.detail})  # fmt: skip
                continue
            report.replayed += 1
            report.bindings_assumed += assumed
            decision = new.decision
            checkpoint = str(old.get("checkpoint") or decision.checkpoint or record.action)
            before_outcome = str(old.get("outcome") or record.outcome)
            key = (checkpoint, before_outcome, decision.outcome)
            cell = cells.get(key)
            if cell is None:
                cell = cells[key] = Cell(checkpoint=checkpoint, old=key[1], new=key[2])
            cell.count += 1
            if before_outcome == decision.outcome:
                continue
            report.changed += 1
            if record.session_id:
                sessions.add(record.session_id)
            if record.subject_id:
                subjects.add(f"{record.subject_type or 'user'}:{record.subject_id}")
            if len(cell.samples) < SAMPLES:
                built = msgspec.to_builtins(decision)
                facts = record.facts if isinstance(record.facts, Mapping) else {}
                cell.samples.append(Sample(
                    id=record.id, at=record.at, app=record.app, session_id=record.session_id,
                    subject_id=record.subject_id, old=_summary(old), new=_summary(built),
                    facts=_differing_facts(facts, old, built),
                ))  # fmt: skip
        report.table = sorted(cells.values(), key=lambda c: (c.checkpoint, c.old, c.new))
        report.sessions = sorted(sessions)
        report.subjects = sorted(subjects)
        report.seconds = time.perf_counter() - started
        return report


# -- the window and the CI rules -------------------------------------------------------------
_OUTCOMES = ("allow", "deny", "step_up", "reroute", "revoke", "*")
_RULE = re.compile(
    r"^\s*(?:(?P<old>[a-z_*]+)\s*->\s*(?P<new>[a-z_*]+)|(?P<total>changed|undecidable))"
    r"\s*>\s*(?P<limit>\d+(?:\.\d+)?)(?P<percent>%?)\s*$"
)


class ReplayError(CodedRefusal):
    """A replay asked for wrongly: a malformed rule or window (400)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, 400)


class Rule(msgspec.Struct, frozen=True, kw_only=True):
    """A `--fail-on` rule: broken when its count goes over its limit.

    ``OLD->NEW>LIMIT`` counts replayed decisions that went from OLD to NEW (``*``: any
    outcome; a percentage is of the replayed decisions whose old outcome is OLD);
    ``changed>LIMIT`` and ``undecidable>LIMIT`` count those (a percentage: of all records).
    """

    text: str
    old: str | None = None
    new: str | None = None
    total: str | None = None
    limit: float
    percent: bool = False

    def measure(self, report: ReplayReport) -> tuple[int, int]:
        """(count, base for a percentage)."""
        if self.total == "changed":
            return report.changed, report.replayed
        if self.total == "undecidable":
            return report.undecidable, report.total
        old, new = self.old or "*", self.new or "*"
        return report.count(old, new), report.count(old, "*")

    def broken(self, report: ReplayReport) -> str | None:
        """Why the rule breaks on ``report`` (None: it holds)."""
        count, base = self.measure(report)
        if self.percent:
            share = 100.0 * count / base if base else 0.0
            if share > self.limit:
                return f"{self.text}: {count} of {base} ({share:.2f}%)"
            return None
        if count > self.limit:
            return f"{self.text}: {count}"
        return None


def parse_rule(text: str) -> Rule:
    """A `--fail-on` rule. Raises ReplayError ``replay.rule_invalid``."""
    found = _RULE.match(text)
    if found is None:
        raise ReplayError("replay.rule_invalid", f"`{text}` is not a rule: write OLD->NEW>LIMIT, "
                          "changed>LIMIT or undecidable>LIMIT (e.g. `allow->deny>1%`)")  # fmt: skip
    old, new = found["old"], found["new"]
    for outcome in (old, new):
        if outcome is not None and outcome not in _OUTCOMES:
            raise ReplayError("replay.rule_invalid", f"`{outcome}` in `{text}` is not an "
                              f"outcome: {', '.join(_OUTCOMES)}")  # fmt: skip
    limit = float(found["limit"])
    percent = bool(found["percent"])
    if percent and limit > 100:
        raise ReplayError("replay.rule_invalid", f"`{text}`: a percentage is at most 100%")
    return Rule(text=text.strip(), old=old, new=new, total=found["total"], limit=limit,
                percent=percent)  # fmt: skip


def parse_moment(text: str, now: datetime) -> datetime:
    """``24h`` (that long before ``now``) or an RFC 3339 timestamp. Raises ReplayError
    ``replay.window_invalid``."""
    try:
        return now - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        return parse_now(text)
    except FactsError:
        raise ReplayError("replay.window_invalid", f"`{text}` is neither a duration (`24h`) "
                          "nor an RFC 3339 timestamp") from None  # fmt: skip
