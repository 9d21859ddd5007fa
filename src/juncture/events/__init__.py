"""Shared Signals: Security Event Tokens in and out (SSF 1.0, CAEP 1.0, RISC 1.0).

A pure library: no store, no HTTP server, no clock (``now`` is passed in). `set` verifies
and issues SETs (RFC 8417 as SSF profiles it, errors as RFC 8935 codes); `subjects` parses,
matches and indexes subject identifiers (RFC 9493 and SSF's additions); `catalog` knows each
CAEP, RISC and SSF event type, validates its payload and says what it does to sessions.
"""

from juncture.events.catalog import Effect, Outgoing, effect_of, newer
from juncture.events.set import (
    SecurityEvent,
    SetError,
    SetSigner,
    TransmitterConfig,
    new_signing_key,
    public_jwks,
    verify_set,
)
from juncture.events.subjects import Subject, SubjectError, keys, matches, parse_subject

__all__ = [
    "Effect",
    "Outgoing",
    "SecurityEvent",
    "SetError",
    "SetSigner",
    "Subject",
    "SubjectError",
    "TransmitterConfig",
    "effect_of",
    "keys",
    "matches",
    "new_signing_key",
    "newer",
    "parse_subject",
    "public_jwks",
    "verify_set",
]
