"""Build the ASGI app from the environment (what `juncture serve` hands to uvicorn workers)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.types import ASGIApp

from juncture.api.app import create_app
from juncture.api.logs import configure as configure_logs
from juncture.service.runtime import Runtime
from juncture.store.sqlite import SqliteStore

DB_ENV = "JUNCTURE_DB"


def utc_now() -> datetime:
    return datetime.now(UTC)


RETENTION_ENV = "JUNCTURE_RETENTION_DAYS"


def open_runtime(db: str | Path, retention_days: float | None = None) -> Runtime:
    """A runtime over the SQLite file; decision records older than the retention are purged."""
    retention = timedelta(days=retention_days) if retention_days else None
    return Runtime(SqliteStore(db), now=utc_now, retention=retention)


def build() -> ASGIApp:
    """The app over the SQLite file named by ``JUNCTURE_DB`` (default ``juncture.db``)."""
    configure_logs()
    days = os.environ.get(RETENTION_ENV)
    runtime = open_runtime(os.environ.get(DB_ENV, "juncture.db"), float(days) if days else None)
    return create_app(runtime)
