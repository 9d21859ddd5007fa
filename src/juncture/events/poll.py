"""Poll delivery (RFC 8936), both sides.

Transmitter: `answer_poll` is what ``POST /ssf/poll/{stream_id}`` does with a receiver's
request, over the store alone. In order: ``ack`` marks those SETs of this stream delivered;
``setErrs`` gives those SETs up, keeping the receiver's ``err`` and ``description`` (the
receiver refused them: they are not sent again); then up to ``maxEvents`` of the stream's
pending SETs are returned, oldest first, with ``moreAvailable`` (RFC 8936's poll request and
response). A SET that is returned but not acknowledged is returned again by the next poll.
``maxEvents`` 0 acknowledges only; when absent it is `MAX_EVENTS`, and a larger value is
lowered to it. ``returnImmediately`` is accepted and ignored: Juncture does not long-poll, it
always answers at once (a receiver asking to wait gets what there is now, possibly nothing).
A paused or disabled stream returns nothing (SSF 1.0's stream status: a paused stream holds
its events).

Receiver: `PollClient` polls a transmitter (`juncture.outbound` checks and pins the URL
before every request). Each SET it gets goes to ``handle``, which answers None (processed) or
an RFC 8935 err code; the jtis go back as ``ack`` or ``setErrs`` in the *next* request, which
also asks for more, until a request brings nothing. Acknowledgements that could not be sent
(a failed request, a callback that raised) are kept and sent by the next `PollClient.poll_once`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import httpx
import msgspec

from juncture.errors import JunctureError
from juncture.events.set import ERR_CODES, MAX_SET_BYTES
from juncture.outbound import Resolver, UnsafeUrl, new_client, pin_url, post, resolve_host
from juncture.records import Stream
from juncture.store.protocols import StreamStore

__all__ = [
    "MAX_ACKS",
    "MAX_EVENTS",
    "POLL",
    "PollClient",
    "PollError",
    "PollFailed",
    "PollReport",
    "PollRequest",
    "answer_poll",
]

POLL = "urn:ietf:rfc:8936"
#: The most SETs one poll answer carries (and the default when ``maxEvents`` is absent).
MAX_EVENTS = 100
#: The most ``ack`` entries, and the most ``setErrs`` entries, one poll request may carry.
MAX_ACKS = 1000
_MAX_ERROR_CHARS = 300


class PollError(JunctureError):
    """A poll request the transmitter refuses: ``400 {"err", "description"}`` (RFC 8936's
    error response; not a `Refusal`, so never answered as a problem)."""

    def __init__(self, err: str, description: str) -> None:
        if err not in ERR_CODES:
            raise ValueError(f"unknown SET error code `{err}`")
        super().__init__(f"{err}: {description}", code="request.invalid", status=400)
        self.err = err
        self.description = description

    def body(self) -> dict[str, str]:
        return {"err": self.err, "description": self.description}


class SetErr(msgspec.Struct, frozen=True, kw_only=True):
    """Why a receiver refused a SET (a value of ``setErrs``)."""

    err: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    description: str = ""


class PollRequest(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The body of a poll request (RFC 8936's request attributes); unknown members are
    ignored."""

    max_events: Annotated[int, msgspec.Meta(ge=0)] = MAX_EVENTS
    return_immediately: bool = False
    ack: Annotated[tuple[str, ...], msgspec.Meta(max_length=MAX_ACKS)] = ()
    set_errs: Annotated[dict[str, SetErr], msgspec.Meta(max_length=MAX_ACKS)] = {}


def _clean(text: str) -> str:
    """Untrusted text made safe to keep and log: printable, one line, bounded."""
    return "".join(c if c.isprintable() else " " for c in text)[:_MAX_ERROR_CHARS]


def answer_poll(
    store: StreamStore, stream: Stream, request_body: Mapping[str, Any] | Any, *, now: datetime
) -> dict[str, Any]:
    """Answer a receiver's poll of ``stream``: ``{"sets": {jti: SET}, "moreAvailable": bool}``.

    ``request_body`` is the decoded JSON the receiver sent; it is checked here.

    Raises:
        PollError: ``invalid_request`` for a malformed request (the description names the
            member) or a stream that is not delivered by poll.
    """
    if stream.delivery_method != POLL:
        raise PollError("invalid_request", "this stream is delivered by push")
    try:
        request = msgspec.convert(request_body, PollRequest)
    except msgspec.ValidationError as error:
        raise PollError("invalid_request", str(error)) from None
    acked = set(request.ack)
    if acked:
        store.mark_delivered(stream.id, list(dict.fromkeys(request.ack)), at=now)
    refused = {jti: e for jti, e in request.set_errs.items() if jti not in acked}
    if refused:
        # Only the oldest pending SETs are ever returned, and the head of the outbox only
        # shrinks until they are settled, so a SET the receiver holds is among the first
        # MAX_EVENTS still pending: an unknown or settled jti is ignored.
        for item in store.pending(stream.id, limit=MAX_EVENTS):
            found = refused.get(item.jti)
            if found is None:
                continue
            text = f"refused by the receiver: {found.err}"
            if found.description:
                text += f": {found.description}"
            store.mark_failed(item.seq, at=now, error=_clean(text), next_attempt_at=None)
    if stream.status != "enabled":  # paused: held; disabled: nothing is sent
        return {"sets": {}, "moreAvailable": False}
    wanted = min(request.max_events, MAX_EVENTS)
    items = store.pending(stream.id, limit=wanted + 1)
    sets = {item.jti: item.set for item in items[:wanted]}
    return {"sets": sets, "moreAvailable": len(items) > wanted}


# -- the receiver's side -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PollReport:
    """What one `PollClient.poll_once` did."""

    received: int = 0  # SETs handed to ``handle``
    acknowledged: int = 0  # jtis sent in ``ack``
    refused: int = 0  # jtis sent in ``setErrs``
    requests: int = 0
    more_available: bool = False  # the transmitter has more (the round limit was reached)


class PollFailed(Exception):
    """A poll request that failed: the URL check, the connection, or the transmitter's answer
    (``status``; ``err`` when it sent an RFC 8936 error body)."""

    def __init__(self, reason: str, *, status: int | None = None, err: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.err = err


class _Answer(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    sets: dict[str, str] = {}
    more_available: bool = False


class _ErrBody(msgspec.Struct, frozen=True, kw_only=True):
    err: str
    description: str = ""


class PollClient:
    """Polls one transmitter's poll endpoint (RFC 8936) for a receiver.

    ``client``: used for every request when given; otherwise each `poll_once` opens and closes
    its own (`juncture.outbound.new_client`). ``max_rounds`` bounds the requests of one
    `poll_once`.
    """

    def __init__(
        self,
        url: str,
        authorization_header: str | None = None,
        *,
        client: httpx.Client | None = None,
        allow_private: bool,
        timeout: float = 10.0,
        max_rounds: int = 20,
        resolve: Resolver = resolve_host,
    ) -> None:
        self.url = url
        self._authorization = authorization_header
        self._client = client
        self._allow_private = allow_private
        self._timeout = timeout
        self._max_rounds = max(1, max_rounds)
        self._resolve = resolve
        self._ack: dict[str, None] = {}  # to acknowledge in the next request (ordered set)
        self._errs: dict[str, dict[str, str]] = {}  # to report in the next request

    @property
    def unsent(self) -> int:
        """Acknowledgements and errors still to be sent."""
        return len(self._ack) + len(self._errs)

    def poll_once(self, handle: Callable[[str], str | None], max_events: int = 25) -> PollReport:
        """Poll until a request brings nothing (or ``max_rounds``), handing every SET to
        ``handle`` and acknowledging it in the following request.

        Raises:
            PollFailed: a request failed; what was handled is acknowledged next time.
            Exception: whatever ``handle`` raised; that SET is not acknowledged (it comes
                again), those before it are, next time.
        """
        received = acknowledged = refused = requests = 0
        more = True
        with ExitStack() as closing:
            client = self._client or closing.enter_context(new_client(timeout=self._timeout))
            while requests < self._max_rounds:
                ask = max_events if more else 0
                if ask == 0 and not self.unsent:
                    break
                sent_acks, sent_errs = len(self._ack), len(self._errs)
                answer = self._request(client, ask)
                requests += 1
                acknowledged += sent_acks
                refused += sent_errs
                for jti, token in answer.sets.items():
                    received += 1
                    err = handle(token)
                    if err is None:
                        self._ack[jti] = None
                    else:
                        self._errs[jti] = {
                            "err": err,
                            "description": f"the receiver refused the SET ({err})",
                        }
                more = answer.more_available and bool(answer.sets)
        return PollReport(
            received=received,
            acknowledged=acknowledged,
            refused=refused,
            requests=requests,
            more_available=more and requests >= self._max_rounds,
        )

    def _request(self, client: httpx.Client, max_events: int) -> _Answer:
        """One poll request carrying the pending acknowledgements; they are cleared once the
        transmitter answered 200."""
        try:
            pinned = pin_url(self.url, allow_private=self._allow_private, resolve=self._resolve)
        except UnsafeUrl as error:
            raise PollFailed(f"unsafe poll URL: {error.reason}") from None
        body: dict[str, Any] = {"maxEvents": max_events, "returnImmediately": True}
        if self._ack:
            body["ack"] = list(self._ack)
        if self._errs:
            body["setErrs"] = dict(self._errs)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._authorization:
            headers["Authorization"] = self._authorization
        limit = (max_events + 1) * 2 * MAX_SET_BYTES
        try:
            reply = post(
                client,
                pinned,
                content=msgspec.json.encode(body),
                headers=headers,
                timeout=self._timeout,
                max_bytes=limit,
            )
        except httpx.TimeoutException:
            raise PollFailed("the poll timed out") from None
        except httpx.HTTPError as error:
            raise PollFailed(_clean(f"the poll failed: {type(error).__name__}: {error}")) from None
        if reply.status == 200:
            try:
                answer = msgspec.json.decode(reply.body, type=_Answer)
            except msgspec.DecodeError as error:
                raise PollFailed(_clean(f"the poll answer is malformed: {error}"),
                                 status=200) from None  # fmt: skip
            self._ack.clear()
            self._errs.clear()
            return answer
        try:
            refusal = msgspec.json.decode(reply.body, type=_ErrBody)
        except msgspec.DecodeError:
            raise PollFailed(f"the transmitter answered {reply.status}",
                             status=reply.status) from None  # fmt: skip
        raise PollFailed(
            _clean(f"the transmitter answered {reply.status}: {refusal.err}: "
                   f"{refusal.description}"),
            status=reply.status,
            err=_clean(refusal.err),
        )  # fmt: skip
