"""Transmitting Shared Signals: Juncture tells apps when a session was revoked, its assurance
changed, or what it may do changed (a reroute, a standing allow withdrawn).

Apps (receivers) manage their streams with their own API keys (SSF stream management,
`api/ssf.py`). A stream only ever carries events about the sessions of the app that owns it.
Every event is signed (`SetSigner`, the server's key in ``<db>.ssf-key.json``, published at
`/ssf/jwks.json`), written to the durable outbox in the same call that made the change, and
delivered by a background worker: pushed (RFC 8935, with retries and backoff, to https
endpoints that are not private unless the operator allows them) or taken by polling (RFC 8936).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from juncture.events import catalog
from juncture.events.set import SetSigner, new_signing_key, public_jwks
from juncture.events.subjects import matches, parse_subject
from juncture.records import OutboxItem, Session, Stream
from juncture.service.emitter import Emitter
from juncture.store.files import create_once
from juncture.store.protocols import Store

PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
#: The events Juncture transmits (the SSF stream-control events are sent whatever is asked).
SUPPORTED = (
    catalog.SESSION_REVOKED,
    catalog.ASSURANCE_LEVEL_CHANGE,
    catalog.TOKEN_CLAIMS_CHANGE,
)


class TransmitSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: The issuer of Juncture's SETs (its public base URL).
    issuer: str = "http://127.0.0.1:8900"
    #: The signing key (a private JWK, made on first start).
    key_file: str | None = None
    #: Allow plain-http, loopback and private push endpoints (development and tests only).
    allow_private: bool = False


def load_signer(path: Path) -> SetSigner:
    """The signing key in ``path`` (made, mode 0600, when it does not exist).

    Workers starting together may each make one: the first to link its file into place wins,
    the others read the winner's (`create_once`)."""
    if not path.exists():
        create_once(path, msgspec.json.encode(new_signing_key("RS256")) + b"\n")
    key = msgspec.json.decode(path.read_bytes())
    return SetSigner(key, alg="RS256")


def session_subject(session: Session) -> dict[str, Any]:
    """How Juncture names a session in the events it sends."""
    return {
        "format": "complex",
        "user": {"format": "opaque", "id": session.subject_id},
        "session": {"format": "opaque", "id": session.id},
    }


class Transmitter:
    """Signs events and writes them to the outbox of every stream that asked for them."""

    def __init__(
        self,
        store: Store,
        now: Callable[[], datetime],
        emitter: Emitter,
        settings: TransmitSettings,
    ) -> None:
        self.store = store
        self.now = now
        self.settings = settings
        self.signer = load_signer(Path(settings.key_file or "juncture.db.ssf-key.json"))
        self.wake = threading.Event()
        emitter.listen(self.emit)

    @property
    def issuer(self) -> str:
        return self.settings.issuer.rstrip("/")

    def jwks(self) -> dict[str, Any]:
        return public_jwks(self.signer)

    def configuration(self) -> dict[str, Any]:
        """`/.well-known/ssf-configuration` (SSF §7.1)."""
        base = self.issuer
        return {
            "spec_version": "1_0",
            "issuer": base,
            "jwks_uri": f"{base}/ssf/jwks.json",
            "delivery_methods_supported": [PUSH, POLL],
            "configuration_endpoint": f"{base}/ssf/streams",
            "status_endpoint": f"{base}/ssf/status",
            "add_subject_endpoint": f"{base}/ssf/subjects:add",
            "remove_subject_endpoint": f"{base}/ssf/subjects:remove",
            "verification_endpoint": f"{base}/ssf/verify",
            "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6750"}],
            "default_subjects": "ALL",
        }

    # -- emitting ------------------------------------------------------------------------------
    def emit(self, kind: str, session: Session, details: Mapping[str, Any]) -> None:
        """Tell the session's app's streams (an `Emitter` listener: after the change is stored)."""
        now = self.now()
        try:
            outgoing = self._outgoing(kind, details, now)
            if outgoing is None:
                return
            self.enqueue(
                outgoing,
                session_subject(session),
                list(self.store.list_streams(app=session.app)),
                now,
            )
        except Exception:  # the change is made and stored: telling streams must not undo it
            logging.getLogger("juncture.transmit").exception("could not enqueue `%s`", kind)

    def _outgoing(
        self, kind: str, details: Mapping[str, Any], now: datetime
    ) -> catalog.Outgoing | None:
        if kind == "session-revoked":
            return catalog.session_revoked(
                reason_admin=f"Juncture revoked the session: {details.get('reason')}",
                event_timestamp=now,
            )
        if kind == "assurance-level-change":
            previous = int(details["previous"])
            return catalog.assurance_level_change(
                current_aal=int(details["current"]),
                previous_aal=previous if previous >= 1 else None,  # AAL 0: nothing proven
                event_timestamp=now,
            )
        if kind == "token-claims-change":
            return catalog.token_claims_change(claims=dict(details), event_timestamp=now)
        return None

    def enqueue(
        self,
        outgoing: catalog.Outgoing,
        subject: dict[str, Any],
        streams: list[Stream],
        now: datetime,
        *,
        always: bool = False,
    ) -> list[OutboxItem]:
        """Sign the event for each stream that takes it and write them to the outbox."""
        parsed = parse_subject(subject)
        items: list[OutboxItem] = []
        txn = None
        for stream in streams:
            if stream.status == "disabled":
                continue
            if not always and outgoing.event_type not in stream.events_delivered:
                continue
            if not always:
                wanted = self.store.list_stream_subjects(stream.id)
                if wanted and not any(matches(parse_subject(w.subject), parsed) for w in wanted):
                    continue
            token = self.signer.issue(
                issuer=self.issuer,
                audience=stream.aud,
                event_type=outgoing.event_type,
                payload=outgoing.payload,
                subject=parsed,
                now=now,
                txn=txn,
            )
            jti = _jti_of(token)
            txn = txn or jti  # one cause, one txn across the streams
            items.append(
                OutboxItem(
                    stream_id=stream.id,
                    jti=jti,
                    set=token,
                    event_type=outgoing.event_type,
                    created_at=now,
                    next_attempt_at=now,
                )
            )
        if items:
            self.store.enqueue(items)
            self.wake.set()
        return items


def _jti_of(token: str) -> str:
    import base64

    payload = token.split(".")[1]
    claims = msgspec.json.decode(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["jti"])


class SignalWorkers:
    """The background threads of Shared Signals: push delivery from the outbox (woken at
    once when something is enqueued, and every second for retries), and polling of the
    transmitters configured for poll delivery."""

    def __init__(self, transmitter: Transmitter | None, receiver: Any) -> None:
        self.transmitter = transmitter
        self.receiver = receiver
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self.transmitter is not None:
            self._threads.append(
                threading.Thread(target=self._deliver, name="ssf-push", daemon=True)
            )
        if self.receiver is not None and (
            self.receiver.watch is not None  # a file: poll transmitters may be added later
            or any(entry.poll_url for entry, _ in self.receiver.transmitters.values())
        ):
            self._threads.append(threading.Thread(target=self._poll, name="ssf-poll", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self.transmitter is not None:
            self.transmitter.wake.set()
        for thread in self._threads:
            thread.join(timeout=10)

    def _deliver(self) -> None:
        from juncture.events.delivery import PushDelivery

        assert self.transmitter is not None
        transmitter = self.transmitter
        delivery = PushDelivery(
            transmitter.store,
            now=transmitter.now,
            allow_private=transmitter.settings.allow_private,
        )
        while not self._stop.is_set():
            transmitter.wake.wait(1.0)
            transmitter.wake.clear()
            try:
                delivery.deliver_due()
            except Exception:  # never let the worker die; the outbox keeps the items
                logging.getLogger("juncture.transmit").exception("push delivery failed")

    def _poll(self) -> None:
        from juncture.service.receive import poll_all

        while not self._stop.wait(self.receiver.settings.poll_interval):
            try:
                poll_all(self.receiver)
            except Exception:
                logging.getLogger("juncture.receive").exception("polling failed")
