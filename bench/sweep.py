"""Sessions re-checked per second by the sweep, on SQLite, with traffic running.

Setup: a SQLite file holding --sessions active sessions (default 100,000), each with the
standing outcomes a day of use leaves (the `login` allow with a ttl and a `dashboard` allow with
a ttl), a remembered IP and a proof; the journey below is published, then a stricter version is
published: off the corporate network, dashboards are denied. The sessions are written straight
into the file in one transaction (setting up is not what is measured).

Measured: one sweep run over every session (the product's `Sweeper`, the same batches the
background worker runs), while another process (a second worker on the same file) makes
session-bound decisions at --traffic per second (0: as fast as it can; its rate is reported
too). The run must change exactly the sessions off the corporate network (a third of them):
checked after it.

With ``--backend postgres`` the same sessions are written into a PostgreSQL database (a server
started for the run, as the tests start it: tests/postgres.py) and --nodes processes (default
2), each its own runtime, share the publish's run through the sweep's leases, with the traffic
process beside them (``--no-traffic``: without it); the combined rate is reported (section
`sweep-postgres-N-nodes`) and the sessions stored again are checked to be exactly the expected
ones, each stored once.

    .venv/bin/python bench/sweep.py [--sessions 100000] [--rounds 3] [--traffic 5000]
        [--backend sqlite|postgres] [--nodes 2] [--no-traffic] [--no-write]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
import _common as common  # noqa: E402
import msgspec  # noqa: E402

from juncture.api import heap  # noqa: E402
from juncture.api.server import open_runtime  # noqa: E402
from juncture.records import App, Observed, Session, Standing, StoredProof  # noqa: E402
from juncture.service.ids import new_id  # noqa: E402

V1 = """\
journey: desk
applies_to: [desk]
methods:
  password: {kind: password}
networks:
  corporate: [10.0.0.0/8]
guard:
  - {if: "signals.account_disabled", revoke: account_disabled}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {scopes: [desk], ttl: 8h}}]
  dashboard: [{require: {aal: 1}}, {allow: {scopes: ["dashboard:read"], ttl: 8h}}]
  "*": [{deny: unknown_action}]
"""
V2 = V1.replace(
    """  dashboard: [{require: {aal: 1}}, {allow: {scopes: ["dashboard:read"], ttl: 8h}}]""",
    """  dashboard:
    - if: "network.segment != 'corporate'"
      deny: off_network
    - allow: {scopes: ["dashboard:read"], ttl: 8h}""",
)


def populate(db: str | Path, count: int) -> tuple[str, str]:
    """Publish V1, make the app, write ``count`` sessions; (app id, a corporate session id).

    On SQLite the rows go straight into the file with sqlite3; on PostgreSQL (``db`` a
    ``postgresql://`` URL) with psycopg's COPY, the body encoded by the backend's own codec.
    """
    runtime = open_runtime(db)
    try:
        version, problems, _ = runtime.policies.upload({"desk.yaml": V1.encode()}, author="bench")
        assert version is not None, problems
        runtime.policies.activate(version, by="bench")
        now = datetime.now(UTC)
        app = App(id=new_id("app"), name="desk", created_at=now, assertable_methods=("password",))
        runtime.store.put_app(app)
    finally:
        runtime.close()
        runtime.store.close()
    postgres = str(db).startswith("postgresql://")
    if postgres:
        from juncture.store.postgres.rows import encode as pg_encode

        encode = pg_encode
    else:
        encode = msgspec.json.Encoder().encode
    rows = []
    first = ""
    for i in range(count):
        session = bench_session(i, app.id, now, version)
        if i % 3 and not first:
            first = session.id
        micros = int((now - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
        rows.append((session.id, session.handle, app.id, session.subject_id, "active", micros,
                     0, encode(session)))  # fmt: skip
    columns = "id, handle, app, subject_id, status, started_at, revision, body"
    if postgres:
        import psycopg

        with psycopg.connect(str(db)) as conn:
            with conn.cursor() as cur, cur.copy(f"COPY sessions ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            conn.execute("ANALYZE sessions")
    else:
        with sqlite3.connect(db) as conn:
            conn.executemany(
                f"INSERT INTO sessions ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
            conn.execute("ANALYZE")
    return app.id, first


def off_network(i: int) -> bool:
    """Session ``i`` is off the corporate network (a third of them): V2 changes it."""
    return i % 3 == 0


def bench_session(i: int, app_id: str, now: datetime, version: str) -> Session:
    ip = f"198.51.100.{i % 250}" if off_network(i) else f"10.{i % 250}.{i // 250 % 250}.7"
    return Session(
        id=f"s_{i:08d}",
        app=app_id,
        subject_type="user",
        subject_id=f"user{i}",
        started_at=now,
        updated_at=now,
        handle=f"h{i}",
        proofs=(StoredProof(method="password", at=now, asserted_by=app_id),),
        observed=Observed(ip=ip, ip_at=now),
        standing={
            "login": Standing(outcome="allow", scopes=("desk",), decided_at=now,
                              expires_at=now + timedelta(hours=8), version=version),
            "dashboard": Standing(outcome="allow", scopes=("dashboard:read",), decided_at=now,
                                  expires_at=now + timedelta(hours=8), version=version),
        },
    )  # fmt: skip


def decide_forever(
    db: str, app_id: str, session_id: str, stop: Any, counter: Any, rate: float
) -> None:
    """The traffic: another worker process deciding for a session, ``rate`` decisions a second
    (0: as fast as it can)."""
    runtime = open_runtime(db)
    try:
        app = runtime.store.get_app(app_id)
        assert app is not None
        request = {"resource": {"type": "page", "id": "dashboard"}}
        # the plan compiled
        runtime.decisions.decide(app, "dashboard", request, session_id=session_id)
        heap.settle()  # as a server worker does once started
        started = time.perf_counter()
        done = 0
        while not stop.is_set():
            runtime.decisions.decide(app, "dashboard", request, session_id=session_id)
            done += 1
            with counter.get_lock():
                counter.value += 1
            if rate:
                ahead = done / rate - (time.perf_counter() - started)
                if ahead > 0:
                    time.sleep(ahead)
    finally:
        runtime.close()
        runtime.store.close()


def one_round(count: int, rate: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="jct-sweep-") as name:
        db = Path(name) / "j.db"
        app_id, corporate = populate(db, count)
        runtime = open_runtime(db)
        try:
            version, _, _ = runtime.policies.upload({"desk.yaml": V2.encode()}, author="bench")
            assert version is not None
            runtime.policies.activate(version, by="bench")
            app = runtime.store.get_app(app_id)
            assert app is not None
            stop = multiprocessing.Event()
            counter = multiprocessing.Value("q", 0)
            traffic = multiprocessing.Process(
                target=decide_forever, args=(str(db), app_id, corporate, stop, counter, rate)
            )
            heap.settle()  # as `juncture serve` does once started (api/heap.py)
            traffic.start()
            while counter.value == 0:  # the other worker is serving before the sweep starts
                time.sleep(0.01)
            run = runtime.sweeper.start("publish", f"publish {version}")  # as a publish does
            served = counter.value
            started = time.perf_counter()
            run = runtime.sweeper.run(run)
            elapsed = time.perf_counter() - started
            served = counter.value - served
            stop.set()
            traffic.join(30)
            expected = count // 3 + (1 if count % 3 else 0)
            assert run.processed == count, run
            assert run.changed == expected, (run.changed, expected)
            return {
                "rate": count / elapsed,
                "seconds": elapsed,
                "traffic": served / elapsed,
                "changed": run.changed,
            }
        finally:
            runtime.close()
            runtime.store.close()


def sweep_node(db: str, run_id: str, ready: Any, go: Any, results: Any) -> None:
    """A node of the shared sweep: its own runtime over the database, it sweeps the run with
    the others (batches taken under leases) to its end; puts (sessions it swept, batches,
    when it saw the run done on the monotonic clock, which all processes share on Linux)."""
    runtime = open_runtime(db)
    try:
        sweeper = runtime.sweeper
        swept = {"rows": 0, "batches": 0}
        original = sweeper._sweep

        def counting(run: Any, page: Any) -> int:
            swept["rows"] += page.rows
            swept["batches"] += 1
            return original(run, page)

        sweeper._sweep = counting  # type: ignore[method-assign]
        run = runtime.store.get_sweep(run_id)
        assert run is not None
        runtime.policies.active()  # the plan compiled before the clock starts
        heap.settle()
        ready.put(True)
        go.wait()
        cpu = time.process_time()
        run = sweeper.run(run)
        done = time.monotonic()
        cpu = time.process_time() - cpu
        assert run.status == "done", run
        results.put((swept["rows"], swept["batches"], done, cpu))
    finally:
        runtime.close()
        runtime.store.close()


def server_cpu(server: Any) -> float:
    """CPU seconds the PostgreSQL server's processes used so far: the postmaster's own and the
    backends it reaped (its children's times), and its live children's."""
    clock = os.sysconf("SC_CLK_TCK")
    postmaster = int((Path(server.data) / "postmaster.pid").read_text().split()[0])
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if pid == postmaster:
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        elif ppid == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / clock


def changed_sessions(url: str, traffic_session: str) -> tuple[set[str], int]:
    """The ids of the sessions stored again, and the highest revision of any, but for the
    session the traffic decides for (its own decisions store it)."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT id, revision FROM sessions WHERE revision > 0 AND id <> %s",
                            (traffic_session,)).fetchall()  # fmt: skip
    return {row[0] for row in rows}, max((int(row[1]) for row in rows), default=0)


def one_round_postgres(server: Any, count: int, rate: float | None, nodes: int) -> dict[str, Any]:
    """A round on a fresh database of ``server``: ``nodes`` processes share the run (and one
    more makes the traffic unless ``rate`` is None; 0: as fast as it can)."""
    url = server.create_database()
    app_id, corporate = populate(url, count)
    runtime = open_runtime(url)
    try:
        version, _, _ = runtime.policies.upload({"desk.yaml": V2.encode()}, author="bench")
        assert version is not None
        runtime.policies.activate(version, by="bench")
        run = runtime.sweeper.start("publish", f"publish {version}")  # as a publish does
    finally:
        runtime.close()
        runtime.store.close()
    ready, results = multiprocessing.Queue(), multiprocessing.Queue()
    go, stop = multiprocessing.Event(), multiprocessing.Event()
    counter = multiprocessing.Value("q", 0)
    workers = [
        multiprocessing.Process(target=sweep_node, args=(url, run.id, ready, go, results))
        for _ in range(nodes)
    ]
    traffic = None
    if rate is not None:
        traffic = multiprocessing.Process(
            target=decide_forever, args=(url, app_id, corporate, stop, counter, rate)
        )
        traffic.start()
        while counter.value == 0:
            time.sleep(0.01)
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=120)
    served = counter.value
    database_cpu = server_cpu(server)
    started = time.monotonic()
    go.set()
    ends = [results.get(timeout=600) for _ in workers]
    elapsed = max(end for _, _, end, _ in ends) - started
    database_cpu = server_cpu(server) - database_cpu
    served = counter.value - served
    stop.set()
    for process in [*workers, *([traffic] if traffic else [])]:
        process.join(60)
        assert process.exitcode == 0, process
    runtime = open_runtime(url)
    try:
        final = runtime.store.get_sweep(run.id)
    finally:
        runtime.close()
        runtime.store.close()
    assert final is not None and final.status == "done", final
    expected = {f"s_{i:08d}" for i in range(count) if off_network(i)}
    assert final.processed == count, final
    assert final.changed == len(expected), (final.changed, len(expected))
    ids, top = changed_sessions(url, corporate)
    assert ids == expected, f"{len(ids ^ expected)} sessions changed that should not, or not"
    assert top == 1, f"a session was stored twice (revision {top})"
    assert sum(rows for rows, _, _, _ in ends) == count, ends
    return {
        "rate": count / elapsed,
        "seconds": elapsed,
        "traffic": served / elapsed,
        "changed": final.changed,
        "shares": [rows for rows, _, _, _ in ends],
        "batches": [batches for _, batches, _, _ in ends],
        "node_us": sum(cpu for _, _, _, cpu in ends) / count * 1e6,
        "database_us": database_cpu / count * 1e6,
    }


def main_postgres(args: argparse.Namespace) -> None:
    sys.path.append(str(_HERE.parent / "tests"))
    from postgres import PostgresServer

    info = common.machine()
    server = PostgresServer()
    server.start()
    rounds = []
    here = Path.cwd()
    scratch = tempfile.mkdtemp(prefix="jct-sweep-pg-")
    os.chdir(scratch)  # the runtimes' key files of a postgresql:// store are made in the cwd
    try:
        for i in range(args.rounds):
            rate = None if args.no_traffic else args.traffic
            result = one_round_postgres(server, args.sessions, rate, args.nodes)
            rounds.append(result)
            print(f"[bench] round {i + 1}: {result['rate']:,.0f} sessions/s "
                  f"({result['seconds']:.1f} s), shares {result['shares']}, traffic "
                  f"{result['traffic']:,.0f} decisions/s, CPU µs per session: nodes "
                  f"{result['node_us']:.1f}, PostgreSQL {result['database_us']:.1f}",
                  file=sys.stderr)  # fmt: skip
    finally:
        os.chdir(here)
        shutil.rmtree(scratch, ignore_errors=True)
        server.stop()
        server.remove()
    rate = statistics.median(r["rate"] for r in rounds)
    traffic = statistics.median(r["traffic"] for r in rounds)
    node_us = statistics.median(r["node_us"] for r in rounds)
    database_us = statistics.median(r["database_us"] for r in rounds)
    database_note = "" if args.no_traffic else " (the traffic's backend too)"
    met = "**met**" if rate >= 20_000 else "**not met**"
    load = (
        f"while one more process makes session-bound decisions at {args.traffic:,.0f}/s"
        if not args.no_traffic
        else "with no other traffic"
    )
    lines = [
        "## The sweep on PostgreSQL, nodes sharing the run (bench/sweep.py --backend postgres)",
        "",
        *common.machine_lines(info, common.command()),
        "",
        f"{args.sessions:,} active sessions in a PostgreSQL database (a server started for the "
        "run as the tests start it, `tests/postgres.py`: fsync off; written with COPY, the body "
        "in the backend's own encoding), as in the SQLite section; the stricter version is "
        f"published and its run is swept by {args.nodes} nodes (processes, each its own "
        "runtime and connection pool, the product's `Sweeper.run`: batches taken under leases "
        f"stored in the run) {load}. The time is from the start signal to the last node "
        "seeing the run done. Checked after each run: the run counts every session once, and "
        "the sessions stored again are exactly the third off the network "
        f"({rounds[0]['changed']:,.0f}), each once (revision 1). PostgreSQL, the nodes and the "
        "traffic share the machine's CPUs (another developer's tests may run too): medians.",
        "",
        "| | median | per round |",
        "|---|---:|---|",
        row("sessions re-checked / s, nodes combined", rate, rounds, "rate", ",.0f"),
        "| sessions swept per node | | "
        + "; ".join(" + ".join(f"{n:,}" for n in r["shares"]) for r in rounds)
        + " |",
        row("traffic during the sweep, decisions / s", traffic, rounds, "traffic", ",.0f"),
        row("CPU µs per session swept: the nodes", node_us, rounds, "node_us", ".1f"),
        row(f"CPU µs per session swept: PostgreSQL{database_note}", database_us, rounds,
            "database_us", ".1f"),
        "",
        f"Target at least 20,000 sessions/s combined: {met} ({rate:,.0f}).",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        alone = "-no-traffic" if args.no_traffic else ""
        common.update_section(f"sweep-postgres-{args.nodes}-nodes{alone}", body)


def row(label: str, median: float, rounds: list[dict[str, Any]], key: str, fmt: str) -> str:
    """A table row: the label, the median, and each round's figure."""
    figures = ", ".join(format(r[key], fmt) for r in rounds)
    return f"| {label} | {format(median, fmt)} | {figures} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--traffic",
        type=float,
        default=5000.0,
        help="decisions/s the other worker makes during the sweep (0: as fast as it can)",
    )
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--nodes", type=int, default=2, help="PostgreSQL: nodes sharing the run")
    parser.add_argument("--no-traffic", action="store_true", help="PostgreSQL: sweep alone")
    args = parser.parse_args()
    if args.backend == "postgres":
        main_postgres(args)
        return
    info = common.machine()
    rounds = []
    for i in range(args.rounds):
        result = one_round(args.sessions, args.traffic)
        rounds.append(result)
        print(f"[bench] round {i + 1}: {result['rate']:,.0f} sessions/s "
              f"({result['seconds']:.1f} s), traffic {result['traffic']:,.0f} decisions/s",
              file=sys.stderr)  # fmt: skip
    rate = statistics.median(r["rate"] for r in rounds)
    traffic = statistics.median(r["traffic"] for r in rounds)
    met = "**met**" if rate >= 20_000 else "**not met**"
    lines = [
        "## The sweep: sessions re-checked per second (bench/sweep.py)",
        "",
        *common.machine_lines(info, common.command()),
        "",
        f"{args.sessions:,} active sessions on SQLite, each with two standing allows (`login`, "
        "`dashboard`) and a remembered IP; a stricter version is published (dashboards only "
        "from the corporate network) and the sweep that publish starts goes over every "
        "session: it re-decides the standing checkpoint the publish changed (`dashboard`; "
        "`login` is unchanged, its fingerprint says so, and is not decided again), while a "
        "second worker process makes session-bound "
        f"decisions on the same file at {args.traffic:,.0f}/s (about what one HTTP worker "
        "serves, see the `http` section; each decision logged). Every run "
        f"changed exactly the third of the sessions off the network ({rounds[0]['changed']:,.0f}).",
        "",
        "| | median | per round |",
        "|---|---:|---|",
        row("sessions re-checked / s", rate, rounds, "rate", ",.0f"),
        row("traffic during the sweep, decisions / s", traffic, rounds, "traffic", ",.0f"),
        "",
        f"Target at least 20,000 sessions/s with traffic running: {met} ({rate:,.0f}).",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        common.update_section("sweep", body)


if __name__ == "__main__":
    main()
