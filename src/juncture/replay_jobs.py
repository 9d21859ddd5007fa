"""A replay run as a job of the admin API (service/rehearsals.py): kept in the store, so that
every node reads it and one runs at a time across them all (`store.protocols.ReplayJobStore`).

Beside `juncture.records`, in its layer: the store, the services and the API share it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

__all__ = ["ReplayJob", "ReplayStatus"]

#: ``lost``: its node stopped writing its heartbeat (it died) before it finished.
ReplayStatus = Literal["running", "done", "failed", "lost"]


class ReplayJob(msgspec.Struct, frozen=True, kw_only=True):
    """A replay in the background: its window, its progress, then its report and the rules
    broken (or why it failed)."""

    id: str
    by: str
    candidate: str
    against: str | None
    status: ReplayStatus
    started_at: datetime
    #: The node running it, and when it last wrote its progress (its heartbeat).
    node: str = ""
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    #: The window replayed: ``since`` inclusive, ``until`` exclusive, of ``app``/``checkpoint``.
    since: datetime | None = None
    until: datetime | None = None
    app: str | None = None
    checkpoint: str | None = None
    #: Records read so far (a page at a time).
    processed: int = 0
    #: The report, once done (left out of lists: read the job for it).
    report: dict[str, Any] | None = None
    rules: list[str] = []
    broken: list[str] = []
    error: str | None = None
