"""A real `juncture serve` process on loopback, for end-to-end tests over HTTP."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import httpx

from juncture.service.database import files_base

JUNCTURE = Path(sys.executable).with_name("juncture")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(
        self,
        db: Path | str,
        bundle: Path | None,
        port: int | None = None,
        args: tuple[str, ...] = (),
        preexec: Callable[[], None] | None = None,
        cwd: Path | None = None,
    ) -> None:
        """``preexec`` runs in the child before `juncture serve` starts (e.g. to set a resource
        limit for a fault test); it is used by every start of this server. ``db`` may be a
        PostgreSQL URL: the server then runs in ``cwd``, where it keeps its key files."""
        self.db = db
        self.cwd = cwd
        self.preexec = preexec
        self.args = args
        self.bundle = bundle
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.drainer: threading.Thread | None = None
        self.output = b""
        self.clients: list[httpx.Client] = []

    def client(self, key: str) -> httpx.Client:
        """An HTTP client presenting ``key``; closed when the server stops."""
        client = httpx.Client(
            base_url=self.url, timeout=10, headers={"Authorization": f"Bearer {key}"}
        )
        self.clients.append(client)
        return client

    def start(self) -> Server:
        args = [str(JUNCTURE), "serve", "--db", str(self.db), "--port", str(self.port)]
        args += (
            ["--bundle", str(self.bundle)]
            if self.bundle
            else ["--bundle", str((self.cwd or Path(self.db).parent) / "none")]
        )
        args += self.args
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ},
            cwd=self.cwd,
            preexec_fn=self.preexec,  # a fault test's hook; None by default
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                out = b""
                if self.process.stdout:
                    out = self.process.stdout.read()
                    self.process.stdout.close()
                raise RuntimeError(f"server exited: {out.decode(errors='replace')}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code in (200, 503):
                    assert self.process.stdout is not None
                    self.drainer = threading.Thread(
                        target=self._drain, args=(self.process.stdout,), daemon=True
                    )
                    self.drainer.start()
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not start")

    def _drain(self, stream: IO[bytes]) -> None:
        """Read the server's output as it comes: a server that logs much (a fault test's every
        503 logs a traceback) must never block on a full pipe."""
        with contextlib.suppress(ValueError, OSError):
            for chunk in iter(lambda: stream.read1(65536), b""):  # type: ignore[attr-defined]
                self.output += chunk

    def _collect(self) -> None:
        """After the process ended: the rest of its output, then the pipe closed."""
        assert self.process is not None
        if self.drainer is not None:
            self.drainer.join(10)
            self.drainer = None
        elif self.process.stdout:
            self.output += self.process.stdout.read()
        if self.process.stdout:
            self.process.stdout.close()

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._collect()

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        if self.process is None or self.process.poll() is not None:
            if self.process is not None and self.process.stdout:
                if self.drainer is not None:
                    self._collect()
                else:
                    self.process.stdout.close()
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self._collect()

    def admin_token(self) -> str:
        base = (self.cwd or Path()) / files_base(self.db)
        return base.with_name(base.name + ".admin-token").read_text().strip()


def file_modes_obeyed() -> Callable[[], None] | None:
    """As root, a child without the capabilities that ignore file modes (it drops them from its
    bounding set before it runs `juncture`), so that a read-only file is read-only to it."""
    if os.geteuid() != 0:
        return None
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")

    return preexec
