"""Receiving Juncture's Shared Signals events (docs/shared-signals.md#transmitting).

`SetVerifier` verifies a Security Event Token as Juncture verifies the ones it receives: the
``typ``, an algorithm pinned by the application (never ``none`` or HMAC), the signature by a key
of the stream's JWKS (``/ssf/jwks.json``), ``iss``, ``aud``, ``iat`` (not in the future, not
older than ``max_age``), no ``exp`` or ``sub``, exactly one event. `PollReceiver` polls a stream
(RFC 8936) and `push_endpoint` is an ASGI application a stream pushes to (RFC 8935); both call
the application's handler once per verified event. Delivery is at least once: a handler that
raises leaves its event unacknowledged (a poll gets it again; a push is answered 500 and
retried). An event handled already (its ``jti``, within the verifier's ``max_age``: older ones
are refused by their ``iat``) is acknowledged again without calling the handler (`SeenEvents`),
so a SET replayed, or delivered again after its acknowledgement was lost, is handled once in
a process; across processes a handler must still bear an event twice."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from juncture.sdk import calls
from juncture.sdk.asgi import Receive, Scope, Send, respond
from juncture.sdk.enforce import Answer
from juncture.sdk.errors import JunctureError, JunctureProtocolError, JunctureUnavailable

__all__ = ["InvalidSET", "PollReceiver", "SecurityEvent", "SeenEvents", "SetVerifier",
           "push_endpoint"]  # fmt: skip

TYP = "secevent+jwt"
ASYMMETRIC = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                        "ES256", "ES384", "ES512", "EdDSA"})  # fmt: skip


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """One verified event: its ``event_type`` (a CAEP or RISC URI), its ``event`` members, and
    its ``subject`` (Juncture's: ``{"format": "complex", "user": ..., "session": ...}``)."""

    jti: str
    issuer: str
    issued_at: int
    event_type: str
    event: Mapping[str, Any]
    subject: Mapping[str, Any] | None


class InvalidSET(JunctureError):
    """A SET refused, with the RFC 8935 error (``err``) and why (``description``)."""

    def __init__(self, err: str, description: str) -> None:
        super().__init__(f"{err}: {description}", code=f"ssf.{err}")
        self.err = err
        self.description = description


def _segment(part: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, binascii.Error) as exc:
        raise InvalidSET("invalid_request", "not a compact JWS") from exc


class SetVerifier:
    def __init__(
        self,
        issuer: str,
        audience: str | Sequence[str],
        jwks: Mapping[str, Any],
        *,
        algorithms: Sequence[str] = ("RS256",),
        max_age: float = 7 * 86400,
        leeway: float = 300,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not algorithms or not set(algorithms) <= ASYMMETRIC:
            raise ValueError(f"algorithms must be asymmetric ones: {sorted(ASYMMETRIC)}")
        self.issuer = issuer
        self.audiences = (audience,) if isinstance(audience, str) else tuple(audience)
        try:
            self.keys = KeySet.import_key_set(dict(jwks))  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError) as exc:
            raise ValueError(f"jwks is not a usable key set: {exc}") from exc
        self.algorithms = tuple(algorithms)
        self.max_age = max_age
        self.leeway = leeway
        self.clock = clock

    def verify(self, token: str) -> SecurityEvent:
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) != 3 or len(token) > 65536:
            raise InvalidSET("invalid_request", "not a compact JWS of at most 64 KiB")
        header = _segment(parts[0])
        if not isinstance(header, dict) or header.get("typ") != TYP:
            raise InvalidSET("invalid_request", f"typ is not {TYP}")
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise InvalidSET("invalid_key", "the algorithm is not accepted")
        kid = header.get("kid")
        keys = [k for k in self.keys.keys if kid is None or k.kid == kid]
        claims = None
        for key in keys:
            try:
                claims = json.loads(jws.deserialize_compact(token, key, algorithms=[alg]).payload)
                break
            except (JoseError, ValueError):
                continue
        if not isinstance(claims, dict):
            raise InvalidSET("invalid_key", "no key of the stream verifies the signature")
        return self._event(claims)

    def _event(self, claims: dict[str, Any]) -> SecurityEvent:
        if claims.get("iss") != self.issuer:
            raise InvalidSET("invalid_issuer", "iss is not the stream's issuer")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(a in self.audiences for a in audiences):
            raise InvalidSET("invalid_audience", "aud does not name this receiver")
        if "exp" in claims or "sub" in claims:
            raise InvalidSET("invalid_request", "a SET carries no exp or sub")
        iat, jti, events = claims.get("iat"), claims.get("jti"), claims.get("events")
        if not isinstance(iat, int) or isinstance(iat, bool):
            raise InvalidSET("invalid_request", "iat is required")
        now = self.clock()
        if iat > now + self.leeway or iat < now - self.max_age:
            raise InvalidSET("invalid_request", "iat is in the future or too old")
        if not isinstance(jti, str) or not jti:
            raise InvalidSET("invalid_request", "jti is required")
        if not isinstance(events, dict) or len(events) != 1:
            raise InvalidSET("invalid_request", "a SET carries exactly one event")
        ((event_type, event),) = events.items()
        if not isinstance(event, dict):
            raise InvalidSET("invalid_request", "the event is not an object")
        subject = claims.get("sub_id")
        return SecurityEvent(
            jti=jti, issuer=self.issuer, issued_at=iat, event_type=event_type, event=event,
            subject=subject if isinstance(subject, dict) else None,
        )  # fmt: skip


class SeenEvents:
    """The events handled in the last ``max_age`` seconds, by issuer and ``jti`` (at most
    ``capacity``: the oldest handled go first). A SET older than ``max_age`` is refused by its
    ``iat``, so a replay is caught by one or the other."""

    def __init__(
        self,
        max_age: float,
        *,
        capacity: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_age <= 0 or capacity < 1:
            raise ValueError("max_age and capacity must be positive")
        self.max_age = max_age
        self.capacity = capacity
        self.clock = clock
        self._handled: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, event: SecurityEvent) -> bool:
        with self._lock:
            self._forget_old()
            return (event.issuer, event.jti) in self._handled

    def add(self, event: SecurityEvent) -> None:
        """Remember ``event`` as handled (once its handler returned)."""
        with self._lock:
            self._handled[(event.issuer, event.jti)] = self.clock()
            self._handled.move_to_end((event.issuer, event.jti))
            self._forget_old()

    def _forget_old(self) -> None:
        oldest = self.clock() - self.max_age
        while self._handled and (
            len(self._handled) > self.capacity or next(iter(self._handled.values())) < oldest
        ):
            self._handled.popitem(last=False)


def _handle(
    event: SecurityEvent, handler: Callable[[SecurityEvent], None], seen: SeenEvents
) -> bool:
    """Call ``handler`` unless ``event`` was handled already; whether it was called."""
    if event in seen:
        return False
    handler(event)  # raises: not remembered, so handled when it comes again
    seen.add(event)
    return True


def _read(response: httpx.Response) -> dict[str, Any]:
    """The JSON answer; a problem raised as the clients raise it (`ApiError` with its code,
    `JunctureUnavailable` for a 5xx)."""
    body: dict[str, Any] = calls.read(response)
    return body


class PollReceiver:
    """Polls one of the app's streams (RFC 8936) and hands each verified event to
    ``handler``; acknowledges it in the next poll, or reports it refused (``setErrs``)."""

    def __init__(
        self,
        base_url: str,
        app_key: str,
        stream_id: str,
        handler: Callable[[SecurityEvent], None],
        verifier: SetVerifier,
        *,
        max_events: int = 10,
        timeout: float = 5.0,
        seen: SeenEvents | None = None,
    ) -> None:
        self.stream_id = stream_id
        self.handler = handler
        self.verifier = verifier
        self.seen = seen if seen is not None else SeenEvents(verifier.max_age)
        self.max_events = max_events
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout,
                                  headers={"Authorization": f"Bearer {app_key}"})  # fmt: skip
        self._ack: list[str] = []
        self._errors: dict[str, dict[str, str]] = {}

    @classmethod
    def for_stream(
        cls,
        base_url: str,
        app_key: str,
        stream_id: str,
        handler: Callable[[SecurityEvent], None],
        **options: Any,
    ) -> PollReceiver:
        """A receiver whose verifier takes the stream's ``iss`` and ``aud`` and Juncture's
        signing keys from the server (read once, over the app's own authenticated calls)."""
        headers = {"Authorization": f"Bearer {app_key}"}
        with httpx.Client(base_url=base_url.rstrip("/"), timeout=5.0, headers=headers) as http:
            try:
                stream = _read(http.get("/ssf/streams", params={"stream_id": stream_id}))
                jwks = _read(http.get("/ssf/jwks.json"))
            except httpx.HTTPError as exc:
                raise JunctureUnavailable(f"Juncture cannot be reached: {exc!r}") from exc
        verifier = SetVerifier(stream["iss"], stream["aud"], jwks)
        return cls(base_url, app_key, stream_id, handler, verifier, **options)

    def close(self) -> None:
        self._http.close()

    def poll_once(self) -> int:
        """One poll: acknowledge what was handled, take new events, handle them. The number
        of events handled (an event handled before is acknowledged, not counted)."""
        body = {"ack": self._ack, "setErrs": self._errors, "maxEvents": self.max_events,
                "returnImmediately": True}  # fmt: skip
        try:
            response = self._http.post(f"/ssf/poll/{quote(self.stream_id, safe='')}", json=body)
        except httpx.HTTPError as exc:
            raise JunctureUnavailable(f"Juncture cannot be reached: {exc!r}") from exc
        sets = _read(response).get("sets", {})
        self._ack, self._errors = [], {}  # delivered with this poll
        if not isinstance(sets, dict):
            raise JunctureProtocolError("sets is not an object")
        handled = 0
        for jti, token in sets.items():
            try:
                event = self.verifier.verify(token)
            except InvalidSET as refused:
                self._errors[jti] = {"err": refused.err, "description": refused.description}
                continue
            called = _handle(event, self.handler, self.seen)  # raises: polled again
            self._ack.append(jti)
            handled += called
        return handled

    def run(self, stop: threading.Event, interval: float = 5.0) -> None:
        """Poll until ``stop`` is set: at once while events come, else every ``interval``
        seconds (also after Juncture could not be reached)."""
        while not stop.is_set():
            try:
                busy = self.poll_once() > 0
            except JunctureUnavailable:
                busy = False
            if not busy:
                stop.wait(interval)


def push_endpoint(
    verifier: SetVerifier,
    handler: Callable[[SecurityEvent], None],
    authorization: str,
    seen: SeenEvents | None = None,
) -> Callable[[Scope, Receive, Send], Any]:
    """An ASGI application receiving pushed SETs (RFC 8935): ``authorization`` is the header
    value the stream was told to send (its ``authorization_header``). 202 when verified and
    handled (or handled before: ``seen``); 400 ``{"err", "description"}`` when refused; 401
    without the right header."""
    handled = seen if seen is not None else SeenEvents(verifier.max_age)

    def problem(status: int, err: str, description: str) -> Answer:
        body = json.dumps({"err": err, "description": description}).encode()
        return Answer(status, [("content-type", "application/json")], body)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False) and sum(map(len, chunks)) <= 65536
        if scope["method"] != "POST":
            answer = problem(405, "invalid_request", "POST a SET")
        elif not hmac.compare_digest(headers.get("authorization", "").encode(),
                                     authorization.encode()):  # fmt: skip
            answer = problem(401, "authentication_failed", "wrong or missing authorization")
        elif headers.get("content-type", "").split(";")[0].strip() != "application/secevent+jwt":
            answer = problem(400, "invalid_request", "the type is not application/secevent+jwt")
        else:
            try:
                event = verifier.verify(b"".join(chunks).decode("ascii", "replace").strip())
            except InvalidSET as refused:
                answer = problem(400, refused.err, refused.description)
            else:
                _handle(event, handler, handled)  # raises: a 500, pushed again
                answer = Answer(202, [], b"")
        await respond(answer, send)

    return app
