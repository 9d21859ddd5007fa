"""A proxy under test (tests/nginx.py, tests/caddy.py): one process run in a temp dir of its
own, as nobody when this runs as root, ready once its port answers over HTTP. Standard library
and httpx only: the benchmark imports it too."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

import httpx


def drop_to_nobody() -> Callable[[], None] | None:
    """What a child runs before it starts to be nobody (None: not root, nothing to drop)."""
    if os.getuid() != 0:
        return None

    def drop() -> None:
        os.setgid(65534)
        os.setuid(65534)

    return drop


class ProxyProcess:
    """``make_command(dir)`` run in ``dir`` (a new temp dir, open to nobody), its output in
    ``dir/<log>``; started when made, ready once ``port`` answers ``probe`` (whatever the
    status). Raises RuntimeError, with its log, when it exits or does not answer in time."""

    name = "proxy"

    def __init__(
        self,
        make_command: Callable[[Path], list[str]],
        port: int,
        *,
        probe: str,
        log: str,
        prefix: str,
        env: Callable[[Path], Mapping[str, str]] | None = None,
    ) -> None:
        self.dir = d = Path(tempfile.mkdtemp(prefix=prefix))
        self.port = port
        self.log_path = d / log
        os.chmod(d, 0o777)  # open to the proxy's user
        self._output: IO[bytes] = open(d / f"{self.name}.out", "wb")  # open while it runs
        self.process = subprocess.Popen(
            make_command(d), stdout=self._output, stderr=subprocess.STDOUT, cwd=d,
            env=dict(env(d)) if env is not None else None, preexec_fn=drop_to_nobody(),
        )  # fmt: skip
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                said = self.said()
                self.stop()
                raise RuntimeError(f"{self.name} exited: {said}")
            try:
                httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not start")

    def said(self) -> str:
        """What it logged (its log file, else its output)."""
        for path in (self.log_path, self.dir / f"{self.name}.out"):
            if path.exists() and path.stat().st_size:
                return path.read_text(errors="replace")
        return ""

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL if it hangs) and remove its directory."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._output.close()
        shutil.rmtree(self.dir, ignore_errors=True)
