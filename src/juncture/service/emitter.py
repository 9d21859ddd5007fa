"""Where the services tell what happened to a session (a revocation, a new AAL, changed
claims), after the change is stored: the event streams listen (service/transmit.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from juncture.records import Session

#: A listener: (event kind, the session as stored now, the event's details).
Listener = Callable[[str, Session, Mapping[str, Any]], None]


class Emitter:
    """Fans a session event out to its listeners (none: the event goes nowhere)."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, kind: str, session: Session, details: Mapping[str, Any]) -> None:
        for listener in self._listeners:
            listener(kind, session, details)
