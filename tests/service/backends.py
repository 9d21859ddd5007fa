"""What the service tests without HTTP share: a clock they move by hand, and a runtime on
SQLite or PostgreSQL (the ``backend`` fixture's parameter) with the app ``web`` and one
journey file published."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from juncture.records import App
from juncture.service.runtime import Runtime
from juncture.service.setup import open_store


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 12, 6, 7, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


def publish(runtime: Runtime, journey: bytes) -> None:
    version, errors, _ = runtime.policies.upload({"j.yaml": journey}, author="t")
    assert version is not None, errors
    runtime.policies.activate(version, by="t")


@contextmanager
def web_runtime(
    request: pytest.FixtureRequest, tmp_path: Path, journey: bytes, **settings: Any
) -> Iterator[tuple[Runtime, Clock, App]]:
    """A runtime on the backend ``request.param`` names, its clock, and the app ``web`` (it
    may assert ``password``) with ``journey`` active."""
    db = (
        str(tmp_path / "j.db")
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    clock = Clock()
    runtime = Runtime(open_store(db), now=clock, log_interval=0.01, **settings)
    try:
        app = App(id="app_1", name="web", created_at=clock.at, assertable_methods=("password",))
        runtime.store.put_app(app)
        publish(runtime, journey)
        yield runtime, clock, app
    finally:
        runtime.close()
        runtime.store.close()
