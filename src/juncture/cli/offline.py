"""The commands that need no server: policy as code (check, test, explain) and version."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Annotated, Any

import msgspec
import typer
from rich.markup import escape as esc
from rich.table import Table
from rich.text import Text

from juncture import __version__
from juncture.analysis import check as check_bundle
from juncture.bundles import find_bundles
from juncture.cli.options import DirArgument, Format, FormatOption
from juncture.cli.output import err, out, print_json, problem_line
from juncture.engine import Facts, evaluate
from juncture.engine.decision import Decision
from juncture.engine.facts import parse_now
from juncture.engine.testing import run_tests
from juncture.errors import BundleError, FactsError, PolicyError
from juncture.policy import load_sources
from juncture.policy.loader import read_bundle_files
from juncture.policy.source import plain, read_json, read_yaml


def _load_problems(
    path: Path, *, invariants: bool = False
) -> tuple[Any, list[PolicyError], dict[str, bytes]]:
    """Load and check one bundle: (plan or None, problems with file names made relative).

    ``invariants``: prove the journeys' invariants too (`juncture check`; a violation is an
    error, so no plan)."""
    try:
        files = read_bundle_files(path)
    except BundleError as exc:  # these already name the path as given
        return None, exc.errors, {}
    try:
        bundle = load_sources(files)
    except BundleError as exc:
        return None, _relocate(exc.errors, path), {}
    plan, problems = check_bundle(bundle, invariants=invariants)
    return plan, _relocate(problems, path), files


def _relocate(problems: list[PolicyError], base: Path) -> list[PolicyError]:
    """Make bundle-relative file names relative to the working directory (call once per list)."""
    for problem in problems:
        loc = problem.location
        if loc.file and not Path(loc.file).is_absolute():
            problem.location = msgspec.structs.replace(loc, file=str(base / loc.file))
        for step in problem.extra.get("path", ()):  # an invariant's counterexample
            step["file"] = str(base / step["file"])
    return problems


InvariantsOnly = Annotated[
    bool,
    typer.Option(
        "--invariants-only",
        help="Report only the journeys' invariants (and what stops the bundle compiling).",
    ),
]


def _invariant_or_fatal(problem: PolicyError, compiled: bool) -> bool:
    return problem.code.startswith("policy.invariant.") or (
        not compiled and problem.severity == "error"
    )


def check(
    directory: DirArgument,
    format: FormatOption = Format.text,
    invariants_only: InvariantsOnly = False,
) -> None:
    """Load and statically check policy bundles, prove their invariants; print every problem.

    Exit 0 when there is no error (warnings allowed), 1 otherwise. A violated invariant is an
    error shown with the decision's path and the facts that reproduce it.
    """
    all_problems: list[PolicyError] = []
    summaries: list[dict[str, Any]] = []
    for path in find_bundles(directory):
        plan, problems, _ = _load_problems(path, invariants=True)
        if invariants_only:
            compiled = not any(
                p.severity == "error" and not p.code.startswith("policy.invariant.")
                for p in problems
            )
            problems = [p for p in problems if _invariant_or_fatal(p, compiled)]
        all_problems += problems
        summaries.append(
            {
                "bundle": str(path),
                "version": plan.version if plan else None,
                "errors": sum(p.severity == "error" for p in problems),
                "warnings": sum(p.severity == "warning" for p in problems),
            }
        )
    errors = sum(p.severity == "error" for p in all_problems)
    if format is Format.json:
        print_json(
            {
                "ok": errors == 0,
                "bundles": summaries,
                "problems": [p.to_dict() for p in all_problems],
            }
        )
    else:
        for problem in all_problems:
            out.print(problem_line(problem))
            if problem.extra:
                _print_counterexample(problem.extra)
        for s in summaries:
            mark = "[green]ok[/]" if not s["errors"] else "[red]failed[/]"
            version = f" {s['version'][:19]}" if s["version"] else ""
            out.print(
                f"{mark} {esc(s['bundle'])}{version}: "
                f"{s['errors']} error(s), {s['warnings']} warning(s)"
            )
    raise typer.Exit(1 if errors else 0)


def _print_counterexample(extra: dict[str, Any]) -> None:
    """The path of a decision that breaks an invariant, step by step, and its facts."""
    out.print(f"  the decision of `{esc(extra['action'])}` at {esc(extra['now'])}:")
    for step in extra["path"]:
        where = f"{step['file']}:{step['line']}"
        out.print(f"    {esc(where)}  {esc(step['step'])}  -> {esc(step['result'])}")
    facts = msgspec.json.encode(extra["facts"]).decode()
    out.print(f"  facts: {esc(facts)}", soft_wrap=True)


def test(directory: DirArgument, format: FormatOption = Format.text) -> None:
    """Run the policy tests (`*_test.yaml`) beside the journeys; report untested steps.

    Exit 0 when every bundle loads and every test passes, 1 otherwise.
    """
    ok = True
    report_json: list[dict[str, Any]] = []
    for path in find_bundles(directory):
        plan, problems, files = _load_problems(path)
        errors = [p for p in problems if p.severity == "error"]
        if plan is None:
            ok = False
            report_json.append({"bundle": str(path), "errors": [p.to_dict() for p in errors]})
            if format is Format.text:
                for problem in errors:
                    out.print(problem_line(problem))
                out.print(f"[red]failed[/] {esc(str(path))}: the bundle does not compile")
            continue
        report = run_tests(plan, files)
        ok = ok and report.ok
        if format is Format.json:
            report_json.append(
                {
                    "bundle": str(path),
                    "passed": report.passed,
                    "failed": report.failed,
                    "errors": [p.to_dict() for p in _relocate(list(report.errors), path)],
                    "failures": [
                        {
                            "code": "policy.test.failed",
                            "name": r.name,
                            "file": str(path / r.file),
                            "line": r.line,
                            "failures": r.failures,
                            "decision": r.decision.to_dict(),
                        }
                        for r in report.results
                        if not r.passed
                    ],
                    "uncovered": [
                        {"file": str(path / s.file), "line": s.line, "step": s.text}
                        for s in report.uncovered
                    ],
                }
            )
            continue
        for problem in _relocate(list(report.errors), path):
            out.print(problem_line(problem))
        for result in report.results:
            if result.passed:
                continue
            out.print(
                f"[red]FAIL[/] {esc(str(path / result.file))}:{result.line} {esc(result.name)}"
            )
            for failure in result.failures:
                out.print(f"    {esc(failure)}")
            print_explanation(result.decision, indent="    ")
        if report.uncovered:
            out.print(
                f"[yellow]{len(report.uncovered)} step(s) no test exercised[/] in {esc(str(path))}:"
            )
            for step in report.uncovered:
                out.print(f"    {esc(str(path / step.file))}:{step.line}  {esc(step.text)}")
        mark = "[green]ok[/]" if report.ok else "[red]failed[/]"
        if not report.results and not report.errors:
            mark = "[red]failed[/]"
            out.print(f"[red]no policy tests found[/] in {esc(str(path))}")
        out.print(f"{mark} {esc(str(path))}: {report.passed} passed, {report.failed} failed")
    if format is Format.json:
        print_json({"ok": ok, "bundles": report_json})
    raise typer.Exit(0 if ok else 1)


def print_explanation(decision: Decision, indent: str = "") -> None:
    for trace in decision.explanation:
        style = {
            "true": "green",
            "met": "green",
            "false": "dim",
            "not_met": "yellow",
            "error": "red",
            "outcome": "bold",
        }.get(trace.result, "")
        where = f"{trace.step.file}:{trace.step.line}" if trace.step.line else ""
        detail = f"  ({trace.detail})" if trace.detail else ""
        line = Text(f"{indent}{where:<22} ")
        line.append(f"{trace.step.text:<60}")
        line.append(f" -> {trace.result}", style=style)
        line.append(detail, style="red")
        out.print(line)


def explain(
    directory: Annotated[Path, typer.Argument(help="The bundle directory.")],
    checkpoint: Annotated[str, typer.Argument(help="The action to decide, e.g. change_email.")],
    facts: Annotated[Path, typer.Option("--facts", help="A facts file (YAML or JSON).")],
    now: Annotated[
        str | None, typer.Option(help="The moment (RFC 3339); default: the current time.")
    ] = None,
    journey: Annotated[str | None, typer.Option(help="Evaluate this journey.")] = None,
    format: FormatOption = Format.text,
) -> None:
    """Decide one action for the facts in a file and show why."""
    plan, problems, _ = _load_problems(directory)
    if plan is None:
        for problem in problems:
            err.print(problem_line(problem))
        raise typer.Exit(1)
    try:
        from datetime import datetime

        moment = parse_now(now) if now is not None else datetime.now(UTC)
        content = facts.read_bytes()
        raw = (
            read_json(content, str(facts))
            if facts.suffix == ".json"
            else plain(read_yaml(content, str(facts)))
        )
        if not isinstance(raw, dict):
            raise FactsError("a facts file must hold a mapping")
        assembled = Facts.from_document(raw, moment)
    except OSError as exc:
        err.print(f"[red]error[/] cannot read `{facts}`: {exc.strerror}")
        raise typer.Exit(1) from None
    except (PolicyError, FactsError) as exc:
        err.print(f"[red]error[/] {exc.code}: {exc.message}")
        raise typer.Exit(1) from None
    decision = evaluate(plan, checkpoint, assembled, moment, journey=journey)
    if format is Format.json:
        print_json(decision.to_dict())
        return
    table = Table(show_header=False, box=None)
    color = {"allow": "green", "reroute": "cyan", "step_up": "yellow"}.get(decision.outcome, "red")
    table.add_row("outcome", f"[bold {color}]{decision.outcome}[/]")
    for label, value in (
        ("reason", decision.reason),
        ("journey", decision.journey),
        ("checkpoint", decision.checkpoint),
        ("path", decision.path),
    ):
        if value:
            table.add_row(label, Text(value))
    if decision.scopes:
        table.add_row("scopes", Text(" ".join(decision.scopes)))
    if decision.step_up is not None:
        su = decision.step_up
        table.add_row(
            "step up",
            Text(
                f"{su.mode} of {', '.join(su.methods)}"
                + (f" within {su.within}s" if su.within is not None else "")
            ),
        )
        table.add_row("acr_values", su.acr_values)
    table.add_row(
        "risk",
        Text(
            f"{decision.risk.score} ({decision.risk.level})"
            + (f": {', '.join(decision.risk.reasons)}" if decision.risk.reasons else "")
        ),
    )
    if decision.missing:
        table.add_row("missing", Text(", ".join(decision.missing)))
    table.add_row("version", decision.version)
    out.print(table)
    out.print("[bold]why[/]")
    print_explanation(decision, indent="  ")


def version() -> None:
    """Print the version."""
    out.print(__version__)

