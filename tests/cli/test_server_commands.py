"""`juncture serve` and the client commands as a newcomer meets them: a busy port, a server
that is not there (refused, silent, not TLS, not Juncture), `serve --help` at 80 columns,
admin key scopes."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from juncture.cli import app

CLIENT_COMMANDS = (
    ("versions",),
    ("publish", "examples/journeys/shop"),
    ("rollback", "sha256:0"),
    ("sweep", "--start"),
    ("identities",),
)


def run(*args: str | Path, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "80", **(env or {})})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something listens on (and never answers)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


class _Page(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = b"<html><body>not juncture</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web_page() -> Iterator[str]:
    """A plain HTTP server that is not Juncture."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


# -- serve ----------------------------------------------------------------------------------------


def test_serve_on_a_busy_port_says_so_in_one_line_before_anything_else(
    tmp_path: Path, listening: int
):
    db = tmp_path / "j.db"
    result = run("serve", "--db", db, "--port", str(listening))
    assert result.exit_code == 2
    line = one_line(result)
    assert line.startswith(f"error cannot listen on 127.0.0.1:{listening}: the port is in use")
    assert "--port or JUNCTURE_PORT" in line
    assert not db.exists()  # nothing published, no key written, no banner


def test_serve_takes_its_port_from_juncture_port(tmp_path: Path, listening: int):
    result = run("serve", "--db", tmp_path / "j.db", env={"JUNCTURE_PORT": str(listening)})
    assert result.exit_code == 2
    assert f"127.0.0.1:{listening}: the port is in use" in one_line(result)


def test_serve_help_is_whole_at_80_columns():
    result = run("serve", "--help")
    assert result.exit_code == 0
    assert "…" not in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    serve = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    for param in serve.params:
        for name in (*param.opts, *getattr(param, "secondary_opts", ())):
            assert name in result.output, name


# -- client commands ------------------------------------------------------------------------------


@pytest.mark.parametrize("command", CLIENT_COMMANDS, ids=lambda c: c[0])
def test_client_commands_name_a_refused_connection_in_one_line(command: tuple[str, ...]):
    port = free_port()
    result = run(*command, "--server", f"http://127.0.0.1:{port}", "--token", "x")
    assert result.exit_code == 2
    line = one_line(result)
    assert line.startswith(f"error cannot reach http://127.0.0.1:{port}/admin/v1/")
    assert "connection refused; hint: is `juncture serve` running there?" in line


def test_client_commands_name_a_timeout_in_one_line(listening: int):
    result = run(
        "versions", "--server", f"http://127.0.0.1:{listening}", "--token", "x",
        env={"JUNCTURE_CLIENT_TIMEOUT": "0.3"},
    )  # fmt: skip
    assert result.exit_code == 2
    line = one_line(result)
    assert line.startswith(f"error http://127.0.0.1:{listening}/admin/v1/versions: no answer")
    assert "timed out" in line and "hint" in line


def test_client_commands_name_a_tls_failure_in_one_line(web_page: str):
    result = run("versions", "--server", f"https://{web_page}", "--token", "x")
    assert result.exit_code == 2
    line = one_line(result)
    assert line.startswith(f"error https://{web_page}/admin/v1/versions: TLS failed")
    assert "http://" in line  # the hint


def test_client_commands_name_a_server_that_is_not_juncture(web_page: str):
    result = run("versions", "--server", f"http://{web_page}", "--token", "x")
    assert result.exit_code == 2
    assert "not Juncture's JSON" in one_line(result)


def test_client_commands_name_a_url_that_is_not_one():
    result = run("versions", "--server", "localhost:8900", "--token", "x")
    assert result.exit_code == 2
    assert "hint: give --server http://HOST:PORT" in one_line(result)


def test_a_wrong_client_timeout_is_refused():
    result = run("versions", "--token", "x", env={"JUNCTURE_CLIENT_TIMEOUT": "soon"})
    assert result.exit_code == 2
    assert "JUNCTURE_CLIENT_TIMEOUT" in one_line(result)


# -- admin keys -----------------------------------------------------------------------------------


def test_admin_key_lists_the_scopes_on_a_wrong_one(tmp_path: Path):
    result = run("admin-key", "--db", tmp_path / "j.db", "--scope", "root")
    assert result.exit_code == 2
    line = one_line(result)
    assert line == (
        "error unknown scope `root`: the scopes are read, publish, manage_apps, manage_subjects"
    )
    docs = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    for scope in ("read", "publish", "manage_apps", "manage_subjects"):
        assert f"| `{scope}` |" in docs
