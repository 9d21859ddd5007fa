"""Build the ASGI app from the server's settings (what `juncture serve` hands to uvicorn
workers, as `juncture.api.settings.SETTINGS_ENV`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.types import ASGIApp

from juncture.api.app import create_app
from juncture.api.logs import configure as configure_logs
from juncture.api.settings import ServerSettings, authn_key_file, from_environment
from juncture.plugins import load_configured
from juncture.service.authn import AuthnSettings
from juncture.service.clock import DevClock, testing_offset
from juncture.service.observe import Observer, ObserveSettings
from juncture.service.rehearsals import PublishGate
from juncture.service.runtime import Runtime
from juncture.service.setup import open_store
from juncture.service.shadow import RECORD_RATE


def utc_now() -> datetime:
    return datetime.now(UTC)


def open_runtime(
    db: str | Path,
    retention_days: float | None = None,
    observe: ObserveSettings | None = None,
    authn: AuthnSettings | None = None,
    decision_log: str = "batched",
    now: Callable[[], datetime] = utc_now,
    pool_size: int | None = None,
    cache_sessions: int = 20_000,
    publish_gate: PublishGate | None = None,
    shadow_record_rate: float = RECORD_RATE,
) -> Runtime:
    """A runtime over the SQLite file; decision records older than the retention are purged.

    Raises:
        ValueError, ReputationError: observation settings that cannot be used, an unknown
        decision log mode.
    """
    load_configured()  # plug-ins' kinds and enrichers, before anything reads them
    retention = timedelta(days=retention_days) if retention_days else None
    observer = Observer(observe or ObserveSettings(), now=utc_now())
    return Runtime(
        open_store(db, pool_size=pool_size, cache_sessions=cache_sessions),
        now=now,
        retention=retention,
        observer=observer,
        authn=authn_key_file(authn or AuthnSettings(), db),
        decision_log=decision_log,
        publish_gate=publish_gate,
        shadow_record_rate=shadow_record_rate,
    )


def build() -> ASGIApp:
    """The app over the settings `juncture serve` handed to this worker (the defaults, over
    ``juncture.db``, when none)."""
    return build_app(from_environment())


def build_app(settings: ServerSettings) -> ASGIApp:
    """The app over these settings."""
    configure_logs()
    offset = testing_offset()
    real_now = utc_now if not offset else lambda: utc_now() + offset
    # Development mode: decisions run on the test clock; the clock check reads the real one.
    dev_clock = DevClock(real_now) if settings.dev else None
    now = dev_clock.now if dev_clock is not None else real_now
    runtime = open_runtime(
        settings.db,
        settings.retention_days,
        settings.observe,
        settings.authn,
        settings.decision_log,
        now,
        settings.db_pool_size,
        settings.cache_sessions,
        settings.publish_gate,
        settings.shadow_record_rate,
    )
    clock = runtime.clock_watch(real_now, settings.clock)
    transmitter = runtime.transmitter(settings.transmit)
    receiver = runtime.receiver(settings.receive)
    return create_app(
        runtime,
        transmitter=transmitter,
        receiver=receiver,
        inventory=settings.inventory,
        clock=clock,
        limits=settings.limits,
        metrics_token=settings.metrics_token,
        dev_clock=dev_clock,
        store_calls=settings.store_calls,
    )
