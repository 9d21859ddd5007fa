"""Where store calls should run: on the event loop, or in worker threads.

The question for the store boundary (issue 14): a request handler is a coroutine and the
store is synchronous. Calling it on the loop costs nothing extra, but a slow call stops every
other request of that worker; moving the call to a thread costs a hop each time but lets the
loop go on. Which one wins depends on how long a store call takes, so this measures both modes
over two stores:

- ``sqlite``: the embedded default, a local file (point reads of tens of microseconds);
- ``networked``: the same store with a round trip added to every call (``--rtt``, default
  0.25 ms, a database in the same data centre), standing in for PostgreSQL.

Measured: session-bound decisions per second (the real ``Decisions.decide``: facts, engine,
standing outcomes, the batched decision log) made by --concurrency coroutines of one event
loop for --duration seconds, calling the service either inline or through
``anyio.to_thread.run_sync``; the median of --rounds, the modes alternating within a round.

    .venv/bin/python bench/store_boundary.py [--duration 3] [--rounds 3] [--concurrency 32]
        [--rtt 0.25] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
import _common as common  # noqa: E402
import anyio.to_thread  # noqa: E402
from sweep import populate  # noqa: E402

from juncture.service.runtime import Runtime  # noqa: E402
from juncture.store.sqlite import SqliteStore  # noqa: E402


class RoundTrip:
    """A store whose every call waits ``rtt`` seconds first, as a networked database does."""

    def __init__(self, store: Any, rtt: float) -> None:
        self._store = store
        self._rtt = rtt
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if not callable(found):
            return found

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            time.sleep(self._rtt)
            return found(*args, **kwargs)

        return call


async def _drive(decide: Callable[[], Any], inline: bool, seconds: float, tasks: int) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            if inline:
                decide()
                await asyncio.sleep(0)  # a handler yields at least once (reading the body)
            else:
                await anyio.to_thread.run_sync(decide)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return done / (time.perf_counter() - started)


def measure(db: Path, app_id: str, session_id: str, rtt: float, args: Any) -> dict[str, Any]:
    store: Any = SqliteStore(db)
    if rtt:
        store = RoundTrip(store, rtt)
    runtime = Runtime(store, now=lambda: datetime.now(UTC))
    try:
        app = runtime.store.get_app(app_id)
        request = {"resource": {"type": "page", "id": "dashboard"}}

        def decide() -> Any:
            return runtime.decisions.decide(app, "dashboard", request, session_id=session_id)

        decide()  # the plan compiled
        calls = 0
        if rtt:
            before = store.calls
            decide()
            calls = store.calls - before
        rates: dict[str, list[float]] = {"inline": [], "thread": []}
        for _ in range(args.rounds):
            for mode in rates:
                run = _drive(decide, mode == "inline", args.duration, args.concurrency)
                rates[mode].append(asyncio.run(run))
        return {
            "calls": calls,
            "inline": statistics.median(rates["inline"]),
            "thread": statistics.median(rates["thread"]),
        }
    finally:
        runtime.close()
        runtime.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rtt", type=float, default=0.25, help="milliseconds")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="jct-boundary-") as name:
        db = Path(name) / "j.db"
        app_id, session_id = populate(db, 1000)
        results = {
            "sqlite": measure(db, app_id, session_id, 0.0, args),
            "networked": measure(db, app_id, session_id, args.rtt / 1000, args),
        }
    lines = [
        "## The store boundary: store calls on the event loop or in threads",
        "",
        *common.machine_lines(common.machine(), common.command()),
        "",
        f"Session-bound decisions per second, {args.concurrency} coroutines on one event loop,",
        f"median of {args.rounds} rounds of {args.duration:g} s; `networked` adds a",
        f"{args.rtt:g} ms round trip to every store call.",
        "",
        "| store | store calls a decision | on the loop | in threads | threads / loop |",
        "|---|---:|---:|---:|---:|",
    ]
    for store, r in results.items():
        calls = r["calls"] or "-"
        lines.append(
            f"| {store} | {calls} | {r['inline']:,.0f} | {r['thread']:,.0f} "
            f"| {r['thread'] / r['inline']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        common.update_section("store boundary", text)


if __name__ == "__main__":
    main()
