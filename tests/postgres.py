"""A real PostgreSQL server for the tests: started once per test session, stopped at its end.

Debian's binaries (`initdb`, `pg_ctl`) are found on PATH, else under
``/usr/lib/postgresql/<version>/bin`` (where the ``postgresql`` package puts them; `make
test` installs it when missing). When they are missing the fixture fails, saying so: the
PostgreSQL tests never skip. The server runs as an unprivileged user when the tests run as
root (PostgreSQL refuses root), in a temporary directory, on 127.0.0.1 and a free port, its
socket in that directory, with fsync off (a test server: nothing must survive a machine
crash; commits stay synchronous, so a server killed keeps what it acknowledged). Each
test gets a database of its own (`PostgresServer.create_database`).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

#: The unprivileged user the server runs as when the tests run as root (made when missing).
RUN_AS = "nobody"
FALLBACK_USER = "juncture-test"


def _unprivileged_user() -> pwd.struct_passwd:
    """`RUN_AS`, or a system user made for the tests when there is none."""
    for name in (RUN_AS, FALLBACK_USER):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", FALLBACK_USER], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    return pwd.getpwnam(FALLBACK_USER)


def find_binaries() -> Path:
    """The directory holding `initdb` and `pg_ctl` (PATH first, then Debian's)."""
    found = shutil.which("initdb")
    if found is not None and shutil.which("pg_ctl") is not None:
        return Path(found).resolve().parent
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    for directory in sorted(versions, reverse=True, key=lambda d: _version(Path(d).parent.name)):
        if (Path(directory) / "initdb").exists():
            return Path(directory)
    pytest.fail(
        "PostgreSQL is not installed: the PostgreSQL tests need `initdb` and `pg_ctl` "
        "(on PATH or in /usr/lib/postgresql/<version>/bin). `make test` installs them "
        "(apt-get install postgresql); or install them yourself.",
        pytrace=False,
    )


def _version(name: str) -> int:
    head = name.split(".")[0]
    return int(head) if head.isdigit() else 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """One PostgreSQL server in a temporary directory (`start`, `stop`, `create_database`)."""

    def __init__(self) -> None:
        self.bin = find_binaries()
        self.root = Path(tempfile.mkdtemp(prefix="juncture-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._names = itertools.count(1)
        self._user: str | None = None
        if os.geteuid() == 0:
            entry = _unprivileged_user()
            self._user = entry.pw_name
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.root.chmod(0o755)
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")  # fmt: skip

    def _run(self, *argv: str) -> None:
        command = list(argv)
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.root,
                              check=False, timeout=120)  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root}"
                   " -c fsync=off -c full_page_writes=off"
                   " -c max_connections=300")  # fmt: skip
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.root / "server.log"), "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                  "stop")  # fmt: skip

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its URL."""
        name = f"juncture_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (started on first use)."""
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            server.remove()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a fresh database of the session's server, for one test."""
    return postgres_server.create_database()
