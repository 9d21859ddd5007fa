"""The event types Juncture understands, what each payload must hold, and what each does.

**Validation** (`validate`): each known event type's payload is checked against its spec —
the members it requires, and the type or the enumerated values of every member it defines;
members it does not define are ignored (SSF, "Additional fields"). A violation is `SetError`
``invalid_request`` (RFC 8935: "the payload breaks the event definition"). Every event may
carry ``event_timestamp`` (a NumericDate); the CAEP events and RISC credential-compromise
may also carry ``initiating_entity`` (``admin``/``user``/``policy``/``system``) and
``reason_admin``/``reason_user`` (an object of BCP 47 tag → text; a bare string, as SSF
drafts wrote, is read too). An event type outside the catalog is ``invalid_request``.

**Effects** (`effect_of`): what a verified, valid event does to the sessions its subject
matches, as a pure value. The service finds the sessions (`subjects.keys` then
`subjects.matches`), applies ``signals`` (names from `juncture.policy.schema.SIGNAL_DEFAULTS`
plus richer ones), revokes when ``revoke`` and re-checks standing outcomes when
``recheck``. ``scope`` says which sessions:

- ``session``: only the session(s) the subject's ``session`` member names;
- ``subject``: every session that matches the whole subject (a user alone: all the user's
  sessions; a user and a device: the user's sessions on that device);
- ``account``: every session of the account, whatever narrower members (session, device,
  application) the subject also names — see `account_subject`.

=====================================  =====  ========  =================================
event                                  scope  revoke    signals set (on every match)
=====================================  =====  ========  =================================
caep session-revoked, session member   sess.  yes       session_revoked
caep session-revoked, no session       subj.  yes       session_revoked, sessions_revoked
caep token-claims-change               subj.  recheck   claims_changed = the claims
caep credential-change create          acct.  no        credential = {type, change}
caep credential-change update/revoke/  acct.  recheck   credential_changed, credential
delete
caep assurance-level-change            subj.  recheck   assurance_level = {namespace, current,
                                                        previous, direction, aal};
                                                        assurance_lowered true on decrease,
                                                        false on increase
caep device-compliance-change          subj.  recheck   device_noncompliant = current is
                                                        ``not-compliant``
caep session-established / -presented  subj.  no        none (inventory, liveness)
caep risk-level-change                 subj.  recheck   risk_level, risk_principal,
                                                        risk_reason; risk_elevated = level
                                                        is MEDIUM or HIGH
risc account-disabled                  acct.  yes       account_disabled (+ reason)
risc account-enabled                   acct.  recheck   account_disabled = false
risc account-purged                    acct.  yes       account_purged
risc credential-compromise             acct.  yes       credential_compromised, credential
risc sessions-revoked (deprecated)     acct.  yes       sessions_revoked
risc identifier-recycled               acct.  yes       identifier_recycled
risc account-credential-change-        acct.  recheck   credential_change_required
required
risc recovery-activated                acct.  recheck   recovery_activated
risc recovery-information-changed      acct.  recheck   recovery_information_changed
risc identifier-changed, opt-in,       acct.  no        none (recorded only)
opt-out-*
ssf verification, stream-updated       —      no        none: ``stream`` is true, no
                                                        session is touched
=====================================  =====  ========  =================================

credential-change does not revoke by itself: ``credential_changed`` is the signal a journey
guard turns into a step-up or a revocation (CAEP leaves the reaction to the receiver; ASVS
7.4.3). A revoking effect carries ``reason`` = the event's short name (``caep.session_revoked``,
``risc.account_disabled``, …).

**Event time** is ``event_timestamp`` when the payload has it, else the SET's ``toe``, else
its ``iat``, and never later than ``iat``.

**Out of order** (`newer`): the service keeps, per (subject, signal), the time of the last
event applied; an event strictly older than that is ignored for that signal, an
equal or newer one applies (arrival order breaks ties: a transmitter keeps one subject's
events in order). The rule is for signals, which a later event may reverse; a revocation is
never undone by ordering, so ``revoke`` always applies.

**Emitting** (`outgoing`, re-exported here): `session_revoked`, `assurance_level_change`,
`token_claims_change`, `verification` and `stream_updated` build the payloads Juncture
transmits; each is checked by `validate` before it is returned.

Where it lives: the member checks in `members`, the reaction of each event type in
`effects`, the catalog itself and `validate` in `event_types`, emitting in `outgoing`; this
module is the surface the service uses, and says what a received event does.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import msgspec

from juncture.events.effects import Effect, Scope
from juncture.events.event_types import (
    ASSURANCE_LEVEL_CHANGE,
    CAEP,
    CATALOG,
    RISC,
    SESSION_REVOKED,
    SSF,
    STREAM_UPDATED,
    TOKEN_CLAIMS_CHANGE,
    VERIFICATION,
    EventType,
    validate,
)
from juncture.events.members import is_number
from juncture.events.outgoing import (
    Outgoing,
    assurance_level_change,
    session_revoked,
    stream_subject,
    stream_updated,
    token_claims_change,
    verification,
)
from juncture.events.set import SecurityEvent
from juncture.events.subjects import Complex, Subject

__all__ = [
    "ASSURANCE_LEVEL_CHANGE",
    "CAEP",
    "CATALOG",
    "RISC",
    "SESSION_REVOKED",
    "SSF",
    "STREAM_UPDATED",
    "TOKEN_CLAIMS_CHANGE",
    "VERIFICATION",
    "Effect",
    "EventType",
    "Outgoing",
    "Scope",
    "account_subject",
    "assurance_level_change",
    "effect_of",
    "event_time",
    "newer",
    "session_revoked",
    "stream_subject",
    "stream_updated",
    "token_claims_change",
    "validate",
    "verification",
]


def effect_of(event: SecurityEvent) -> Effect:
    """Validate a verified event and say what it does (the table in the module docstring).

    Raises:
        SetError: ``invalid_request`` when the event type is unknown or its payload invalid.
    """
    validate(event.event_type, event.payload, event.subject)
    known = CATALOG[event.event_type]
    partial = known.react(event.payload, event.subject)
    return Effect(
        event=known.name,
        event_time=event_time(event),
        scope=partial.scope,
        revoke=partial.revoke,
        reason=known.name if partial.revoke else None,
        signals=dict(partial.signals or {}),
        recheck=partial.recheck and not partial.revoke,
        stream=partial.stream,
    )


def event_time(event: SecurityEvent) -> datetime:
    """When the change happened: ``event_timestamp``, else ``toe``, else ``iat``; never later
    than ``iat`` (an event cannot postdate the SET that reports it, and a transmitter clock
    running ahead must not make the service ignore the events that follow)."""
    found = event.toe or event.iat
    stamp = event.payload.get("event_timestamp")
    if is_number(stamp):
        assert isinstance(stamp, int | float)
        # A stamp no date can hold is ignored: the SET's own times stand.
        with contextlib.suppress(OverflowError, OSError, ValueError):
            found = datetime.fromtimestamp(stamp, UTC)
    return min(found, event.iat)


def newer(event_time: datetime, last_time: datetime | None) -> bool:
    """Whether an event at ``event_time`` may set a signal last set at ``last_time``.

    Strictly older events are ignored; equal times apply (arrival order breaks the tie).
    """
    return last_time is None or event_time >= last_time


def account_subject(subject: Subject) -> Subject:
    """The subject an ``account``-scoped effect matches sessions against: a complex subject
    without its ``session``, ``device`` and ``application`` members (they narrow, the account
    is wider). A complex subject with nothing else left is returned as it is."""
    if not isinstance(subject, Complex):
        return subject
    wider = msgspec.structs.replace(subject, session=None, device=None, application=None)
    return wider if wider.members() else subject
