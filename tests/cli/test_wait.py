"""`juncture wait`: the README's first look starts a server in the background, then waits for
it instead of racing it."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from typer.testing import CliRunner

from juncture.cli import app
from service.server import JUNCTURE, Server

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_wait_returns_once_a_server_started_in_the_background_is_ready(tmp_path: Path):
    port = free_port()
    server = subprocess.Popen(
        [str(JUNCTURE), "serve", "--db", str(tmp_path / "j.db"), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        started = time.monotonic()
        waited = subprocess.run(
            [str(JUNCTURE), "wait", "--url", f"http://127.0.0.1:{port}", "--timeout", "60"],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert waited.returncode == 0, waited.stderr
        assert waited.stdout.startswith(f"ready http://127.0.0.1:{port} (version sha256:")
        assert time.monotonic() - started < 60
        # ready means ready: the very next call is answered
        listed = subprocess.run(
            [str(JUNCTURE), "versions", "--server", f"http://127.0.0.1:{port}", "--token",
             (tmp_path / "j.db.admin-token").read_text().strip()],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.startswith("* sha256:")
    finally:
        server.terminate()
        server.wait(10)


def test_wait_on_a_ready_server_returns_at_once(tmp_path: Path):
    server = Server(tmp_path / "j.db", None).start()
    try:
        result = CliRunner().invoke(app, ["wait", "--url", server.url])
        assert result.exit_code == 0, result.output
        assert result.output == f"ready {server.url}\n"  # no version published yet
    finally:
        server.stop()


def test_wait_for_nothing_gives_up_in_one_line():
    port = free_port()
    started = time.monotonic()
    result = CliRunner().invoke(
        app, ["wait", "--url", f"http://127.0.0.1:{port}", "--timeout", "0.5"]
    )
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert lines[0].startswith("error not ready after 0.5 s: cannot reach")
    assert "connection refused" in lines[0] and "hint" in lines[0]
    assert time.monotonic() - started < 5


def test_wait_does_not_wait_on_a_url_that_is_not_one():
    result = CliRunner().invoke(app, ["wait", "--url", "localhost:8900", "--timeout", "20"])
    assert result.exit_code == 2
    assert "give --server http://HOST:PORT" in result.output


def test_the_readme_first_look_waits_for_the_server():
    readme = (ROOT / "README.md").read_text()
    look = readme[readme.index("## A first look") :]
    look = look[: look.index("```\n", look.index("```sh") + 5)]
    lines = [line.split("#")[0].strip() for line in look.splitlines()]
    serve = next(i for i, line in enumerate(lines) if "juncture serve" in line)
    assert lines[serve].endswith("&")
    assert lines[serve + 1].startswith(".venv/bin/juncture wait")
    assert "juncture wait" in (ROOT / "docs" / "cli.md").read_text()
