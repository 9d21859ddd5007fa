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

    .venv/bin/python bench/sweep.py [--sessions 100000] [--rounds 3] [--traffic 5000]
        [--no-write]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# This directory holds `http.py`: keep it after the standard library on sys.path (as http.py does).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.append(str(_HERE))
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


def populate(db: Path, count: int) -> tuple[str, str]:
    """Publish V1, make the app, write ``count`` sessions; (app id, a corporate session id)."""
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
    encode = msgspec.json.Encoder().encode
    rows = []
    first = ""
    for i in range(count):
        ip = f"10.{i % 250}.{i // 250 % 250}.7" if i % 3 else f"198.51.100.{i % 250}"
        session = Session(
            id=f"s_{i:08d}",
            app=app.id,
            subject_type="user",
            subject_id=f"user{i}",
            started_at=now,
            updated_at=now,
            handle=f"h{i}",
            proofs=(StoredProof(method="password", at=now, asserted_by=app.id),),
            observed=Observed(ip=ip, ip_at=now),
            standing={
                "login": Standing(outcome="allow", scopes=("desk",), decided_at=now,
                                  expires_at=now + timedelta(hours=8), version=version),
                "dashboard": Standing(outcome="allow", scopes=("dashboard:read",), decided_at=now,
                                      expires_at=now + timedelta(hours=8), version=version),
            },
        )  # fmt: skip
        if i % 3 and not first:
            first = session.id
        micros = int((now - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
        rows.append((session.id, session.handle, app.id, session.subject_id, "active", micros,
                     0, encode(session)))  # fmt: skip
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO sessions (id, handle, app, subject_id, status, started_at, revision,"
            " body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("ANALYZE")
    return app.id, first


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
    args = parser.parse_args()
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
        f"| sessions re-checked / s | {rate:,.0f} | "
        + ", ".join(f"{r['rate']:,.0f}" for r in rounds)
        + " |",
        f"| traffic during the sweep, decisions / s | {traffic:,.0f} | "
        + ", ".join(f"{r['traffic']:,.0f}" for r in rounds)
        + " |",
        "",
        f"Target at least 20,000 sessions/s with traffic running: {met} ({rate:,.0f}).",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        common.update_section("sweep", body)


if __name__ == "__main__":
    main()
