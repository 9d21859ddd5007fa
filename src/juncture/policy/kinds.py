"""The method kinds the journey language knows: a registry of small descriptors.

Why a registry here, in the pure core: the loader checks a journey's ``kind:`` (and suggests
a spelling), gives a method the kind's default AAL when the journey sets none, and the
compiler gives it the kind's RFC 8176 ``amr`` values. The core may not import
`juncture.methods` (it sits below it), so the core does not know the kinds by itself: a method
module declares its kind once (`juncture.methods.base.MethodKind`, a subclass of `Kind` that
adds the record type and the enrol / start / confirm capabilities) and registers it here.
Importing `juncture.methods` registers the built-in kinds; a plug-in registers its own the
same way (`juncture.plugins`), before the server or the CLI loads a journey. The core reads
only what `Kind` holds: data, never behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Kind:
    """What the journey language needs of a method kind."""

    #: The name a journey's ``kind:`` gives.
    name: str
    #: The AAL of a method of this kind when the journey sets none (NIST SP 800-63B-4 §2).
    aal: int
    #: The RFC 8176 ``amr`` values a method of this kind proves.
    amr: tuple[str, ...] = ()


_KINDS: dict[str, Kind] = {}
#: kind name -> its descriptor, in the order the kinds were registered (read-only view).
KINDS: Mapping[str, Kind] = _KINDS


def register(kind: Kind) -> Kind:
    """Make a kind known to the journey language; the same descriptor again is a no-op.

    Raises:
        ValueError: another descriptor under the same name, or an AAL outside 0..3.
    """
    if not 0 <= kind.aal <= 3:
        raise ValueError(f"method kind `{kind.name}`: aal must be 0..3, not {kind.aal}")
    known = _KINDS.get(kind.name)
    if known is not None and known is not kind:
        raise ValueError(f"method kind `{kind.name}` is registered twice")
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Forget a kind (tests that register their own)."""
    _KINDS.pop(name, None)


def default_aal(name: str) -> int:
    """The AAL of a registered kind when the journey sets none."""
    return _KINDS[name].aal


def amr(name: str) -> tuple[str, ...]:
    """The RFC 8176 ``amr`` values of a registered kind."""
    return _KINDS[name].amr
