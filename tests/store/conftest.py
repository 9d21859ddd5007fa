"""Store backends under test: every contract test runs once per backend in BACKENDS.

A backend opens any number of stores over the same data (`open`), so a test can reopen
after close, race two handles, or write from a child process (`open_source`). A later
backend (PostgreSQL, Redis) adds a class here and its name to the fixture's params.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest

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

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "juncture.db"

    def open(self) -> Store:
        return SqliteStore(self.path)

    def open_source(self) -> str:
        return (
            "from juncture.store.sqlite import SqliteStore\n"
            f"store = SqliteStore({str(self.path)!r})"
        )


BACKENDS: dict[str, Callable[[Path], Backend]] = {"sqlite": SqliteBackend}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return BACKENDS[request.param](tmp_path)


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    opened = backend.open()
    yield opened
    opened.close()
