"""The package's public API is small and pinned."""

from __future__ import annotations

import juncture.events


def test_events_exports():
    assert juncture.events.__all__ == [
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
    for name in juncture.events.__all__:
        assert getattr(juncture.events, name) is not None
