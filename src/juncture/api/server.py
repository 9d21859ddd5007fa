"""Build the ASGI app from the environment (what `juncture serve` hands to uvicorn workers)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import msgspec
from starlette.types import ASGIApp

from juncture.api.app import create_app
from juncture.api.limits import LIMITS_ENV, limits_from
from juncture.api.logs import configure as configure_logs
from juncture.service.authn import AuthnSettings
from juncture.service.clock import DEV_ENV, ClockSettings, ClockWatch, DevClock, testing_offset
from juncture.service.inventory import InventorySettings
from juncture.service.observe import Observer, ObserveSettings
from juncture.service.receive import ReceiveSettings
from juncture.service.runtime import Runtime
from juncture.service.transmit import TransmitSettings
from juncture.store.sqlite import SqliteStore

DB_ENV = "JUNCTURE_DB"


def utc_now() -> datetime:
    return datetime.now(UTC)


RETENTION_ENV = "JUNCTURE_RETENTION_DAYS"
#: The observation settings (`ObserveSettings` as JSON), handed from `juncture serve` to workers.
OBSERVE_ENV = "JUNCTURE_OBSERVE"
#: The authentication settings (`AuthnSettings` as JSON), likewise.
AUTHN_ENV = "JUNCTURE_AUTHN"
#: The inventory thresholds (`InventorySettings` as JSON), likewise.
INVENTORY_ENV = "JUNCTURE_INVENTORY"
#: The decision log's mode (`batched` or `durable`), likewise.
DECISION_LOG_ENV = "JUNCTURE_DECISION_LOG"
#: The clock check's settings (`ClockSettings` as JSON), likewise.
CLOCK_ENV = "JUNCTURE_CLOCK"
#: The token `/metrics` requires (``Authorization: Bearer``); unset: `/metrics` is open.
METRICS_TOKEN_ENV = "JUNCTURE_METRICS_TOKEN"  # noqa: S105 (a variable name)


_S = TypeVar("_S", bound=msgspec.Struct)


def _settings(text: str | None, kind: type[_S], what: str) -> _S:
    """Settings from their JSON (None or empty: the defaults). Raises ValueError."""
    if not text:
        return kind()
    try:
        return msgspec.json.decode(text, type=kind)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise ValueError(f"invalid {what} settings: {exc}") from None


def authn_settings(text: str | None, db: str | Path) -> AuthnSettings:
    """The key file defaults to ``<db>.keys``."""
    settings = _settings(text, AuthnSettings, "authentication")
    if settings.key_file is None:
        settings = msgspec.structs.replace(settings, key_file=str(Path(db)) + ".keys")
    return settings


def observe_settings(text: str | None) -> ObserveSettings:
    return _settings(text, ObserveSettings, "observation")


def open_runtime(
    db: str | Path,
    retention_days: float | None = None,
    observe: ObserveSettings | None = None,
    authn: AuthnSettings | None = None,
    decision_log: str = "batched",
    now: Callable[[], datetime] = utc_now,
) -> Runtime:
    """A runtime over the SQLite file; decision records older than the retention are purged.

    Raises:
        ValueError, ReputationError: observation settings that cannot be used, an unknown
        decision log mode.
    """
    retention = timedelta(days=retention_days) if retention_days else None
    observer = Observer(observe or ObserveSettings(), now=utc_now())
    return Runtime(
        SqliteStore(db),
        now=now,
        retention=retention,
        observer=observer,
        authn=authn or authn_settings(None, db),
        decision_log=decision_log,
    )


#: Shared Signals settings (`TransmitSettings`, `ReceiveSettings` as JSON), likewise.
TRANSMIT_ENV = "JUNCTURE_TRANSMIT"
RECEIVE_ENV = "JUNCTURE_RECEIVE"


def transmit_settings(text: str | None, db: str | Path) -> TransmitSettings:
    """The signing key file defaults to ``<db>.ssf-key.json``."""
    settings = _settings(text, TransmitSettings, "transmitter")
    if settings.key_file is None:
        settings = msgspec.structs.replace(settings, key_file=str(Path(db)) + ".ssf-key.json")
    return settings


def receive_settings(text: str | None) -> ReceiveSettings:
    return _settings(text, ReceiveSettings, "receiver")


def inventory_settings(text: str | None) -> InventorySettings:
    return _settings(text, InventorySettings, "inventory")


def build() -> ASGIApp:
    """The app over the SQLite file named by ``JUNCTURE_DB`` (default ``juncture.db``)."""
    configure_logs()
    days = os.environ.get(RETENTION_ENV)
    offset = testing_offset()
    real_now = utc_now if not offset else lambda: utc_now() + offset
    # Development mode: decisions run on the test clock; the clock check reads the real one.
    dev_clock = DevClock(real_now) if os.environ.get(DEV_ENV) == "1" else None
    now = dev_clock.now if dev_clock is not None else real_now
    runtime = open_runtime(
        os.environ.get(DB_ENV, "juncture.db"),
        float(days) if days else None,
        observe_settings(os.environ.get(OBSERVE_ENV)),
        authn_settings(os.environ.get(AUTHN_ENV), os.environ.get(DB_ENV, "juncture.db")),
        os.environ.get(DECISION_LOG_ENV) or "batched",
        now,
    )
    clock = ClockWatch(
        runtime.store, real_now, _settings(os.environ.get(CLOCK_ENV), ClockSettings, "clock")
    )
    db = os.environ.get(DB_ENV, "juncture.db")
    transmitter = runtime.transmitter(transmit_settings(os.environ.get(TRANSMIT_ENV), db))
    receiver = runtime.receiver(receive_settings(os.environ.get(RECEIVE_ENV)))
    return create_app(
        runtime,
        transmitter=transmitter,
        receiver=receiver,
        inventory=inventory_settings(os.environ.get(INVENTORY_ENV)),
        clock=clock,
        limits=limits_from(os.environ.get(LIMITS_ENV)),
        metrics_token=(os.environ.get(METRICS_TOKEN_ENV) or "").strip() or None,
        dev_clock=dev_clock,
    )
