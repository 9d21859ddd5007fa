"""The event streams apps receive Juncture's Shared Signals on (SSF stream management): each
app sees and changes its own streams only; poll delivery answered over the store."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from juncture.errors import NotFoundError, StateConflict
from juncture.events.poll import answer_poll
from juncture.records import App, Stream, StreamDelivery, StreamSubject
from juncture.store.protocols import ConflictError, Store


class Streams:
    """The streams of one store, as their apps manage them."""

    def __init__(self, store: Store, now: Callable[[], datetime]) -> None:
        self._store = store
        self._now = now

    def own(self, app: App, stream_id: str) -> Stream:
        """The app's stream. Raises NotFoundError 404 ``stream.not_found`` (another app's
        stream does not exist for it)."""
        stream = self._store.get_stream(stream_id)
        if stream is None or stream.app != app.id:
            raise NotFoundError("no such stream", code="stream.not_found")
        return stream

    def of(self, app: App) -> Sequence[Stream]:
        return self._store.list_streams(app=app.id)

    def every(self) -> Sequence[Stream]:
        """Every app's streams (the console's), by created_at then id."""
        return self._store.list_streams()

    def delivery(self, stream: Stream) -> StreamDelivery:
        """How the stream's outbox stands: pending, retrying and failed items, its last
        delivery and the newest error."""
        return self._store.delivery_status(stream.id)

    def create(self, stream: Stream) -> Stream:
        return self._store.put_stream(stream, expected_revision=0)

    def update(self, changed: Stream, *, read: Stream) -> Stream:
        """Store ``changed`` if the stream is still as it was ``read``.

        Raises:
            StateConflict: 409 ``state.conflict``, it changed meanwhile.
        """
        try:
            return self._store.put_stream(changed, expected_revision=read.revision)
        except ConflictError:
            raise StateConflict("the stream changed meanwhile; try again") from None

    def delete(self, stream: Stream) -> None:
        self._store.delete_stream(stream.id)

    def add_subject(self, stream: Stream, subject: dict[str, Any], *, verified: bool) -> None:
        self._store.add_stream_subject(
            StreamSubject(
                stream_id=stream.id, subject=subject, verified=verified, added_at=self._now()
            )
        )

    def remove_subject(self, stream: Stream, subject: dict[str, Any]) -> None:
        self._store.remove_stream_subject(stream.id, subject)

    def poll(self, stream: Stream, body: Mapping[str, Any] | Any) -> dict[str, Any]:
        """A receiver's poll answered (RFC 8936). Raises PollError."""
        return answer_poll(self._store, stream, body, now=self._now())
