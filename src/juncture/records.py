"""The records Juncture stores. Server-owned fields only; secrets only as hashes.

They are the vocabulary the services and the API share with every store backend, so they
live beside the store rather than inside it: ``api`` speaks in records and never imports
``juncture.store``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec

#: `pending`: started, its login not yet passed (only the login challenge can be answered).
SessionStatus = Literal["pending", "active", "ended", "revoked"]
SubjectStatus = Literal["active", "disabled"]


class StoredProof(msgspec.Struct, frozen=True, kw_only=True):
    """A method the session proved: what, when, at what AAL, and who asserted it."""

    method: str
    at: datetime
    kind: str | None = None
    aal: int | None = None
    amr: tuple[str, ...] = ()
    asserted_by: str | None = None  # the app that asserted it, when not verified by Juncture


class Located(msgspec.Struct, frozen=True, kw_only=True):
    """Where a request came from, as geolocated: the basis of distance and travel speed."""

    lat: float
    lon: float
    at: datetime
    ip: str | None = None
    country: str | None = None


class Posture(msgspec.Struct, frozen=True, kw_only=True):
    """A device's posture and when it was observed: the one type for it, from a verified
    device attestation (`juncture.methods.device_attestation`) or a device signal the app
    reported, as stored with the session and read into the ``device`` facts.

    ``device_id`` ties it to one device; ``None`` when the proof it came from is bound to
    the session rather than to a device id.
    """

    device_id: str | None = None
    managed: bool | None = None
    compliant: bool | None = None
    at: datetime
    #: Who said so: ``attestation`` (a verified statement) or ``app`` (the calling app).
    source: str = "app"
    platform: str | None = None


class Observed(msgspec.Struct, frozen=True, kw_only=True):
    """What was last observed of a session's requests (kept to compare the next one with)."""

    ip: str | None = None
    ip_at: datetime | None = None
    user_agent: str | None = None
    device_id: str | None = None
    platform: str | None = None
    #: Whether the device had been seen for the subject before this session started.
    device_known: bool | None = None
    located: Located | None = None
    #: The move into `located` from the place seen before it: distance and implied speed.
    distance_km: float | None = None
    speed_kmh: float | None = None
    posture: Posture | None = None


class SubjectSeen(msgspec.Struct, frozen=True, kw_only=True):
    """What was observed of one subject across its sessions: devices and recent locations."""

    subject_type: str
    subject_id: str
    #: Device id -> when it was last seen.
    devices: dict[str, datetime] = {}
    #: Most recent located observations, newest last (bounded).
    located: tuple[Located, ...] = ()
    updated_at: datetime | None = None
    #: Optimistic concurrency: bumped by every update (0: not stored yet).
    revision: int = 0


class Standing(msgspec.Struct, frozen=True, kw_only=True):
    """An outcome the app may act on after the decision: an allow with a ttl, a reroute."""

    outcome: str
    scopes: tuple[str, ...] = ()
    path: str | None = None
    decided_at: datetime
    expires_at: datetime | None = None
    version: str = ""
    #: The decision that made it (an allow with a ttl and scopes is a grant: `grants` facts).
    decision: str | None = None


class Delegation(msgspec.Struct, frozen=True, kw_only=True):
    """Who an agent session acts for: the delegating user and the user's session, which must
    stay live (revoking or ending it revokes the agent's session)."""

    subject_id: str
    session_id: str
    subject_type: str = "user"


class Task(msgspec.Struct, frozen=True, kw_only=True):
    """What an agent session is doing now: read by journeys as `agent.task`."""

    id: str
    purpose: str
    #: The tools or actions it needs (checkpoint names, e.g. ``tool:transfer_funds``).
    tools: tuple[str, ...] = ()
    started_at: datetime
    expires_at: datetime
    #: Anything else the platform says of the task (inputs, limits): journeys read it as is.
    details: dict[str, Any] = {}


class Session(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    app: str
    subject_type: str
    subject_id: str
    started_at: datetime
    updated_at: datetime
    #: Opaque handle the app holds; it changes whenever the session's AAL rises.
    handle: str
    status: SessionStatus = "active"
    status_reason: str | None = None
    subject_properties: dict[str, Any] = {}
    proofs: tuple[StoredProof, ...] = ()
    #: Signals received for this session (name -> value), e.g. credential_compromised.
    signals: dict[str, Any] = {}
    #: Context the app reported for the session (start, updates): read when a request lacks it.
    context: dict[str, Any] = {}
    #: What Juncture observed of the session's requests (enrichment compares against it).
    observed: Observed = Observed()
    path: str | None = None
    scopes: tuple[str, ...] = ()
    #: Outcomes that stand beyond their decision (an allow with a ttl, a reroute), by
    #: checkpoint: what the sweep re-checks when a journey changes.
    standing: dict[str, Standing] = {}
    #: While `pending`: the checkpoint whose allow makes the session active (its login).
    login: str | None = None
    #: An agent's session: who it acts for, and its task.
    delegation: Delegation | None = None
    task: Task | None = None
    #: The credential (authenticator id) a non-human identity started the session with, and
    #: the checkpoints that credential reaches (glob patterns; empty: any).
    credential: str | None = None
    credential_scopes: tuple[str, ...] = ()
    #: Optimistic concurrency: bumped by every update.
    revision: int = 0


class PolicyVersion(msgspec.Struct, frozen=True, kw_only=True):
    """An immutable, content-addressed bundle. Files are kept as uploaded (name -> bytes)."""

    id: str
    files: dict[str, bytes]
    author: str
    created_at: datetime
    comment: str = ""


class VersionInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    author: str
    created_at: datetime
    comment: str = ""
    active: bool = False
    #: When and by whom this version was last activated (None: never).
    activated_at: datetime | None = None
    activated_by: str | None = None
    #: Whether it is the shadow version: every live decision is also decided by it, its answer
    #: only recorded (service/shadow.py).
    shadow: bool = False


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """How much one app used a journey (and a checkpoint of it) lately: decisions logged, or
    live sessions (``journey`` None: the store does not know which journey governs them)."""

    app: str | None
    subject_type: str | None
    journey: str | None = None
    checkpoint: str | None = None
    decisions: int = 0
    sessions: int = 0


class Challenge(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    session_id: str
    app: str
    subject_id: str
    checkpoint: str
    methods: tuple[str, ...]
    mode: str = "any"
    within: int | None = None
    aal: int | None = None
    created_at: datetime
    expires_at: datetime
    attempts_left: int = 5
    consumed_at: datetime | None = None
    #: Context the decision was made with (resource, properties), re-used when re-evaluating.
    request: dict[str, Any] = {}
    subject_type: str = "user"
    #: Method name -> the method's ceremony state (e.g. a WebAuthn challenge).
    states: dict[str, bytes] = {}


class Subject(msgspec.Struct, frozen=True, kw_only=True):
    """A subject of the directory: who sessions and authenticators belong to."""

    type: str  # "user", "service" or "agent"
    id: str
    created_at: datetime
    updated_at: datetime
    attributes: dict[str, Any] = {}
    status: SubjectStatus = "active"
    #: Who answers for a non-human identity: ``user:<id>`` or ``team:<name>`` (None: nobody,
    #: which the inventory flags).
    owner: str | None = None
    description: str = ""
    #: Optimistic concurrency: bumped by every update (0: not stored yet).
    revision: int = 0


class Authenticator(msgspec.Struct, frozen=True, kw_only=True):
    """A credential a subject enrolled for one of a journey's methods."""

    id: str
    subject_type: str
    subject_id: str
    method: str  # the journey's method name (e.g. "totp")
    kind: str  # the method kind (e.g. "totp")
    created_at: datetime
    #: The method's credential record, as the method encodes it (secrets sealed or hashed).
    record: bytes
    label: str = ""
    #: Counts as a proof only once confirmed (its first successful verification).
    confirmed_at: datetime | None = None
    last_used_at: datetime | None = None
    #: Where it was last used from (the client IP the app reported), when known.
    last_used_from: str | None = None
    #: A key unique across all authenticators, to find one by (a WebAuthn credential id, an
    #: API key's id).
    lookup: str | None = None
    #: Not usable from then on (an API key past its expiry, or rotated out after its overlap).
    expires_at: datetime | None = None
    #: The checkpoints a session started with it may reach (glob patterns; empty: any).
    scopes: tuple[str, ...] = ()
    #: Optimistic concurrency: bumped by every update (0: not stored yet).
    revision: int = 0


class Failures(msgspec.Struct, frozen=True, kw_only=True):
    """A subject's consecutive failed verifications of one kind, and the lock they set."""

    subject_type: str
    subject_id: str
    counter: str  # "password" or "second_factor"
    count: int = 0  # consecutive failures within the window
    first_at: datetime | None = None
    last_at: datetime | None = None
    locked_until: datetime | None = None
    #: Attempts admitted and not settled yet (attempt id -> when admitted): each counts as
    #: a failure to admission until it is settled, released or held too long.
    pending: dict[str, datetime] = {}


class AppKey(msgspec.Struct, frozen=True, kw_only=True):
    """An API key: found by its non-secret prefix, checked against its hash."""

    prefix: str
    hash: str
    created_at: datetime
    expires_at: datetime | None = None


class AppTheme(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How the hosted pages look for an app (docs/proxy.md#themes; checked by
    `juncture.service.theme`): a field left out is the default."""

    name: str | None = None
    #: An https URL, or a path (`/static/logo.svg`) of the app's own origin.
    logo: str | None = None
    background: str | None = None
    text: str | None = None
    accent: str | None = None
    accent_text: str | None = None


class App(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    created_at: datetime
    #: Journeys this app may be decided by (empty: those whose applies_to names it).
    journeys: tuple[str, ...] = ()
    #: Methods this app may assert as proven by its own IdP.
    assertable_methods: tuple[str, ...] = ()
    keys: tuple[AppKey, ...] = ()
    disabled: bool = False
    #: The origins (`https://shop.example:443`, normalized) a browser may be sent back to by
    #: the hosted pages and forward auth (docs/proxy.md); none: every forwarded request denied.
    origins: tuple[str, ...] = ()
    #: Forward auth's identity headers: `subject`, `aal`, `scopes` -> header name (empty: the
    #: defaults, `X-Juncture-Subject`, `X-Juncture-Aal`, `X-Juncture-Scopes`).
    identity_headers: dict[str, str] = {}
    #: The hosted pages' name, logo and colours (None: Juncture's plain pages, the app's name).
    theme: AppTheme | None = None


class AppBinding(msgspec.Struct, frozen=True, kw_only=True):
    """The journeys an app was bound to from ``since`` on (its history: `AppStore.put_app`
    appends one when they change; replay decides each record with those of its time)."""

    app: str
    journeys: tuple[str, ...]
    since: datetime


class AdminCredential(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    scopes: tuple[str, ...]  # read, publish, manage_apps
    key: AppKey
    created_at: datetime


class DecisionRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    at: datetime
    app: str | None
    subject_type: str | None
    subject_id: str | None
    session_id: str | None
    action: str
    resource: dict[str, Any] | None
    outcome: str
    reason: str | None
    version: str
    latency_us: int
    #: The decision with its explanation: a mapping once read back; when recording, anything
    #: msgspec encodes as one (the `Decision` struct itself, to spare a conversion per request).
    decision: Any
    #: The facts document the decision was made from (replay needs it), likewise.
    facts: Any = {}


class DecisionQuery(msgspec.Struct, frozen=True, kw_only=True):
    app: str | None = None
    subject_id: str | None = None
    session_id: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    #: Page token: return records older than this decision (by time, ties by id; exclusive).
    before: str | None = None



class ShadowRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A live decision the shadow version decided otherwise (service/shadow.py), or could not
    decide: both outcomes and reasons, side by side. The answer sent was the active one."""

    decision_id: str
    at: datetime
    shadow_version: str
    active_version: str
    app: str | None
    action: str
    subject_type: str | None
    subject_id: str | None
    session_id: str | None
    #: ``allow->deny``: the active outcome, then the shadow's (``error`` when it failed).
    transition: str
    #: The active decision's outcome, reason, journey and checkpoint; the shadow's likewise.
    active: dict[str, Any]
    shadow: dict[str, Any]
    #: Why the shadow could not decide (its outcome is then ``error``).
    error: str | None = None

# -- Shared Signals (SSF): events received, streams transmitted, and the session sweep --------
class ReceivedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A Security Event Token received from a transmitter, and what it did."""

    issuer: str
    jti: str
    received_at: datetime
    event_type: str
    event_time: datetime | None = None
    subject: dict[str, Any] = {}
    #: applied | ignored (no session matched, or older than what was applied) | error
    result: str = "applied"
    #: What it did: sessions revoked, signals set, ... (free-form, for the session read and the
    #: admin API).
    detail: dict[str, Any] = {}
    session_ids: tuple[str, ...] = ()
    subject_id: str | None = None


StreamStatus = Literal["enabled", "paused", "disabled"]


class Stream(msgspec.Struct, frozen=True, kw_only=True):
    """An event stream Juncture transmits to (SSF): its configuration and status."""

    id: str
    app: str  # the receiver: the app whose key manages the stream
    iss: str
    aud: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    delivery_method: str = "urn:ietf:rfc:8935"  # push; "urn:ietf:rfc:8936" poll
    endpoint_url: str | None = None
    authorization_header: str | None = None
    events_requested: tuple[str, ...] = ()
    events_delivered: tuple[str, ...] = ()
    description: str | None = None
    status: StreamStatus = "enabled"
    status_reason: str | None = None
    #: Optimistic concurrency: bumped by every update (0: not stored yet).
    revision: int = 0


class StreamSubject(msgspec.Struct, frozen=True, kw_only=True):
    """A subject added to a stream (its events are sent on it)."""

    stream_id: str
    subject: dict[str, Any]
    verified: bool = True
    added_at: datetime


class OutboxItem(msgspec.Struct, frozen=True, kw_only=True):
    """A signed SET waiting to be delivered on one stream (pushed, or polled)."""

    stream_id: str
    jti: str
    set: str  # the compact signed SET
    event_type: str
    created_at: datetime
    next_attempt_at: datetime
    seq: int = 0  # assigned by the store
    attempts: int = 0
    delivered_at: datetime | None = None
    last_error: str | None = None
    given_up_at: datetime | None = None


class StreamDelivery(msgspec.Struct, frozen=True, kw_only=True):
    """How a stream's outbox stands: what waits, what failed, when it last delivered."""

    pending: int = 0  # undelivered and not given up (due later, or waiting for a poll)
    retrying: int = 0  # of those, attempted and failed at least once
    failed: int = 0  # given up, never delivered
    delivered: int = 0
    last_delivered_at: datetime | None = None
    #: The error of the newest undelivered item that failed (None: none did).
    last_error: str | None = None


SweepStatus = Literal["running", "done", "failed"]
#: What a sweep re-checks: after a ``publish``, only the standing outcomes whose checkpoint the
#: new version changed; a ``recheck`` (a signal, an administrator's request) decides them all.
SweepKind = Literal["publish", "recheck"]


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    """A node's latest heartbeat: its own clock and the store's, read in the same write."""

    node: str
    #: The node's clock when it wrote.
    clock: datetime
    #: The store's clock at that write (the reference nodes are compared to).
    store_at: datetime

    @property
    def offset(self) -> timedelta:
        """How far the node's clock was ahead of the store's (negative: behind), up to the
        time the write took."""
        return self.clock - self.store_at


class SweepLease(msgspec.Struct, frozen=True, kw_only=True):
    """A batch of a sweep run that one node took: the active sessions after ``start`` up to
    and including ``end``, in id order, until ``until`` (then another node may take it)."""

    start: str | None
    end: str
    rows: int
    node: str
    until: datetime


class SweepRun(msgspec.Struct, frozen=True, kw_only=True):
    """A run of the sweep over the active sessions, with its cursor and progress."""

    id: str
    reason: str  # "publish <version>", "signal <jti>", "manual by <admin>": shown, not read
    version: str
    started_at: datetime
    updated_at: datetime
    cursor: str | None = None  # the last session id processed (sessions are swept in id order)
    total: int = 0  # active sessions when the run started (for progress)
    processed: int = 0
    changed: int = 0
    #: Sessions whose stored record did not decode: logged by id and passed over.
    skipped: int = 0
    status: SweepStatus = "running"
    finished_at: datetime | None = None
    #: Optimistic concurrency: bumped by every update (0: not stored yet).
    revision: int = 0
    #: A run stored before kinds existed re-checks everything (always safe).
    kind: SweepKind = "recheck"
    #: Batches taken and not yet finished, each by one node (service/sweep.py).
    leases: tuple[SweepLease, ...] = ()
    #: Every batch has been handed out (``cursor`` is at the last session).
    exhausted: bool = False


class SessionPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of the active sessions in id order (what a sweep batch reads)."""

    sessions: list[Session]
    #: Ids of records on the page that did not decode (corrupt): the caller decides.
    corrupt: list[str] = []
    #: The last id read (decoded or not): where the next page starts; None on an empty page.
    last: str | None = None
    #: Rows read: fewer than the limit asked means the end was reached.
    rows: int = 0


ApprovalStatus = Literal["pending", "approved", "rejected"]


class Approval(msgspec.Struct, frozen=True, kw_only=True):
    """A person's answer an agent waits for: made when an agent's step-up names a method of
    kind ``approval``, answered by the delegating user from their own session, spent once by
    the agent's verification of the challenge."""

    id: str
    challenge_id: str
    method: str
    #: The agent's app, session and subject.
    app: str
    session_id: str
    agent_type: str
    agent_id: str
    #: Who is asked: the user who delegated the task.
    user_id: str
    #: What is asked: the checkpoint and the request's action and resource, the task.
    action: str
    request: dict[str, Any] = {}
    task: Task | None = None
    created_at: datetime
    expires_at: datetime
    status: ApprovalStatus = "pending"
    answered_at: datetime | None = None
    #: The user's session (and its app) that answered.
    answered_session: str | None = None
    answered_app: str | None = None
    reason: str | None = None
    #: When the agent's verification spent it (single use).
    consumed_at: datetime | None = None
    #: Optimistic concurrency: bumped by every update (0: not stored yet).
    revision: int = 0


class CacheState(msgspec.Struct, frozen=True, kw_only=True):
    """Whether a node serves the reads every decision makes (apps by key, the active version,
    sessions) from its caches, as `/healthz` reports it."""

    #: ``live``: caches in use, every change heard; ``bypassed``: every read goes to the store
    #: (no notifications, or late ones); ``off``: this store was opened without caches.
    state: Literal["live", "bypassed", "off"]
    #: When the state last changed (not told for ``off``).
    since: datetime | msgspec.UnsetType = msgspec.UNSET
    reason: str | msgspec.UnsetType = msgspec.UNSET
