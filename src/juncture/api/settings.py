"""The server's settings as one typed struct: what `juncture serve` decides and its workers use.

`juncture serve` builds a `ServerSettings` once from its options (and validates it); uvicorn
with ``--workers`` > 1 starts worker processes that import the app factory by name, so the
settings cross the process boundary as one environment variable, `SETTINGS_ENV`, holding the
struct as JSON. A worker decodes it strictly (`from_environment`): an unknown field or a
wrong type stops it. See docs/architecture.md ("Server settings") for how a new option flows.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from juncture.api.limits import Limits
from juncture.service.authn import AuthnSettings
from juncture.service.clock import ClockSettings
from juncture.service.database import files_base
from juncture.service.inventory import InventorySettings
from juncture.service.observe import ObserveSettings
from juncture.service.receive import ReceiveSettings
from juncture.service.rehearsals import PublishGate
from juncture.service.shadow import RECORD_RATE
from juncture.service.transmit import TransmitSettings

#: The server's settings (`ServerSettings` as JSON), handed from `juncture serve` to workers.
SETTINGS_ENV = "JUNCTURE_SERVER_SETTINGS"
#: The token `/metrics` requires (``Authorization: Bearer``), as the operator may set it for
#: `juncture serve` (``--metrics-token-file`` wins); it reaches workers in `SETTINGS_ENV`.
METRICS_TOKEN_ENV = "JUNCTURE_METRICS_TOKEN"  # noqa: S105 (a variable name)


class ServerSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything a worker needs to build the app, one struct per concern."""

    #: The SQLite database file.
    db: str = "juncture.db"
    #: PostgreSQL connections each worker keeps at most (None: the backend's default; SQLite:
    #: unused). A call finding none free waits 2 s, then is answered 503 ``unavailable.store``.
    db_pool_size: int | None = None
    #: Sessions each worker keeps in memory at most (0: none).
    cache_sessions: int = 20_000
    #: Keep decision records this many days (0: forever).
    retention_days: float = 0
    #: ``batched`` or ``durable`` (when a decision's record is committed).
    decision_log: str = "batched"
    #: The rules a new version's rehearsal must pass before it is activated (None: none).
    publish_gate: PublishGate | None = None
    #: Differences the shadow version records a second on a worker at most (0: no limit).
    shadow_record_rate: float = RECORD_RATE
    #: Where requests call the store: ``auto`` (as the store asks), ``loop`` or ``threads``
    #: (api/boundary.py).
    store_calls: str = "auto"
    #: Development mode: a test clock moves decision time (one worker).
    dev: bool = False
    #: The token `/metrics` requires; None: `/metrics` is open.
    metrics_token: str | None = None
    clock: ClockSettings = msgspec.field(default_factory=ClockSettings)
    observe: ObserveSettings = msgspec.field(default_factory=ObserveSettings)
    authn: AuthnSettings = msgspec.field(default_factory=AuthnSettings)
    transmit: TransmitSettings = msgspec.field(default_factory=TransmitSettings)
    receive: ReceiveSettings = msgspec.field(default_factory=ReceiveSettings)
    inventory: InventorySettings = msgspec.field(default_factory=InventorySettings)
    limits: Limits = msgspec.field(default_factory=Limits)

    def with_key_files(self) -> ServerSettings:
        """The key files that were not given, next to the database: ``<db>.keys`` (secrets
        at rest) and ``<db>.ssf-key.json`` (the events' signing key); for a PostgreSQL URL,
        in the current directory (`files_base`)."""
        return msgspec.structs.replace(
            self,
            authn=authn_key_file(self.authn, self.db),
            transmit=(
                self.transmit
                if self.transmit.key_file is not None
                else msgspec.structs.replace(
                    self.transmit, key_file=str(files_base(self.db)) + ".ssf-key.json"
                )
            ),
        )


def authn_key_file(authn: AuthnSettings, db: str | Path) -> AuthnSettings:
    """The authentication settings with their key file, ``<db>.keys`` when not given."""
    if authn.key_file is not None:
        return authn
    return msgspec.structs.replace(authn, key_file=str(files_base(db)) + ".keys")


def encode(settings: ServerSettings) -> str:
    return msgspec.json.encode(settings).decode()


def decode(text: str | None) -> ServerSettings:
    """The settings from their JSON (None or empty: the defaults), with their key files.
    Strict: an unknown field or a wrong type raises ValueError."""
    if not text:
        return ServerSettings().with_key_files()
    try:
        return msgspec.json.decode(text, type=ServerSettings).with_key_files()
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise ValueError(f"invalid server settings: {exc}") from None


def from_environment() -> ServerSettings:
    """The settings `juncture serve` handed to this process in `SETTINGS_ENV`."""
    return decode(os.environ.get(SETTINGS_ENV))
