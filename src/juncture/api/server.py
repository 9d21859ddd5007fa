"""Build the ASGI app from the environment (what `juncture serve` hands to uvicorn workers)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from starlette.types import ASGIApp

from juncture.api.app import create_app
from juncture.api.logs import configure as configure_logs
from juncture.service.runtime import Runtime
from juncture.store.sqlite import SqliteStore

DB_ENV = "JUNCTURE_DB"


def utc_now() -> datetime:
    return datetime.now(UTC)


def open_runtime(db: str | Path) -> Runtime:
    return Runtime(SqliteStore(db), now=utc_now)


def build() -> ASGIApp:
    """The app over the SQLite file named by ``JUNCTURE_DB`` (default ``juncture.db``)."""
    configure_logs()
    runtime = open_runtime(os.environ.get(DB_ENV, "juncture.db"))
    return create_app(runtime)
