"""Device facts: which device this is, whether the subject used it before, and its posture.

- ``device.id``: the device id the app reported (an opaque identifier it keeps per device).
- ``device.known``: whether the subject has used that device before. Unknown (absent)
  when no device id was reported: an unidentified device is neither known nor new.
- ``device.managed``, ``device.compliant``, ``device.posture_at``: from the latest posture
  record (a verified device attestation, or a device signal). A record made for another
  device than the one reported now says nothing about this one and is not used.
- ``device.platform``: from the posture record when it has one, else as the app reported.
- ``device.user_agent_changed``: whether the user agent differs from the session's previous
  request. Absent for a session's first request, or when either side did not send one.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from juncture.records import Posture

#: Longest device id, platform or user agent taken; longer values are not facts but noise.
MAX_ID_CHARS = 256
MAX_USER_AGENT_CHARS = 1024


def clean_id(value: object, limit: int = MAX_ID_CHARS) -> str | None:
    """A printable identifier of at most ``limit`` characters, stripped; None otherwise."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > limit or not text.isprintable():
        return None
    return text


def user_agent_changed(previous: str | None, current: str | None) -> bool | None:
    """Whether the user agent changed since the session's previous request; None when
    either is unknown."""
    before = clean_id(previous, MAX_USER_AGENT_CHARS)
    now = clean_id(current, MAX_USER_AGENT_CHARS)
    if before is None or now is None:
        return None
    return before != now


def posture_applies(posture: Posture, device_id: str | None) -> bool:
    """Whether a posture record speaks for the device reported now."""
    return posture.device_id is None or posture.device_id == device_id


def device_facts(
    *,
    device_id: str | None,
    known_devices: Collection[str] = (),
    posture: Posture | None = None,
    platform: str | None = None,
    user_agent: str | None = None,
    previous_user_agent: str | None = None,
) -> dict[str, Any]:
    """The device section of the facts: only what was observed (see the module's rules)."""
    out: dict[str, Any] = {}
    ident = clean_id(device_id)
    if ident is not None:
        out["id"] = ident
        out["known"] = ident in known_devices
    reported_platform = clean_id(platform)
    if posture is not None and posture_applies(posture, ident):
        if posture.managed is not None:
            out["managed"] = posture.managed
        if posture.compliant is not None:
            out["compliant"] = posture.compliant
        out["posture_at"] = posture.at
        reported_platform = clean_id(posture.platform) or reported_platform
    if reported_platform is not None:
        out["platform"] = reported_platform
    changed = user_agent_changed(previous_user_agent, user_agent)
    if changed is not None:
        out["user_agent_changed"] = changed
    return out
