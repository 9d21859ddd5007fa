"""`juncture replay`: re-decide recorded decisions with a candidate version, before publishing
it, and say what it would change (service/replay.py); `--fail-on` rules make it a CI gate."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape as esc
from rich.table import Table
from rich.text import Text

from juncture.cli.options import DbOption, Format, FormatOption
from juncture.cli.output import err, out, print_json, problem_line

if TYPE_CHECKING:
    from juncture.policy import Plan
    from juncture.service.replay import ReplayReport, Rule
    from juncture.store.protocols import Store

_COLOR = {"allow": "green", "reroute": "cyan", "step_up": "yellow"}


def replay(
    candidate: Annotated[
        str,
        typer.Argument(help="A bundle directory, or a stored version's id (any unique prefix)."),
    ],
    db: DbOption = "juncture.db",
    against: Annotated[
        str | None,
        typer.Option(
            help="Compare with this stored version's answers (default: the recorded ones)."
        ),
    ] = None,
    since: Annotated[
        str, typer.Option(help="From this long ago (`24h`) or this RFC 3339 time.")
    ] = "24h",
    until: Annotated[
        str | None, typer.Option(help="Up to (not including) this long ago or this time.")
    ] = None,
    app: Annotated[
        str | None, typer.Option(help="Only the decisions of this app (its id).")
    ] = None,
    checkpoint: Annotated[
        str | None, typer.Option(help="Only the decisions for this action.")
    ] = None,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            help="Exit 1 when this rule breaks (repeat): `allow->deny>1%`, `*->allow>0`, "
            "`changed>10`, `undecidable>0%`.",
        ),
    ] = None,
    format: FormatOption = Format.text,
) -> None:
    """Re-decide the recorded decisions of a window with a candidate version, each at its time
    from its recorded facts, and report what would change (nothing is written).

    Exit 0: every `--fail-on` rule holds; 1: a rule broke; 2: the candidate, a rule, the window
    or the database cannot be used.
    """
    from juncture.errors import JunctureError
    from juncture.service.replay import Replayer, ReplayFilter, parse_moment, parse_rule
    from juncture.store.protocols import StoreError

    try:
        rules = [parse_rule(r) for r in fail_on or ()]
        now = datetime.now(UTC)
        window = ReplayFilter(
            since=parse_moment(since, now),
            until=parse_moment(until, now) if until is not None else None,
            app=app,
            checkpoint=checkpoint,
        )
    except JunctureError as exc:
        err.print(f"[red]error[/] {exc.code}: {esc(exc.message)}")
        raise typer.Exit(2) from None
    store = _open(db)
    try:
        plan = _candidate(store, candidate)
        baseline = _stored(store, against) if against is not None else None
        report = Replayer(store).run(plan, window, against=baseline)
    except StoreError as exc:
        err.print(f"[red]error[/] {exc.code}: {esc(str(exc))}")
        raise typer.Exit(2) from None
    finally:
        store.close()
    broken = [why for rule in rules if (why := rule.broken(report)) is not None]
    if format is Format.json:
        print_json({**report.to_dict(), "rules": [r.text for r in rules], "broken": broken})
    else:
        print_report(report, candidate, rules, broken)
    if broken:
        raise typer.Exit(1)


def _open(db: str) -> Store:
    """The store, opened without changing it: a SQLite file that is not there is not made, and
    a schema that is not current is not migrated (exit 2: `juncture migrate` is for that)."""
    from juncture.service.database import is_postgres_url, schema_status
    from juncture.store.protocols import StoreError

    if not is_postgres_url(db) and not Path(db).is_file():
        err.print(f"[red]error[/] no database at `{esc(db)}` (--db)")
        raise typer.Exit(2)
    try:
        found, known = schema_status(db)
        if found != known:
            raise StoreError(f"the database has schema version {found}, this juncture reads "
                             f"{known}: `juncture migrate` first")  # fmt: skip
        if is_postgres_url(db):
            from juncture.store.postgres import PostgresStore

            return PostgresStore(db, migrate_schema=False)
        from juncture.store.sqlite import SqliteStore

        return SqliteStore(db)
    except StoreError as exc:
        err.print(f"[red]error[/] {exc.code}: {esc(str(exc))}")
        raise typer.Exit(2) from None


def _candidate(store: Store, candidate: str) -> Plan:
    """The candidate's plan: a bundle directory's (checked and compiled), else a stored
    version's."""
    from juncture.errors import BundleError
    from juncture.service.setup import tree_files

    path = Path(candidate)
    if not path.is_dir():
        return _stored(store, candidate)
    from juncture.service.policies import PolicyRegistry

    try:
        files = tree_files(path)
    except BundleError as exc:
        for problem in exc.errors:
            err.print(problem_line(problem))
        raise typer.Exit(2) from None
    plan, problems = PolicyRegistry(store, lambda: datetime.now(UTC)).validate(files)
    if plan is None:
        for problem in problems:
            err.print(problem_line(problem))
        raise typer.Exit(2)
    return plan


def _stored(store: Store, version: str) -> Plan:
    from juncture.service.policies import AmbiguousVersion, PolicyRegistry
    from juncture.store.protocols import NotFound

    registry = PolicyRegistry(store, lambda: datetime.now(UTC))
    try:
        return registry.plan(registry.resolve(version))
    except AmbiguousVersion as exc:
        err.print(f"[red]error[/] version.ambiguous: {esc(exc.message)}")
    except NotFound:
        err.print(f"[red]error[/] version.not_found: no bundle directory or stored version "
                  f"`{esc(version)}`")  # fmt: skip
    raise typer.Exit(2)


def print_report(
    report: ReplayReport, candidate: str, rules: list[Rule], broken: list[str]
) -> None:
    """A replay's report as text (here and for `juncture publish --rehearse`)."""
    base = f"version {report.against[:19]}…" if report.against else "the recorded outcomes"
    until = report.until.isoformat() if report.until else "now"
    out.print(Text(f"replay of {candidate} ({report.candidate[:19]}…) against {base}"))
    out.print(Text(f"decisions from {report.since.isoformat()} to {until}"))
    rate = report.total / report.seconds if report.seconds > 0 else 0.0
    out.print(
        f"[bold]{report.total}[/] decisions: {report.replayed} replayed, "
        f"[bold]{report.changed}[/] changed, {report.kept} kept (decided before any journey), "
        f"{report.undecidable} not replayable  [dim]({report.seconds:.2f} s, {rate:,.0f}/s)[/]"
    )
    if report.table:
        table = Table(title="checkpoint × outcome", title_justify="left")
        table.add_column("checkpoint")
        table.add_column("old → new")
        table.add_column("count", justify="right")
        for cell in report.table:
            style = "bold" if cell.old != cell.new else "dim"
            change = Text(f"{cell.old} → ", style=style)
            change.append(cell.new, style=f"{style} {_COLOR.get(cell.new, 'red')}")
            table.add_row(Text(cell.checkpoint, style=style), change, str(cell.count))
        out.print(table)
    for cell in report.table:
        if cell.old == cell.new:
            continue
        out.print(Text(f"{cell.checkpoint}: {cell.old} → {cell.new} ({cell.count})", style="bold"))
        for sample in cell.samples:
            _print_sample(sample)
    if report.changed:
        out.print(f"sessions affected: {len(report.sessions)}; subjects affected: "
                  f"{len(report.subjects)}")  # fmt: skip
        if report.subjects:
            more = " …" if len(report.subjects) > 10 else ""
            out.print(Text("  subjects: " + ", ".join(report.subjects[:10]) + more))
    for reason, why in sorted(report.not_replayable.items()):
        out.print(Text(f"not replayable: {reason} ({why['count']})", style="yellow"))
        for sample in why["samples"]:
            out.print(Text(f"  {sample['id']} {sample['action']}: {sample['detail']}"))
    if report.bindings_assumed:
        out.print(Text(f"bindings assumed: {report.bindings_assumed} decided with their app's "
                       "earliest known journeys (older than its binding history)",
                       style="yellow"))  # fmt: skip
    for rule in rules:
        failed = next((b for b in broken if b.startswith(rule.text + ":")), None)
        if failed is None:
            out.print(Text(f"rule {rule.text}: holds", style="green"))
        else:
            err.print(Text(f"rule broken: {failed}", style="red"))


def _print_sample(sample: Any) -> None:
    who = f"session {sample.session_id}" if sample.session_id else "no session"
    out.print(Text(f"  {sample.id} at {sample.at.isoformat()} ({who}, subject "
                   f"{sample.subject_id or '-'})", style="dim"))  # fmt: skip
    side = Table(box=None, show_header=True, padding=(0, 2, 0, 4))
    side.add_column(f"old: {sample.old['outcome']} ({sample.old['reason'] or '-'})")
    side.add_column(f"new: {sample.new['outcome']} ({sample.new['reason'] or '-'})")
    old, new = sample.old["explanation"], sample.new["explanation"]
    for i in range(max(len(old), len(new))):
        side.add_row(Text(old[i] if i < len(old) else ""), Text(new[i] if i < len(new) else ""))
    out.print(side)
    if sample.facts:
        facts = ", ".join(f"{k} = {v!r}" for k, v in sorted(sample.facts.items()))
        out.print(Text(f"    facts read differently: {facts}"))
