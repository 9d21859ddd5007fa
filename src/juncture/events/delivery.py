"""Push delivery (RFC 8935): POST each SET of the durable outbox to its stream's endpoint.

`PushDelivery.deliver_due` takes what is due from the store and sends it, one SET per request,
``Content-Type: application/secevent+jwt``, ``Accept: application/json`` and the stream's
``authorization_header`` (SSF 1.0, stream configuration ``delivery``), to the address the
endpoint was checked and pinned to (`juncture.outbound`: the check runs again before every
batch, so a name that now resolves to a private address is refused). What an answer means
(`judge`):

====================  ===================================================================
answer                outcome
====================  ===================================================================
2xx                   delivered. RFC 8935's success response is ``202``; a ``200`` or
                      ``204`` also says the receiver took the SET, and sending it again
                      would only duplicate it, so any 2xx counts
400 ``{"err": …}``    rejected: the receiver refused this SET (RFC 8935's failure
                      response); given up at once, ``err`` and ``description`` kept
3xx                   failed (redirects are not followed: the receiver updates its
                      stream's ``endpoint_url`` instead)
401, 403              failed (the receiver's authorization may be fixed)
anything else         failed: 400 without an ``err``, other 4xx, 429, 5xx, a timeout,
                      a connection error, an endpoint that fails the URL check
====================  ===================================================================

A failure is retried with backoff: 5 s, 30 s, 2 min, 10 min, then every hour (``backoff``; a
``Retry-After`` longer than the step is honoured), until the item has failed ``max_attempts``
times or is ``max_age`` old, when it is given up (``given_up_at`` set, kept for inspection).
Every failure counts, 401/403 included. The last try is made at the ``max_age`` deadline.

Order: a stream's SETs go strictly in outbox order (``seq``). A stream whose oldest pending SET
is not due yet (it failed and waits for its retry) sends nothing, and a stream's batch stops at
its first failure: a later SET never overtakes an earlier one (SSF 1.0 wants the events about
a subject kept in order). A delivered or given-up SET no longer holds the stream up.
Streams are served in turn, one SET each, so a long backlog does not starve the others.

One deliverer per stream: several processes (server workers) may run a `PushDelivery` over one
store, and each stream is pushed by whichever holds its *delivery lease* (`StreamStore.
lease_stream`, held for ``lease`` and renewed before every SET). Another deliverer passes the
stream over until the lease is given up at the end of the batch or expires (a deliverer that
died holding it): a SET is pushed by one process at a time and the stream's order holds.

Delivery is at least once: a SET whose 202 was lost (timeout, crash before marking) is sent
again; receivers deduplicate by ``jti`` (RFC 8935). Neither the authorization header nor the
SET is ever logged or kept in an error. Synchronous: it runs in its own thread.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from itertools import takewhile
from typing import Literal

import httpx
import msgspec

from juncture.outbound import (
    Pinned,
    Reply,
    Resolver,
    UnsafeUrl,
    new_client,
    pin_url,
    post,
    resolve_host,
)
from juncture.records import OutboxItem, Stream
from juncture.store.protocols import StreamStore

__all__ = [
    "BACKOFF",
    "PUSH",
    "SET_MEDIA_TYPE",
    "DeliveryReport",
    "PushDelivery",
    "Verdict",
    "judge",
]

PUSH = "urn:ietf:rfc:8935"
SET_MEDIA_TYPE = "application/secevent+jwt"
BACKOFF: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
)
#: At most this much of a receiver's answer is read (an error body is small).
MAX_ANSWER_BYTES = 64 * 1024
_MAX_ERROR_CHARS = 300

log = logging.getLogger("juncture.events.delivery")

Outcome = Literal["delivered", "retrying", "given_up", "held"]


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one `PushDelivery.deliver_due` did."""

    delivered: int = 0
    retrying: int = 0  # failed, scheduled again
    given_up: int = 0  # rejected by the receiver, or out of attempts or time

    @property
    def attempted(self) -> int:
        return self.delivered + self.retrying + self.given_up


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an answer means for the SET: ``delivered``, or the error, and whether it is final
    (``reject``: do not retry) and how long the receiver asked us to wait."""

    delivered: bool
    error: str | None = None
    reject: bool = False
    retry_after: timedelta | None = None


class _ErrBody(msgspec.Struct, frozen=True, kw_only=True):
    err: str
    description: str = ""


def _clean(text: str) -> str:
    """Untrusted text made safe to keep and log: printable, one line, bounded."""
    text = "".join(c if c.isprintable() else " " for c in text)
    return text[:_MAX_ERROR_CHARS]


def _retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` (RFC 9110 §10.2.3) as a delay: seconds or an HTTP date; None when
    absent, malformed or in the past."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delay = when - now
    return delay if delay > timedelta(0) else None


def judge(reply: Reply, now: datetime) -> Verdict:
    """What the receiver's answer to a push means (the table in the module docstring)."""
    status = reply.status
    retry_after = _retry_after(reply.headers.get("retry-after"), now)
    match status:
        case _ if 200 <= status < 300:  # 202 per RFC 8935's success response; any 2xx took it
            return Verdict(delivered=True)
        case 400:  # RFC 8935's failure response: the SET is refused, with an err code saying why
            try:
                body = msgspec.json.decode(reply.body, type=_ErrBody)
            except msgspec.DecodeError:  # not JSON, or not an error body
                body = None
            if body is not None and body.err:
                text = f"rejected: {body.err}" + (f": {body.description}" if body.description
                                                   else "")  # fmt: skip
                return Verdict(delivered=False, error=_clean(text), reject=True)
            return Verdict(delivered=False, error="status 400 without an `err`")
        case _ if 300 <= status < 400:  # not followed: the receiver fixes its endpoint_url
            return Verdict(delivered=False, error=f"status {status}: redirect not followed")
        case 401 | 403:  # the receiver's authorization may be fixed: retried, counted
            return Verdict(delivered=False, error=f"status {status}: not authorized")
        case _:  # 429, 5xx, anything else: retried, after Retry-After when given
            return Verdict(delivered=False, error=f"status {status}", retry_after=retry_after)


def _pushable(stream: Stream | None) -> bool:
    return stream is not None and stream.status == "enabled" and stream.delivery_method == PUSH


class PushDelivery:
    """Delivers the outbox's due SETs to push streams; see the module docstring.

    ``client``: used for every request when given (tests, a custom CA); otherwise each
    stream's batch gets its own `juncture.outbound.new_client`, so a connection made for
    one host is never reused for another host behind the same address.
    """

    def __init__(
        self,
        store: StreamStore,
        *,
        now: Callable[[], datetime],
        allow_private: bool,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
        backoff: Sequence[timedelta] = BACKOFF,
        max_attempts: int = 10,
        max_age: timedelta = timedelta(days=1),
        resolve: Resolver = resolve_host,
        owner: str | None = None,
        lease: timedelta | None = None,
    ) -> None:
        """``owner``: this deliverer's name in the streams' delivery leases (default: unique
        to the instance); ``lease``: how long a lease lasts unrenewed (default: three request
        timeouts, at least a minute; a SET is never sent on an expired lease)."""
        if not backoff or any(step <= timedelta(0) for step in backoff):
            raise ValueError("backoff needs at least one step, each longer than zero")
        if max_attempts < 1 or max_age <= timedelta(0) or timeout <= 0:
            raise ValueError("max_attempts, max_age and timeout must be positive")
        self._store = store
        self._now = now
        self._allow_private = allow_private
        self._client = client
        self._timeout = timeout
        self._backoff = tuple(backoff)
        self._max_attempts = max_attempts
        self._max_age = max_age
        self._resolve = resolve
        self.owner = owner or f"push-{secrets.token_hex(8)}"
        self._lease = lease or max(timedelta(seconds=3 * timeout), timedelta(minutes=1))
        if self._lease <= timedelta(seconds=timeout):
            raise ValueError("a lease must outlast one request's timeout")

    def _hold(self, stream_id: str) -> bool:
        """Take or renew the stream's lease (it then outlasts the next request)."""
        now = self._now()
        return self._store.lease_stream(
            stream_id, owner=self.owner, now=now, until=now + self._lease
        )

    # -- the batch -----------------------------------------------------------------------------
    def deliver_due(self, limit: int = 100) -> DeliveryReport:
        """Send up to ``limit`` due SETs, streams in turn, each stream in order."""
        now = self._now()
        if limit <= 0 or not self._store.due(now=now, limit=1):
            return DeliveryReport()
        queues: dict[str, deque[OutboxItem]] = {}
        for stream in self._store.list_streams():
            if not _pushable(stream):
                continue
            head = self._store.pending(stream.id, limit=1)
            # INVARIANT: a stream whose oldest pending SET waits sends nothing before it
            if not head or head[0].next_attempt_at > now:
                continue
            if not self._hold(stream.id):  # another deliverer is pushing it
                continue
            # read under the lease: what another deliverer sent before is marked by now
            items = self._store.pending(stream.id, limit=limit)
            queues[stream.id] = deque(takewhile(lambda i: i.next_attempt_at <= now, items))
        leased = list(queues)
        queues = {stream_id: queue for stream_id, queue in queues.items() if queue}
        counts = {"delivered": 0, "retrying": 0, "given_up": 0, "held": 0}
        budget = limit
        with ExitStack() as closing:
            for stream_id in leased:
                closing.callback(self._store.release_stream, stream_id, owner=self.owner)
            targets: dict[str, tuple[Pinned, httpx.Client]] = {}
            while budget > 0 and queues:
                for stream_id in list(queues):
                    if budget == 0:
                        break
                    queue = queues[stream_id]
                    outcome = self._deliver(stream_id, queue.popleft(), targets, closing)
                    counts[outcome] += 1
                    if outcome != "held":  # a held SET was not attempted
                        budget -= 1
                    # INVARIANT: a SET that waits for a retry holds back the rest of its stream
                    if outcome in ("retrying", "held") or not queue:
                        del queues[stream_id]
        return DeliveryReport(
            delivered=counts["delivered"],
            retrying=counts["retrying"],
            given_up=counts["given_up"],
        )

    def run_forever(self, stop: threading.Event, interval: float = 1.0, limit: int = 100) -> None:
        """Deliver until ``stop`` is set: a batch, then ``interval`` seconds' rest unless the
        batch was full. An error is logged and does not end the loop (the outbox keeps the
        items)."""
        while not stop.is_set():
            try:
                report = self.deliver_due(limit)
            except Exception:
                log.exception("push delivery failed")
                report = DeliveryReport()
            if report.attempted < limit:
                stop.wait(interval)

    # -- one SET -------------------------------------------------------------------------------
    def _deliver(
        self,
        stream_id: str,
        item: OutboxItem,
        targets: dict[str, tuple[Pinned, httpx.Client]],
        closing: ExitStack,
    ) -> Outcome:
        stream = self._store.get_stream(stream_id)  # paused or changed since the batch began?
        if stream is None or not _pushable(stream):
            return "held"
        if not self._hold(stream_id):  # the lease lapsed and another deliverer took it
            return "held"
        if not stream.endpoint_url:
            return self._failed(item, "the stream has no endpoint_url", None, reject=False)
        target = targets.get(stream_id)
        if target is None or target[0].url != stream.endpoint_url:
            try:
                pinned = pin_url(
                    stream.endpoint_url, allow_private=self._allow_private, resolve=self._resolve
                )
            except UnsafeUrl as error:
                return self._failed(item, f"unsafe endpoint: {error.reason}", None, reject=False)
            client = self._client or closing.enter_context(new_client(timeout=self._timeout))
            target = targets[stream_id] = (pinned, client)
        pinned, client = target
        headers = {"Content-Type": SET_MEDIA_TYPE, "Accept": "application/json"}
        if stream.authorization_header:
            headers["Authorization"] = stream.authorization_header
        try:
            reply = post(
                client,
                pinned,
                content=item.set.encode(),
                headers=headers,
                timeout=self._timeout,
                max_bytes=MAX_ANSWER_BYTES,
            )
        except httpx.TimeoutException:
            return self._failed(item, "timed out", None, reject=False)
        except httpx.HTTPError as error:
            return self._failed(item, _clean(f"{type(error).__name__}: {error}"), None,
                                reject=False)  # fmt: skip
        verdict = judge(reply, self._now())
        if verdict.delivered:
            self._store.mark_delivered(stream_id, [item.jti], at=self._now())
            return "delivered"
        assert verdict.error is not None  # a verdict that is not delivered says why
        return self._failed(item, verdict.error, verdict.retry_after, reject=verdict.reject)

    def _failed(
        self, item: OutboxItem, error: str, retry_after: timedelta | None, *, reject: bool
    ) -> Outcome:
        """Record the failure; schedule the retry, or give the item up."""
        at = self._now()
        attempts = item.attempts + 1
        deadline = item.created_at + self._max_age
        if reject or attempts >= self._max_attempts or at >= deadline:
            self._store.mark_failed(item.seq, at=at, error=error, next_attempt_at=None)
            log.warning("gave up pushing %s on stream %s after %d attempt(s): %s",
                        item.jti, item.stream_id, attempts, error)  # fmt: skip
            return "given_up"
        delay = self._backoff[min(attempts, len(self._backoff)) - 1]
        if retry_after is not None:
            delay = max(delay, retry_after)
        retry_at = min(at + delay, deadline)  # the last try is made at the deadline
        self._store.mark_failed(item.seq, at=at, error=error, next_attempt_at=retry_at)
        log.info("pushing %s on stream %s failed (attempt %d): %s; retrying at %s",
                 item.jti, item.stream_id, attempts, error, retry_at.isoformat())  # fmt: skip
        return "retrying"
