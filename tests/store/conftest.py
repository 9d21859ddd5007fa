"""Store backends under test: every contract test runs once per backend in BACKENDS.

A backend opens any number of stores over the same data (`open`), so a test can reopen
after close, race two handles, or write from a child process (`open_source`). A later
backend (Redis) adds a class here and its name to BACKENDS. The PostgreSQL backend gives
each test a fresh database of the session's server (tests/postgres.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from juncture.store.postgres import PostgresStore
from juncture.store.protocols import Store
from juncture.store.sqlite import SqliteStore


class Backend(Protocol):
    name: str

    def open(self) -> Store:
        """A new store over this backend's data (the same data every time)."""

    def open_source(self) -> str:
        """Python source that binds `store` to a new store over the same data."""


class SqliteBackend:
    name = "sqlite"

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.path = tmp_path / "juncture.db"

    def open(self) -> Store:
        return SqliteStore(self.path)

    def open_source(self) -> str:
        return (
            "from juncture.store.sqlite import SqliteStore\n"
            f"store = SqliteStore({str(self.path)!r})"
        )


class PostgresBackend:
    name = "postgres"

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self.url: str = request.getfixturevalue("postgres_server").create_database()

    def open(self) -> Store:
        return PostgresStore(self.url)

    def open_source(self) -> str:
        return (
            "from juncture.store.postgres import PostgresStore\n"
            f"store = PostgresStore({self.url!r})"
        )


class CachedSqliteBackend(SqliteBackend):
    """SQLite as a server opens it: the hot reads served from caches kept exact by the
    file's change log (`store/sqlite/changes.py`)."""

    name = "sqlite-cached"

    def open(self) -> Store:
        store = SqliteStore(self.path)
        store.start_caches()
        return store

    def open_source(self) -> str:
        return super().open_source() + "\nstore.start_caches()"


class CachedPostgresBackend(PostgresBackend):
    """PostgreSQL as a server opens it: the reads every decision makes served from the
    node's caches (`store/postgres/cached.py`), which must keep every contract."""

    name = "postgres-cached"

    def open(self) -> Store:
        store = PostgresStore(self.url)
        store.start_caches()
        return store

    def open_source(self) -> str:
        return super().open_source() + "\nstore.start_caches()"


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Backend]] = {
    "sqlite": SqliteBackend,
    "sqlite-cached": CachedSqliteBackend,
    "postgres": PostgresBackend,
    "postgres-cached": CachedPostgresBackend,
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](request, tmp_path)


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    opened = backend.open()
    yield opened
    opened.close()
