"""Shared helpers for the benchmarks: machine description, batched timing, RESULTS.md sections,
server processes on loopback and their CPU."""

from __future__ import annotations

import os
import platform
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx

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


# -- server processes ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU of the live processes of a process group (the server and its workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class Server:
    """A server process in its own process group, on a free loopback port."""

    def __init__(
        self,
        args: list[str],
        cwd: Path,
        env: dict[str, str],
        port: int,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.args, self.cwd, self.env, self.port = args, cwd, env, port
        self.stop_signal = stop_signal
        self.url = f"http://127.0.0.1:{port}"
        self.log = cwd / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Server:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.args,
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: the workers are in it too
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited at start:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log.read_text()}")

    @property
    def pgid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        """SIGTERM (graceful: the decision log is flushed), SIGKILL of the group if it hangs."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.pgid, signal.SIGKILL)
                self.process.wait(10)
        deadline = time.monotonic() + 10
        while group_alive(self.pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group_alive(self.pgid):
            os.killpg(self.pgid, signal.SIGKILL)
            raise RuntimeError(f"process group {self.pgid} outlived its leader")
