"""Replay throughput: recorded decisions re-decided per second on one core (target ≥ 20,000/s).

Setup: the workforce history of tests/replay_history.py (the shipped workforce v1, decisions
made by the real runtime, each recorded with its facts) is lived once on a SQLite file; its
records are then copied with new ids (each at its original's time, so it decides the same)
until the log holds ``--records`` decisions. Measured, ``--runs`` times each, in this one
process (one thread):

- ``replay``: `Replayer.run` over the whole log with the workforce v2 candidate (the log read
  a page at a time through `DecisionLog.query`, every record decoded, its facts decoded,
  decided again, compared and counted): what `juncture replay` does;
- ``decide only``: `redecide` over the records already in memory (the pure part).

Writes the "replay" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# This directory holds `http.py`: keep it after the standard library on sys.path (as http.py does).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.append(str(_HERE))
sys.path.append(str(_HERE.parent / "tests"))
import _common as common  # noqa: E402
import msgspec  # noqa: E402

from juncture.policy import compile_plan, load_sources  # noqa: E402
from juncture.records import DecisionQuery  # noqa: E402
from juncture.service.replay import Replayer, ReplayFilter, redecide  # noqa: E402
from juncture.service.setup import tree_files  # noqa: E402
from juncture.store.sqlite import SqliteStore  # noqa: E402
from replay_history import START, V2, workforce_history  # noqa: E402

TARGET = 20_000


def build(db: Path, records: int) -> int:
    """The history, then its records copied until the log holds ``records``."""
    workforce_history(db)
    store = SqliteStore(db)
    try:
        seed = list(store.query(DecisionQuery(limit=10_000)))
        have = len(seed)
        batch = []
        n = 0
        while have < records:
            base = seed[n % len(seed)]
            batch.append(msgspec.structs.replace(base, id=f"d_bench{n:09d}"))
            n += 1
            have += 1
            if len(batch) == 5000:
                store.record(batch)
                batch = []
        store.record(batch)
        return len(store.query(DecisionQuery(limit=records + 10_000)))
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print, do not write RESULTS.md")
    args = parser.parse_args()
    info = common.machine()
    plan = compile_plan(load_sources(tree_files(V2)))
    window = ReplayFilter(since=START - timedelta(days=2))
    with tempfile.TemporaryDirectory(prefix="jct-replay-bench-") as name:
        db = Path(name) / "j.db"
        total = build(db, args.records)
        store = SqliteStore(db)
        try:
            replays, decides = [], []
            report = None
            for _ in range(args.runs):
                started = time.perf_counter()
                report = Replayer(store).run(plan, window)
                replays.append(report.total / (time.perf_counter() - started))
            records = list(store.query(DecisionQuery(limit=total)))
            app = store.get_app(records[0].app or "")
            for _ in range(args.runs):
                started = time.perf_counter()
                for record in records:
                    redecide(plan, app, record)
                decides.append(len(records) / (time.perf_counter() - started))
        finally:
            store.close()
    assert report is not None and report.total == total
    replay_rate, decide_rate = statistics.median(replays), statistics.median(decides)
    met = "met" if replay_rate >= TARGET else "NOT met"
    body = "\n".join([
        "## Replay: recorded decisions re-decided per second (bench/replay.py)",
        "",
        *common.machine_lines(info, common.command()),
        "",
        f"{total:,} recorded decisions (the workforce history of `tests/replay_history.py`, "
        "copied with new ids) replayed with `examples/versions/workforce_v2`, on SQLite, in one "
        f"process and thread; median of {args.runs} runs.",
        "",
        "| what | decisions/s | |",
        "|---|---:|---|",
        f"| replay (`Replayer.run`: the log read, decoded, decided again, compared) | "
        f"{replay_rate:,.0f} | target ≥ {TARGET:,}: {met} |",
        f"| decide only (`redecide` over records in memory) | {decide_rate:,.0f} | "
        f"{decide_rate / replay_rate:.1f}× the replay |",
        "",
        f"The report: {report.replayed:,} replayed, {report.changed:,} changed, "
        f"{report.kept:,} kept, {report.undecidable:,} not replayable.",
    ])  # fmt: skip
    print(body)
    if not args.no_write:
        common.update_section("replay", body)


if __name__ == "__main__":
    main()
