"""Shared helpers for the benchmarks: machine description, batched timing, RESULTS.md sections."""

from __future__ import annotations

import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
ROOT = RESULTS.parent.parent

_HEADER = """# Benchmark results

Written by the scripts in `bench/` (`make bench` runs them all); each section is replaced
when its script runs again. Numbers are medians: this kind of machine is noisy, so read
the ratios rather than the absolute values.
"""


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def machine() -> dict[str, str]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count() or 0
    return {
        "nproc": str(usable),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu": cpu_model(),
        "os": f"{platform.system()} {platform.release()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def command() -> str:
    """The command line that is running, relative to the repository root where possible."""
    exe = Path(sys.executable)
    try:
        exe = exe.relative_to(Path.cwd())
    except ValueError:
        pass
    return " ".join([shlex.quote(str(exe)), *(shlex.quote(a) for a in sys.argv)])


def source_state() -> str:
    """The commit measured, and whether src/ had uncommitted changes (they count too)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    if not dirty:
        return f"commit {head}"
    return f"commit {head} + uncommitted changes in {len(dirty)} file(s) under src/"


def machine_lines(info: dict[str, str], cmd: str) -> list[str]:
    return [
        f"- date: {info['date']}",
        f"- machine: {info['nproc']} CPU(s) usable (nproc), {info['cpu']}, {info['os']}",
        f"- python: {info['python']}",
        f"- source measured: {source_state()}",
        f"- command: `{cmd}` (from the repository root; `make bench` runs every benchmark)",
    ]


def calibrate(fn: Callable[[], object], target_ns: int) -> int:
    """Calls per batch so that one batch takes about ``target_ns``."""
    n = 1
    while True:
        start = time.perf_counter_ns()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter_ns() - start
        if elapsed >= target_ns // 4 or n >= 1 << 22:
            return max(1, int(n * target_ns / max(elapsed, 1)))
        n *= 4


def batch_mean_ns(fn: Callable[[], object], n: int) -> float:
    rep = range(n)
    start = time.perf_counter_ns()
    for _ in rep:
        fn()
    return (time.perf_counter_ns() - start) / n


def interleaved(
    benches: Sequence[tuple[str, Callable[[], object]]],
    rounds: int,
    target_ns: int,
    warmup: int = 200,
) -> dict[str, list[float]]:
    """Batch means (ns per call) for each bench, batches of all benches interleaved per round.

    Interleaving spreads the machine's slow moments over every bench instead of
    landing on whichever happened to run then.
    """
    sizes = {}
    for name, fn in benches:
        for _ in range(warmup):
            fn()
        sizes[name] = calibrate(fn, target_ns)
    means: dict[str, list[float]] = {name: [] for name, _ in benches}
    for _ in range(rounds):
        for name, fn in benches:
            means[name].append(batch_mean_ns(fn, sizes[name]))
    return means


def median_us(values: Sequence[float]) -> float:
    return statistics.median(values) / 1000.0


def spread_us(values: Sequence[float]) -> tuple[float, float]:
    """The interquartile range of the batch means, in µs."""
    if len(values) < 4:
        return min(values) / 1000.0, max(values) / 1000.0
    q = statistics.quantiles(values, n=4)
    return q[0] / 1000.0, q[2] / 1000.0


def update_section(name: str, body: str) -> None:
    """Replace (or append) the section ``name`` of RESULTS.md, keeping the others."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.rstrip()}\n{end}\n"
    text = RESULTS.read_text() if RESULTS.exists() else _HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip() + "\n\n" + block
    RESULTS.write_text(text)
