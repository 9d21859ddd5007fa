"""The console's Shared Signals page: the streams this server transmits on (their receiver,
delivery, status and how their outbox stands) and the events received from transmitters (from
whom, and what each did to which sessions). Streams are their apps' to change (the SSF API):
the console reads them. Trusting a transmitter is the admin API's, so the console can stop
trusting one (`manage_apps`), as `DELETE /admin/v1/transmitters/{name}` does."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from juncture.api.console.render import Ctx, redirect
from juncture.api.transmitters import change_transmitters, transmitter_view
from juncture.records import ReceivedEvent
from juncture.service.receive import Receiver

#: The SSF delivery methods by their names on the page.
METHODS = {"urn:ietf:rfc:8935": "push", "urn:ietf:rfc:8936": "poll"}
#: Events received shown at most (the newest).
RECEIVED = 50
#: A status or a result as the stylesheet colours it.
TONE = {"enabled": "active", "paused": "pending", "disabled": "revoked",
        "applied": "active", "ignored": "pending", "error": "revoked"}  # fmt: skip


def _receiver(ctx: Ctx) -> Receiver:
    receiver: Receiver = ctx.request.app.state.receiver
    return receiver


def short(event_type: str) -> str:
    """An event type URI by its last segment (`session-revoked`)."""
    return event_type.rstrip("/").rsplit("/", 1)[-1]


def did(event: ReceivedEvent) -> dict[str, Any]:
    """What a received event did: the sessions it revoked, those whose signals it set (with
    the signals), those it rechecked, and why it did nothing when it did nothing."""
    detail = event.detail
    revoked = [str(s) for s in detail.get("revoked", ())]
    signals = detail.get("signals")
    by_session = signals.items() if isinstance(signals, dict) else ()
    signalled = sorted(((str(k), v if isinstance(v, dict) else {}) for k, v in by_session),
                       key=lambda row: row[0])  # fmt: skip
    rechecked = [str(s) for s in detail.get("rechecked", ())]
    about_stream = "an event about the stream itself" if detail.get("stream") else None
    why = detail.get("reason") or about_stream
    return {"revoked": revoked, "signalled": signalled, "rechecked": rechecked, "why": why}


async def signals(ctx: Ctx) -> Response:
    runtime = ctx.runtime
    apps = {a.id: a.name for a in runtime.apps.list()}
    streams = [(s, runtime.streams.delivery(s)) for s in runtime.streams.every()]
    receiver = _receiver(ctx)
    receiver.refresh()
    trusted = [transmitter_view(e) for e, _ in receiver.transmitters.values()]
    received = [(e, name, short(e.event_type), did(e))
                for e, name in receiver.received(RECEIVED)]  # fmt: skip
    return ctx.render(
        "signals.html", streams=streams, apps=apps, methods=METHODS, tone=TONE, short=short,
        trusted=trusted, file_error=receiver.file_error, received=received,
        limit=RECEIVED, can_apps=ctx.can("manage_apps"),
    )  # fmt: skip


async def distrust(ctx: Ctx) -> Response:
    """Stop trusting a transmitter: removed from the transmitters file, as the admin API does
    (its events are refused from then on; what it did stays)."""
    change_transmitters(_receiver(ctx), remove=ctx.request.path_params["name"])
    return redirect("/console/signals")
