"""The `juncture` command line: policy as code (check, test, explain)."""

from __future__ import annotations

import errno
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import typer
from rich.console import Console
from rich.markup import escape as esc
from rich.table import Table
from rich.text import Text
from typer.core import TyperCommand

from juncture import __version__
from juncture.api.limits import Limits, default_hash_concurrency
from juncture.bundles import find_bundles
from juncture.engine import Facts, evaluate
from juncture.engine.decision import Decision
from juncture.engine.facts import parse_now
from juncture.engine.testing import run_tests
from juncture.errors import BundleError, FactsError, JunctureError, PolicyError
from juncture.plugins import load_configured
from juncture.policy import check as check_bundle
from juncture.policy import compile_plan, load_sources
from juncture.policy.loader import read_bundle_files
from juncture.policy.source import plain, read_json, read_yaml

if TYPE_CHECKING:
    from juncture.api.settings import ServerSettings
    from juncture.service.runtime import Runtime

load_configured()  # plug-ins' method kinds and enrichers, before a journey is read

app = typer.Typer(
    name="juncture",
    help="Journey-time orchestration for identity and access decisions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Format(StrEnum):
    text = "text"
    json = "json"


FormatOption = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
DirArgument = Annotated[
    Path, typer.Argument(help="A bundle directory, or a directory of bundle directories.")
]


def _print_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")


def _problem_line(problem: PolicyError) -> Text:
    style = "red" if problem.severity == "error" else "yellow"
    line = Text()
    line.append(str(problem.location), style="bold")
    line.append(": ")
    line.append(f"{problem.severity} {problem.code}", style=style)
    line.append(f": {problem.message}")
    if problem.suggestion:
        line.append(f" ({problem.suggestion})", style="cyan")
    return line


def _load_problems(path: Path) -> tuple[Any, list[PolicyError], dict[str, bytes]]:
    """Load and check one bundle: (plan or None, problems with file names made relative)."""
    try:
        files = read_bundle_files(path)
    except BundleError as exc:  # these already name the path as given
        return None, exc.errors, {}
    try:
        bundle = load_sources(files)
    except BundleError as exc:
        return None, _relocate(exc.errors, path), {}
    problems = check_bundle(bundle)
    plan = None
    if not any(p.severity == "error" for p in problems):
        plan = compile_plan(bundle)
    return plan, _relocate(problems, path), files


def _relocate(problems: list[PolicyError], base: Path) -> list[PolicyError]:
    """Make bundle-relative file names relative to the working directory (call once per list)."""
    for problem in problems:
        loc = problem.location
        if loc.file and not Path(loc.file).is_absolute():
            problem.location = msgspec.structs.replace(loc, file=str(base / loc.file))
    return problems


@app.command()
def check(directory: DirArgument, format: FormatOption = Format.text) -> None:
    """Load and statically check policy bundles; print every problem at once.

    Exit 0 when there is no error (warnings allowed), 1 otherwise.
    """
    all_problems: list[PolicyError] = []
    summaries: list[dict[str, Any]] = []
    for path in find_bundles(directory):
        plan, problems, _ = _load_problems(path)
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
        _print_json(
            {
                "ok": errors == 0,
                "bundles": summaries,
                "problems": [p.to_dict() for p in all_problems],
            }
        )
    else:
        for problem in all_problems:
            out.print(_problem_line(problem))
        for s in summaries:
            mark = "[green]ok[/]" if not s["errors"] else "[red]failed[/]"
            version = f" {s['version'][:19]}" if s["version"] else ""
            out.print(
                f"{mark} {esc(s['bundle'])}{version}: "
                f"{s['errors']} error(s), {s['warnings']} warning(s)"
            )
    raise typer.Exit(1 if errors else 0)


@app.command()
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
                    out.print(_problem_line(problem))
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
            out.print(_problem_line(problem))
        for result in report.results:
            if result.passed:
                continue
            out.print(
                f"[red]FAIL[/] {esc(str(path / result.file))}:{result.line} {esc(result.name)}"
            )
            for failure in result.failures:
                out.print(f"    {esc(failure)}")
            _print_explanation(result.decision, indent="    ")
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
        _print_json({"ok": ok, "bundles": report_json})
    raise typer.Exit(0 if ok else 1)


def _print_explanation(decision: Decision, indent: str = "") -> None:
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


@app.command()
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
            err.print(_problem_line(problem))
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
        _print_json(decision.to_dict())
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
    _print_explanation(decision, indent="  ")


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


__all__ = ["app", "main"]


# -- the decision service ------------------------------------------------------------------

DbOption = Annotated[Path, typer.Option("--db", help="The SQLite database file.")]
ServerOption = Annotated[
    str, typer.Option("--server", envvar="JUNCTURE_SERVER", help="The server's base URL.")
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="JUNCTURE_ADMIN_TOKEN", help="An admin key (or its env var)."),
]


class PlainHelp(TyperCommand):
    """Help as plain text in two columns: a command with many options (`serve`) keeps every
    option name whole at 80 columns, where the boxed layout would cut them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rich_markup_mode = None  # typer's own plain formatter


class DecisionLogMode(StrEnum):
    """When a decision's record is committed: after its answer, or before it."""

    batched = "batched"
    durable = "durable"


@app.command(cls=PlainHelp)
def serve(
    db: DbOption = Path("juncture.db"),
    bundle: Annotated[
        Path | None, typer.Option(help="Publish this bundle first if no version is active.")
    ] = Path("examples/journeys"),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="JUNCTURE_PORT", help="Port to listen on.")] = 8900,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    retention_days: Annotated[
        float, typer.Option(help="Keep decision records this many days (0: forever).")
    ] = 30,
    geo_db: Annotated[
        Path | None, typer.Option(help="A MaxMind-format City (or Country) database.")
    ] = None,
    asn_db: Annotated[Path | None, typer.Option(help="A MaxMind-format ASN database.")] = None,
    reputation: Annotated[
        Path | None, typer.Option(help="Reputation lists: labelled CIDRs and ASNs (YAML/JSON).")
    ] = None,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            metavar="CIDR", help="A CIDR of reverse proxies trusted to forward client IPs (repeat)."
        ),
    ] = None,
    connection_ip: Annotated[
        bool,
        typer.Option(help="Take the client IP from the connection when the app reports none."),
    ] = False,
    signals_check_interval: Annotated[
        float,
        typer.Option(help="Seconds between looks at the geo, reputation and transmitters files."),
    ] = 60.0,
    context_max_age: Annotated[
        str, typer.Option(help="How long a session's reported IP counts (e.g. 15m).")
    ] = "15m",
    posture_max_age: Annotated[
        str, typer.Option(help="How long a device posture counts before it is stale.")
    ] = "1h",
    key_file: Annotated[
        Path | None,
        typer.Option(help="The keys sealing secrets at rest (default: <db>.keys, made once)."),
    ] = None,
    outbox: Annotated[
        Path | None,
        typer.Option(help="Development: keep email codes in this file instead of sending them."),
    ] = None,
    smtp_host: Annotated[str | None, typer.Option(help="The SMTP server for email codes.")] = None,
    smtp_port: Annotated[int, typer.Option(help="The SMTP server's port.")] = 587,
    smtp_from: Annotated[
        str, typer.Option(help="The sender address of email codes.")
    ] = "juncture@localhost",
    smtp_starttls: Annotated[
        bool, typer.Option(help="Upgrade the SMTP connection with STARTTLS.")
    ] = True,
    webauthn_rp_id: Annotated[
        str | None, typer.Option(help="The WebAuthn relying party id (a domain).")
    ] = None,
    webauthn_origin: Annotated[
        list[str] | None,
        typer.Option(metavar="ORIGIN", help="An origin passkeys may be used from (repeat)."),
    ] = None,
    issuer: Annotated[
        str | None, typer.Option(help="Juncture's public base URL (the issuer of its events).")
    ] = None,
    transmitters: Annotated[
        Path | None,
        typer.Option(
            help="Trusted Shared Signals transmitters (YAML or JSON; reloaded when it changes; "
            "default: <db>.transmitters.json)."
        ),
    ] = None,
    ssf_allow_private: Annotated[
        bool, typer.Option(help="Allow http, loopback and private event endpoints (dev/tests).")
    ] = False,
    key_rotation_days: Annotated[
        int,
        typer.Option(min=1, help="The inventory flags API and assertion keys older than this."),
    ] = 90,
    unused_days: Annotated[
        int,
        typer.Option(min=1, help="The inventory flags identities unused for this many days."),
    ] = 90,
    decision_log: Annotated[
        DecisionLogMode,
        typer.Option(
            help="batched: records written just after the answers (a crash loses at most "
            "~0.2 s of them); durable: each answer waits for its record's commit."
        ),
    ] = DecisionLogMode.batched,
    max_clock_skew: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="Seconds this node's clock may be off the store's before it refuses to decide.",
        ),
    ] = 2.0,
    max_request_line: Annotated[
        int, typer.Option(min=1, help="Bytes of a request target (path and query); more: 414.")
    ] = Limits().max_request_line,
    max_header_bytes: Annotated[
        int, typer.Option(min=1, help="Bytes of a request's header lines together; more: 431.")
    ] = Limits().max_header_bytes,
    max_headers: Annotated[
        int, typer.Option(min=1, help="Header lines of a request; more: 431.")
    ] = Limits().max_headers,
    hash_concurrency: Annotated[
        int | None,
        typer.Option(
            min=1, help="Password hashes computed at once per worker (default: half the CPUs)."
        ),
    ] = None,
    hash_queue: Annotated[
        int, typer.Option(min=0, help="Requests waiting to hash a password per worker; more: 429.")
    ] = Limits().hash_queue,
    metrics_token_file: Annotated[
        Path | None,
        typer.Option(
            help="A file holding the token /metrics requires as `Authorization: Bearer` "
            "(or set JUNCTURE_METRICS_TOKEN)."
        ),
    ] = None,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="Development mode: a test clock (/admin/v1/clock) moves decision time. "
            "One worker; never in production.",
        ),
    ] = False,
) -> None:
    """Run the decision service on SQLite; publish the example journeys on first start."""
    with _refusal_exits():
        settings = _server_settings(
            db=db, host=host, port=port, workers=workers, retention_days=retention_days,
            geo_db=geo_db, asn_db=asn_db, reputation=reputation, trusted_proxy=trusted_proxy,
            connection_ip=connection_ip, signals_check_interval=signals_check_interval,
            context_max_age=context_max_age, posture_max_age=posture_max_age,
            key_file=key_file, outbox=outbox, smtp_host=smtp_host, smtp_port=smtp_port,
            smtp_from=smtp_from, smtp_starttls=smtp_starttls, webauthn_rp_id=webauthn_rp_id,
            webauthn_origin=webauthn_origin, issuer=issuer, transmitters=transmitters,
            ssf_allow_private=ssf_allow_private, key_rotation_days=key_rotation_days,
            unused_days=unused_days, decision_log=decision_log, max_clock_skew=max_clock_skew,
            max_request_line=max_request_line, max_header_bytes=max_header_bytes,
            max_headers=max_headers, hash_concurrency=hash_concurrency, hash_queue=hash_queue,
            metrics_token_file=metrics_token_file, dev=dev,
        )  # fmt: skip
        runtime = _checked_runtime(settings, host, port)
    _bootstrap(runtime, db, bundle)
    _start_server(settings, host, port, workers)


def _server_settings(
    *,
    db: Path,
    host: str,
    port: int,
    workers: int,
    retention_days: float,
    geo_db: Path | None,
    asn_db: Path | None,
    reputation: Path | None,
    trusted_proxy: list[str] | None,
    connection_ip: bool,
    signals_check_interval: float,
    context_max_age: str,
    posture_max_age: str,
    key_file: Path | None,
    outbox: Path | None,
    smtp_host: str | None,
    smtp_port: int,
    smtp_from: str,
    smtp_starttls: bool,
    webauthn_rp_id: str | None,
    webauthn_origin: list[str] | None,
    issuer: str | None,
    transmitters: Path | None,
    ssf_allow_private: bool,
    key_rotation_days: int,
    unused_days: int,
    decision_log: DecisionLogMode,
    max_clock_skew: float,
    max_request_line: int,
    max_header_bytes: int,
    max_headers: int,
    hash_concurrency: int | None,
    hash_queue: int,
    metrics_token_file: Path | None,
    dev: bool,
) -> ServerSettings:
    """`juncture serve`'s options as the server's settings (`ServerSettings`), each concern's
    settings checked as it is built. Raises ValueError (and JunctureError: a reputation file)."""
    import os

    from juncture.api.settings import METRICS_TOKEN_ENV, ServerSettings, decode, encode
    from juncture.methods.delivery import SmtpSettings
    from juncture.policy.duration import parse_duration
    from juncture.service.authn import AuthnSettings
    from juncture.service.clock import ClockSettings
    from juncture.service.inventory import InventorySettings
    from juncture.service.observe import ObserveSettings
    from juncture.service.transmit import TransmitSettings
    from juncture.signals import EnricherSettings

    if dev and workers != 1:
        raise ValueError("--dev runs one worker (the test clock lives in its process)")
    observe = ObserveSettings(
        enrichers=EnricherSettings(
            trusted_proxies=tuple(trusted_proxy or ()),
            geo_city_db=str(geo_db) if geo_db is not None else None,
            geo_asn_db=str(asn_db) if asn_db is not None else None,
            reputation_file=str(reputation) if reputation is not None else None,
            geo_check_interval=signals_check_interval,
            reputation_check_interval=signals_check_interval,
        ),
        connection_ip=connection_ip,
        context_max_age=float(parse_duration(context_max_age)),
        posture_max_age=float(parse_duration(posture_max_age)),
    )
    # A client assertion's audience is Juncture itself, unless a journey names another.
    defaults: dict[str, dict[str, Any]] = {
        "client_assertion": {"audience": issuer or f"http://{host}:{port}"}
    }
    if webauthn_rp_id is not None:
        defaults["webauthn"] = {
            "rp_id": webauthn_rp_id,
            "origins": list(webauthn_origin or [f"https://{webauthn_rp_id}"]),
        }
    authn = AuthnSettings(
        key_file=str(key_file) if key_file is not None else None,
        outbox=str(outbox) if outbox is not None else None,
        smtp=SmtpSettings(
            host=smtp_host, port=smtp_port, from_address=smtp_from, starttls=smtp_starttls
        ) if smtp_host is not None else None,
        defaults=defaults,
        allow_private=ssf_allow_private,
    )  # fmt: skip
    transmit = TransmitSettings(
        issuer=issuer or f"http://{host}:{port}",
        key_file=str(db) + ".ssf-key.json",
        allow_private=ssf_allow_private,
    )
    limits = Limits(
        max_request_line=max_request_line,
        max_header_bytes=max_header_bytes,
        max_headers=max_headers,
        hash_concurrency=hash_concurrency or default_hash_concurrency(),
        hash_queue=hash_queue,
    )
    # Without --transmitters, `<db>.transmitters.json` (made by the admin API) is the list.
    receive = _transmitters_file(
        transmitters or Path(str(db) + ".transmitters.json"),
        ssf_allow_private,
        signals_check_interval,
        required=transmitters is not None,
    )
    metrics_token = os.environ.get(METRICS_TOKEN_ENV)
    if metrics_token_file is not None:
        metrics_token = _secret_file(metrics_token_file, "metrics token")
    if metrics_token is not None and not metrics_token.strip():
        raise ValueError(f"{METRICS_TOKEN_ENV} is empty")
    settings = ServerSettings(
        db=str(db),
        retention_days=retention_days,
        decision_log=decision_log.value,
        dev=dev,
        metrics_token=metrics_token.strip() if metrics_token is not None else None,
        clock=ClockSettings(max_skew=max_clock_skew),
        observe=observe,
        authn=authn,
        transmit=transmit,
        receive=receive,
        inventory=InventorySettings(key_rotation_days=key_rotation_days, unused_days=unused_days),
        limits=limits,
    )
    return decode(encode(settings))  # as the workers will read them: checked now


@contextmanager
def _refusal_exits() -> Iterator[None]:
    """Settings or a database that cannot be used: what is wrong, and exit 2."""
    from juncture.store.protocols import StoreError

    try:
        yield
    except JunctureError as exc:
        err.print(f"[red]error[/] {esc(str(exc))}")
        for problem in getattr(exc, "errors", ()):  # a reputation file: every problem
            err.print(_problem_line(problem))
        raise typer.Exit(2) from None
    except (ValueError, StoreError) as exc:  # a database it cannot open (read-only, not one)
        err.print(f"[red]error[/] {esc(str(exc))}")
        raise typer.Exit(2) from None


def _checked_runtime(settings: ServerSettings, host: str, port: int) -> Runtime:
    """A runtime over the settings' database, once what the workers will use is checked:
    the port, the database, the observation sources, the transmitters. Raises ValueError,
    StoreError, JunctureError."""
    from juncture.api.server import open_runtime

    busy = _port_busy(host, port)  # the settings are sound: now, before anything is done
    if busy is not None:
        raise ValueError(
            f"cannot listen on {host}:{port}: {busy} (another server? choose a port with "
            "--port or JUNCTURE_PORT)"
        )
    runtime = open_runtime(settings.db, observe=settings.observe, authn=settings.authn)
    runtime.receiver(settings.receive)  # refuses now what the workers could not use
    return runtime


def _bootstrap(runtime: Runtime, db: Path, bundle: Path | None) -> None:
    """The database made ready (migrated, an admin key, the bundle published when no version
    is active), then the runtime closed; exit 1 for a bundle with errors."""
    from juncture.service.setup import bootstrap

    try:
        said = bootstrap(runtime, db, bundle if bundle is not None and bundle.exists() else None)
    except BundleError as exc:
        for problem in exc.errors:
            err.print(_problem_line(problem))
        raise typer.Exit(1) from None
    finally:
        runtime.close()
        runtime.store.close()
    for line in said:
        out.print(esc(line))


def _start_server(settings: ServerSettings, host: str, port: int, workers: int) -> None:
    """Say where the service is and run it: uvicorn's workers build the app from the
    settings, handed to them as one environment variable (their environment, not their
    command line: it may hold the metrics token)."""
    import os

    import uvicorn

    from juncture.api.settings import SETTINGS_ENV, encode

    base, db = f"http://{host}:{port}", settings.db
    out.print(f"Juncture {__version__} on {base}")
    out.print(f"  AuthZEN decision API: {base}/access/v1/evaluation")
    out.print(f"  API description:      {base}/openapi.json  (docs/api.md has examples)")
    out.print(f"  admin key:            {db}.admin-token (create more: juncture admin-key)")
    if settings.dev:
        out.print(f"  development mode:     test clock {base}/admin/v1/clock (never in production)")
    os.environ[SETTINGS_ENV] = encode(settings)
    uvicorn.run(
        "juncture.api.server:build",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        # Client IPs are Juncture's business (--trusted-proxy): uvicorn must not rewrite the
        # peer from forwarding headers on its own.
        proxy_headers=False,
        # uvicorn bounds neither the head nor the body with httptools: this protocol does.
        http="juncture.api.protocol:LimitedHttpToolsProtocol",
    )


def _port_busy(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on now (None: it can), as uvicorn will bind it."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        return f"cannot resolve the address ({exc})"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "the port is in use"
            return exc.strerror or str(exc)
    return None


def _secret_file(path: Path, what: str) -> str:
    """A secret from its file (surrounding whitespace dropped). Raises ValueError."""
    try:
        secret = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {what} from `{path}`: {exc}") from None
    if not secret:
        raise ValueError(f"`{path}` holds no {what}")
    return secret


def _transmitters_file(
    path: Path, allow_private: bool, check_interval: float, required: bool = True
) -> Any:
    """The receiver's settings over a transmitters file (YAML or JSON), which must exist when
    ``required``. Raises ValueError."""
    from juncture.service.receive import ReceiveSettings, read_transmitters

    if required and not path.exists():
        raise ValueError(f"cannot read `{path}`: No such file or directory")
    content = read_transmitters(path)  # refuses now a file that cannot be read
    settings = ReceiveSettings(
        file=str(path), check_interval=check_interval, allow_private=allow_private
    )
    if content.poll_interval is not None:
        settings = msgspec.structs.replace(settings, poll_interval=content.poll_interval)
    return settings


@app.command("admin-key")
def admin_key(
    db: DbOption = Path("juncture.db"),
    name: Annotated[str, typer.Option(help="Who the key is for.")] = "admin",
    scope: Annotated[
        list[str] | None,
        typer.Option(help="read, publish, manage_apps or manage_subjects (repeat; default: all)."),
    ] = None,
) -> None:
    """Create an admin key in the database and print it (shown once)."""
    from juncture.api.server import open_runtime
    from juncture.service.setup import ALL_SCOPES, create_admin

    scopes = tuple(scope or ALL_SCOPES)
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        err.print(
            f"[red]error[/] unknown scope `{esc(unknown[0])}`: the scopes are "
            + ", ".join(ALL_SCOPES)
        )
        raise typer.Exit(2)
    runtime = open_runtime(db)
    try:
        sys.stdout.write(create_admin(runtime, name, scopes) + "\n")
    finally:
        runtime.close()
        runtime.store.close()


def _client(server: str, token: str | None) -> Any:
    """An HTTP client for the admin API: a connection that fails (refused, timed out, TLS) is
    one line naming the URL, the cause and a hint, and exit 2, for every client command."""
    import httpx

    if not token:
        err.print("[red]error[/] give an admin key: --token or JUNCTURE_ADMIN_TOKEN")
        raise typer.Exit(2)

    class Client(httpx.Client):
        def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
            try:
                return super().send(request, **kwargs)
            except (httpx.TransportError, httpx.InvalidURL) as exc:
                err.print(Text(f"error {_transport_error(str(request.url), exc)}"))
                raise typer.Exit(2) from None

    import os

    timeout = os.environ.get(CLIENT_TIMEOUT_ENV, "")
    try:
        seconds = float(timeout) if timeout else CLIENT_TIMEOUT
        if not 0 < seconds < 86400:
            raise ValueError
    except ValueError:
        err.print(f"[red]error[/] {CLIENT_TIMEOUT_ENV} must be seconds, more than 0")
        raise typer.Exit(2) from None
    try:
        return Client(
            base_url=server, headers={"Authorization": f"Bearer {token}"}, timeout=seconds
        )
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        err.print(Text(f"error {_transport_error(server, exc)}"))
        raise typer.Exit(2) from None


#: Seconds a client command waits for the server to connect or answer (or this variable).
CLIENT_TIMEOUT = 30.0
CLIENT_TIMEOUT_ENV = "JUNCTURE_CLIENT_TIMEOUT"


def _transport_error(url: str, exc: Exception) -> str:
    """One line for a request that never got an answer: the URL, the cause, a hint."""
    import ssl

    import httpx

    causes: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(causes) < 10:
        causes.append(seen)
        seen = seen.__cause__ or seen.__context__
    tls = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
    if tls is not None:
        reason = getattr(tls, "reason", None) or getattr(tls, "verify_message", None) or tls
        return (
            f"{url}: TLS failed ({str(reason).lower()}); hint: is the server https with a "
            "certificate this machine trusts? a local `juncture serve` speaks http://"
        )
    if isinstance(exc, httpx.TimeoutException):
        return (
            f"{url}: no answer in time (timed out); hint: is the server up and reachable? "
            f"(--server or JUNCTURE_SERVER; {CLIENT_TIMEOUT_ENV} sets the wait)"
        )
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL, TypeError, ValueError)):
        return f"{url}: not a server URL ({exc}); hint: give --server http://HOST:PORT"
    if isinstance(exc, httpx.ConnectError):
        oserror = next((c for c in causes if isinstance(c, OSError) and c.strerror), None)
        cause = (oserror.strerror if oserror else str(exc)) or "cannot connect"
        return (
            f"cannot reach {url}: {cause.lower()}; hint: is `juncture serve` running there? "
            "(--server or JUNCTURE_SERVER)"
        )
    return f"{url}: {exc or type(exc).__name__}; hint: is it a Juncture server? (--server)"


def _call(response: Any) -> Any:
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = None
    if not isinstance(body, dict):
        err.print(
            Text(
                f"error {response.url}: answered {response.status_code} with a body that is "
                "not Juncture's JSON; hint: is --server the Juncture server's URL?"
            )
        )
        raise typer.Exit(2)
    if response.status_code >= 400:
        err.print(
            f"[red]error[/] {response.status_code} {esc(str(body.get('code')))}: "
            f"{esc(str(body.get('detail')))}"
        )
        for problem in body.get("problems", []):
            err.print(
                f"  {esc(problem['file'])}:{problem['line']}:{problem['col']}: "
                f"{problem['code']}: {esc(problem['message'])}"
            )
        raise typer.Exit(1)
    return body


AllowRemovalOption = Annotated[
    bool,
    typer.Option(
        "--allow-removal",
        help="Activate even if it removes journeys or checkpoints used in the last 24 h.",
    ),
]


@app.command()
def publish(
    directory: DirArgument,
    server: ServerOption = "http://127.0.0.1:8900",
    token: TokenOption = None,
    comment: Annotated[str, typer.Option(help="Why this version.")] = "",
    activate: Annotated[bool, typer.Option(help="Make it the active version.")] = True,
    allow_removal: AllowRemovalOption = False,
) -> None:
    """Upload a bundle as a new version, show what it changes, and (by default) publish it.

    Publishing is refused when the version removes journeys, checkpoints or app routes that
    decisions used in the last 24 hours or live sessions use (unless --allow-removal).
    """
    from juncture.service.setup import tree_files

    try:
        files = tree_files(directory)
    except BundleError as exc:
        for problem in exc.errors:
            err.print(_problem_line(problem))
        raise typer.Exit(1) from None
    import base64

    payload = {
        "files_base64": {n: base64.b64encode(c).decode() for n, c in files.items()},
        "comment": comment,
        "activate": False,
    }
    with _client(server, token) as client:
        body = _call(client.post("/admin/v1/versions", json=payload))
        version_id = body["id"]
        stored = "" if body["created"] else " (already stored)"
        changes = body.get("changes") or {}
        if changes.get("from") == version_id:
            out.print(f"version {version_id} is already active{stored}")
            return
        _print_changes(changes)
        if activate:
            _activate(client, version_id, allow_removal)
    state = "published" if activate else "stored"
    out.print(f"{state} version {version_id}{stored}")


def _print_changes(changes: dict[str, Any]) -> None:
    """What a version changes, a line per journey, checkpoint or method."""
    since = changes.get("from")
    out.print(f"changes from {since}:" if since else "changes (no version was active):")
    lines = 0
    for sign, key in (("+", "added"), ("-", "removed"), ("~", "changed")):
        for name in changes.get("journeys", {}).get(key, []):
            out.print(Text(f"  {sign} journey {name}"))
            lines += 1
        for item in changes.get("checkpoints", {}).get(key, []):
            out.print(Text(f"  {sign} checkpoint {item['journey']}: {item['checkpoint']}"))
            lines += 1
        for item in changes.get("methods", {}).get(key, []):
            out.print(Text(f"  {sign} method {item['journey']}: {item['method']}"))
            lines += 1
    if not lines:
        out.print("  no journey, checkpoint or method changes")


def _activate(client: Any, version_id: str, allow_removal: bool) -> str:
    """Activate a stored version (its id or a unique prefix): its full id. A refusal for
    removals in use prints each and exits 1; an unknown or ambiguous id: one line, exit 2."""
    response = client.post(
        f"/admin/v1/versions/{version_id}/activate", json={"allow_removal": allow_removal}
    )
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if response.status_code == 409 and body.get("code") == "version.removes_used":
        err.print(f"[red]refused[/] version {esc(version_id)} removes what is in use:")
        for r in body.get("removals", []):
            what = f"checkpoint {r['journey']}: {r['checkpoint']}"
            if r["kind"] == "journey":
                what = f"journey {r['journey']}"
            elif r["kind"] == "route":
                what = f"journey {r['journey']} for {', '.join(r['apps'])}"
            err.print(
                Text(
                    f"  - {what} (apps: {', '.join(r['apps']) or 'none'}; "
                    f"{r['decisions_24h']} decision(s) in 24 h, "
                    f"{r['active_sessions']} live session(s))"
                )
            )
        err.print("the version is stored, not active; to go ahead: --allow-removal")
        raise typer.Exit(1)
    if response.status_code in (404, 409) and body.get("code") in (
        "version.not_found",
        "version.ambiguous",
    ):
        matches = body.get("matches") or []
        more = f" ({', '.join(m[:19] + '…' for m in matches)})" if matches else ""
        err.print(f"[red]error[/] {esc(str(body.get('detail')))}{esc(more)}")
        raise typer.Exit(2)
    return str(_call(response)["active"])


@app.command()
def versions(server: ServerOption = "http://127.0.0.1:8900", token: TokenOption = None) -> None:
    """List the server's policy versions, newest first."""
    with _client(server, token) as client:
        body = _call(client.get("/admin/v1/versions"))
    for v in body["versions"]:
        mark = "*" if v["active"] else " "
        line = Text(f"{mark} {v['id']}  {v['created_at']}  {v['author']}")
        if v.get("comment"):
            line.append(f"  {v['comment']}")
        out.print(line, overflow="ignore", crop=False)


@app.command()
def rollback(
    version_id: Annotated[
        str, typer.Argument(help="The version to make active again (any unique prefix).")
    ],
    server: ServerOption = "http://127.0.0.1:8900",
    token: TokenOption = None,
    allow_removal: AllowRemovalOption = False,
) -> None:
    """Make an earlier version the active one."""
    with _client(server, token) as client:
        version_id = _activate(client, version_id, allow_removal)
    out.print(f"active version is now {esc(version_id)}")


@app.command()
def sweep(
    server: ServerOption = "http://127.0.0.1:8900",
    token: TokenOption = None,
    start: Annotated[bool, typer.Option(help="Start a new sweep (else: the latest).")] = False,
    wait: Annotated[bool, typer.Option(help="Follow it to the end with a progress bar.")] = True,
) -> None:
    """Re-check sessions with standing outcomes against the active version, and watch it."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with _client(server, token) as client:
        if start:
            run = _call(client.post("/admin/v1/sweeps"))
        else:
            runs = _call(client.get("/admin/v1/sweeps"))["sweeps"]
            if not runs:
                out.print("no sweep has run yet")
                return
            run = runs[0]
        out.print(f"sweep {run['id']} ({esc(run['reason'])}) against {run['version'][:19]}")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=out, disable=not wait) as bar:
            task = bar.add_task("sessions", total=max(run["total"], 1))
            while wait and run["status"] == "running":
                bar.update(task, completed=run["processed"], total=max(run["total"], 1))
                time.sleep(0.2)
                run = _call(client.get(f"/admin/v1/sweeps/{run['id']}"))
            bar.update(task, completed=max(run["processed"], run["total"]))
    skipped = run.get("skipped", 0)
    unread = f", {skipped} skipped (corrupt records: see the server log)" if skipped else ""
    out.print(
        f"{run['status']}: {run['processed']} sessions checked, {run['changed']} changed{unread}"
    )


@app.command()
def wait(
    server: Annotated[
        str,
        typer.Option("--url", "--server", envvar="JUNCTURE_SERVER", help="The server's base URL."),
    ] = "http://127.0.0.1:8900",
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait at most.")] = 30.0,
) -> None:
    """Wait until the server answers /healthz as ready: run it after `juncture serve &`.

    Exit 0 once it is ready; 2 when it is not ready in time (one line says why).
    """
    import time

    import httpx

    url = server.rstrip("/") + "/healthz"
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            response = httpx.get(url, timeout=min(max(left, 0.05), 2.0))
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            last = _transport_error(url, exc)
            if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
                break  # waiting does not mend a URL
        else:
            try:
                body = response.json()
            except ValueError:
                body = None
            if response.status_code == 200 and isinstance(body, dict):
                version = body.get("version")
                out.print(f"ready {esc(server)}" + (f" (version {version})" if version else ""))
                return
            code = body.get("code") or body.get("status") if isinstance(body, dict) else None
            last = f"{url} answered {response.status_code}" + (f" {code}" if code else "")
        time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))
    err.print(
        Text(
            f"error not ready after {timeout:g} s: {last}; hint: is `juncture serve` running "
            "(see its output) on this URL? (--url or JUNCTURE_SERVER)"
        )
    )
    raise typer.Exit(2)


class IdentityType(StrEnum):
    service = "service"
    agent = "agent"


def _age(days: int | None) -> str:
    return "" if days is None else f"{days}d"


def _when(moment: str | None) -> str:
    from datetime import datetime

    if not moment:
        return "never"
    return datetime.fromisoformat(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M")


@app.command()
def identities(
    server: ServerOption = "http://127.0.0.1:8900",
    token: TokenOption = None,
    type: Annotated[
        IdentityType | None, typer.Option("--type", help="Only services or only agents.")
    ] = None,
    flag: Annotated[
        str | None,
        typer.Option(
            "--flag",
            help="Only identities with this flag: no_owner, unused, key_too_old, "
            "grants_outlive_task.",
        ),
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the identities as JSON.")] = False,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1000, help="Identities per request (page).")
    ] = 100,
) -> None:
    """The inventory of services and agents: owners, credentials, sessions, grants, flags."""
    params: dict[str, Any] = {"limit": limit}
    if type is not None:
        params["type"] = type.value
    if flag is not None:
        params["flag"] = flag
    found: list[dict[str, Any]] = []
    with _client(server, token) as client:
        while True:
            body = _call(client.get("/admin/v1/identities", params=params))
            found += body["identities"]
            if not body.get("next"):
                break
            params["after"] = body["next"]
    if json:
        _print_json({"identities": found})
        return
    if not found:
        out.print("no identities" + (f" flagged {esc(flag)}" if flag else ""))
        return
    table = Table()
    for name in ("type", "id", "owner", "credentials", "last used (UTC)"):
        table.add_column(name, justify="right" if name == "credentials" else "left")
    for name in ("sessions", "grants", "decisions 24h"):
        table.add_column(name, justify="right")
    table.add_column("flags")
    for item in found:
        credentials = item["credentials"]
        oldest = max((c["age_days"] for c in credentials), default=None)
        table.add_row(
            Text(item["type"]),
            Text(item["id"]),
            Text(item["owner"]) if item["owner"] else Text("none", style="red"),
            Text(f"{len(credentials)}" + (f" (oldest {_age(oldest)})" if credentials else "")),
            Text(_when(item["last_used_at"])),
            str(item["active_sessions"]),
            str(len(item["live_grants"])),
            str(item["decisions_24h"]),
            Text(" ".join(item["flags"]), style="red"),
        )
    # A terminal: its width; piped: as wide as the rows need (a line per identity, to grep).
    wide = out if out.is_terminal else Console(highlight=False, width=max(out.width, 240))
    wide.print(table)
    flagged = sum(1 for item in found if item["flags"])
    out.print(f"{len(found)} identities, {flagged} flagged")


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
