"""The method kinds the journey language knows: a registry of small descriptors (`Kind`).

The loader checks a journey's ``kind:`` (and suggests a spelling), gives a method the kind's
default AAL when the journey sets none, and the compiler gives it the kind's RFC 8176 ``amr``
values, and the lockout counts its failures on a counter. That is all the pure core needs of
a kind, and it is data: `Kind` (name, default AAL, AMR values, lockout counter).

Why a registry here, and why the built-in kinds' data sit in it: the core may not import
`juncture.methods` (it sits below it), and it must work on its own (`juncture check`, the
"Using the core from Python" example of the README), so the vocabulary of the journey
language, the built-in kinds, is the core's: `BUILT_IN`. Behaviour is not: a method module
binds it to its kind with a `juncture.methods.base.MethodKind` (a subclass of `Kind` that adds
the verifying class, the record type and the enrol / start / confirm / lookup steps) and
registers it, which puts the richer descriptor in place of the bare one (same name, AAL and
AMR, or refused). A plug-in's kind is all in its own module: its `MethodKind` brings the name,
AAL and AMR too, and registering it (before any journey naming it is loaded; see
`juncture.plugins`) makes it known here. The core reads only the `Kind` part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from juncture.policy.model import LOCKOUT_COUNTERS


@dataclass(frozen=True, slots=True, kw_only=True)
class Kind:
    """What the journey language needs of a method kind."""

    #: The name a journey's ``kind:`` gives.
    name: str
    #: The AAL of a method of this kind when the journey sets none (NIST SP 800-63B-4 §2).
    aal: int
    #: The RFC 8176 ``amr`` values a method of this kind proves.
    amr: tuple[str, ...] = ()
    #: The lockout counter its failed verifications count against (`model.LOCKOUT_COUNTERS`).
    counter: str = "second_factor"


#: The built-in kinds, in the order error messages list them. The default AAL follows NIST
#: SP 800-63B-4 §2; `docs/journeys.md` and `docs/methods.md` describe each.
BUILT_IN: tuple[Kind, ...] = (
    Kind(name="password", aal=1, amr=("pwd",), counter="password"),
    Kind(name="email_code", aal=1, amr=("otp",)),
    Kind(name="recovery_code", aal=1, amr=("otp",)),
    Kind(name="totp", aal=2, amr=("otp",)),
    Kind(name="webauthn", aal=3, amr=("hwk",)),
    Kind(name="external_jwt", aal=1),
    Kind(name="device_attestation", aal=0),
    Kind(name="approval", aal=0),
    Kind(name="api_key", aal=1),
    Kind(name="client_assertion", aal=2, amr=("swk",)),
)
_BUILT_IN = {k.name: k for k in BUILT_IN}
_KINDS: dict[str, Kind] = dict(_BUILT_IN)
#: kind name -> its descriptor: the built-in kinds, then those registered (read-only view).
KINDS: Mapping[str, Kind] = _KINDS


def register(kind: Kind) -> Kind:
    """Make a kind known to the journey language. A kind known already may be registered
    again with the same AAL, AMR and counter (a method module binding its behaviour to it): the new
    descriptor takes its place.

    Raises:
        ValueError: the kind is known with another AAL, AMR or counter, an AAL outside 0..3,
            or a counter that is not a lockout counter.
    """
    if not 0 <= kind.aal <= 3:
        raise ValueError(f"method kind `{kind.name}`: aal must be 0..3, not {kind.aal}")
    if kind.counter not in LOCKOUT_COUNTERS:
        raise ValueError(f"method kind `{kind.name}`: no lockout counter `{kind.counter}`")
    known = _KINDS.get(kind.name)
    if known is not None and (known.aal, known.amr, known.counter) != (
        kind.aal,
        kind.amr,
        kind.counter,
    ):
        raise ValueError(
            f"method kind `{kind.name}` is known already with aal {known.aal}, amr "
            f"{list(known.amr)} and counter `{known.counter}`"
        )
    _KINDS[kind.name] = kind
    return kind


def built_in(name: str) -> Kind:
    """A built-in kind's descriptor, for the method module that binds behaviour to it."""
    return _BUILT_IN[name]


def unregister(name: str) -> None:
    """Forget a registered kind (tests that register their own); a built-in kind is back to
    its bare descriptor."""
    if name in _BUILT_IN:
        _KINDS[name] = _BUILT_IN[name]
    else:
        _KINDS.pop(name, None)


def default_aal(name: str) -> int:
    """The AAL of a registered kind when the journey sets none."""
    return _KINDS[name].aal


def amr(name: str) -> tuple[str, ...]:
    """The RFC 8176 ``amr`` values of a registered kind."""
    return _KINDS[name].amr
