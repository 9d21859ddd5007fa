"""`juncture serve`: its options become the server's settings, checked before
anything starts; then the database is made ready and the server run."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import typer
from rich.markup import escape as esc
from typer.core import TyperCommand

from juncture import __version__
from juncture.api.limits import Limits, default_hash_concurrency
from juncture.cli.options import DbOption
from juncture.cli.output import err, out, problem_line
from juncture.errors import BundleError, JunctureError

if TYPE_CHECKING:
    from juncture.api.settings import ServerSettings
    from juncture.service.runtime import Runtime


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


class StoreCallsMode(StrEnum):
    """Where requests call the store: as the store asks, on the event loop, in threads, or
    (decisions) on the loop until they would wait on the network."""

    auto = "auto"
    loop = "loop"
    threads = "threads"
    loop_first = "loop-first"


def serve(
    db: DbOption = "juncture.db",
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
    cache_sessions: Annotated[
        int,
        typer.Option(
            min=0,
            help="Sessions each worker keeps in memory at most (about 2 KiB each; when full, "
            "the one kept longest goes; 0: every decision reads its session from the store). "
            "Kept exact: SQLite by the file's change log, PostgreSQL by its notifications.",
        ),
    ] = 20_000,
    db_pool_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="PostgreSQL connections each worker keeps at most (default 16; ignored for "
            "SQLite). A request finding none free within 2 s is answered 503.",
        ),
    ] = None,
    store_calls: Annotated[
        StoreCallsMode,
        typer.Option(
            envvar="JUNCTURE_STORE_CALLS",
            help="Where requests call the store: auto (a local file on the event loop; a "
            "database server: decisions on the event loop until one would wait on the "
            "database, then in a worker thread, other requests in worker threads), loop, "
            "threads or loop-first.",
        ),
    ] = StoreCallsMode.auto,
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
    publish_gate: Annotated[
        list[str] | None,
        typer.Option(
            "--publish-gate",
            metavar="RULE",
            help="Activate a version never active before only if a replay of the recorded "
            "decisions with it breaks no such rule (repeat; `allow->deny>1%`, `changed>100`): "
            "refused 409 version.rehearsal_failed otherwise.",
        ),
    ] = None,
    publish_gate_since: Annotated[
        str, typer.Option(help="The publish gate replays the decisions of this long (`24h`).")
    ] = "24h",
    publish_gate_limit: Annotated[
        int, typer.Option(min=1, help="The publish gate replays the newest this many at most.")
    ] = 100_000,
    shadow_record_rate: Annotated[
        float,
        typer.Option(
            min=0,
            help="A shadow version's differences recorded a second on a worker at most; past "
            "it they are counted, not recorded (0: no limit).",
        ),
    ] = 200.0,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="Development mode: a test clock (/admin/v1/clock) moves decision time. "
            "One worker; never in production.",
        ),
    ] = False,
) -> None:
    """Run the decision service on SQLite or PostgreSQL; publish the example journeys on
    first start."""
    from juncture.service.database import is_postgres_url

    db = db if is_postgres_url(db) else str(Path(db))
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
            unused_days=unused_days, decision_log=decision_log, store_calls=store_calls,
            db_pool_size=db_pool_size, cache_sessions=cache_sessions,
            max_clock_skew=max_clock_skew,
            max_request_line=max_request_line, max_header_bytes=max_header_bytes,
            max_headers=max_headers, hash_concurrency=hash_concurrency, hash_queue=hash_queue,
            metrics_token_file=metrics_token_file, dev=dev, publish_gate=publish_gate,
            publish_gate_since=publish_gate_since, publish_gate_limit=publish_gate_limit,
            shadow_record_rate=shadow_record_rate,
        )  # fmt: skip
        runtime = _checked_runtime(settings, host, port)
    _bootstrap(runtime, db, bundle)
    _start_server(settings, host, port, workers)


def _server_settings(
    *,
    db: str,
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
    store_calls: StoreCallsMode,
    db_pool_size: int | None,
    cache_sessions: int,
    max_clock_skew: float,
    max_request_line: int,
    max_header_bytes: int,
    max_headers: int,
    hash_concurrency: int | None,
    hash_queue: int,
    metrics_token_file: Path | None,
    dev: bool,
    publish_gate: list[str] | None = None,
    publish_gate_since: str = "24h",
    publish_gate_limit: int = 100_000,
    shadow_record_rate: float = 200.0,
) -> ServerSettings:
    """`juncture serve`'s options as the server's settings (`ServerSettings`), each concern's
    settings checked as it is built. Raises ValueError (and JunctureError: a reputation file)."""
    import os

    from juncture.api.settings import METRICS_TOKEN_ENV, ServerSettings, decode, encode
    from juncture.methods.delivery import SmtpSettings
    from juncture.policy.duration import parse_duration
    from juncture.service.authn import AuthnSettings
    from juncture.service.clock import ClockSettings
    from juncture.service.database import files_base
    from juncture.service.inventory import InventorySettings
    from juncture.service.observe import ObserveSettings
    from juncture.service.transmit import TransmitSettings
    from juncture.signals import EnricherSettings

    if dev and workers != 1:
        raise ValueError("--dev runs one worker (the test clock lives in its process)")
    gate = None
    if publish_gate:
        from juncture.service.rehearsals import PublishGate

        gate = PublishGate(rules=list(publish_gate), since=publish_gate_since,
                           limit=publish_gate_limit)  # fmt: skip
        gate.check()  # ReplayError (a JunctureError): said, exit 2
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
        key_file=str(files_base(db)) + ".ssf-key.json",
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
        transmitters or Path(str(files_base(db)) + ".transmitters.json"),
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
        publish_gate=gate,
        shadow_record_rate=shadow_record_rate,
        store_calls=store_calls.value,
        db_pool_size=db_pool_size,
        cache_sessions=cache_sessions,
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
            err.print(problem_line(problem))
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


def _bootstrap(runtime: Runtime, db: str, bundle: Path | None) -> None:
    """The database made ready (migrated, an admin key, the bundle published when no version
    is active), then the runtime closed; exit 1 for a bundle with errors."""
    from juncture.service.setup import bootstrap

    try:
        said = bootstrap(runtime, db, bundle if bundle is not None and bundle.exists() else None)
    except BundleError as exc:
        for problem in exc.errors:
            err.print(problem_line(problem))
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
    from juncture.service.database import files_base

    base, db = f"http://{host}:{port}", files_base(settings.db)
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
