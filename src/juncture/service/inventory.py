"""The inventory of non-human identities: every service and agent, what it holds and what is
wrong with it.

Pure reads over the store. For each identity (a subject of type ``service`` or ``agent``):
its owner, its credentials (never their records), when one was last used, its active
sessions, the live grants those sessions hold, how many decisions were made about it in the
last 24 hours, and *flags*, stable names of what an administrator should look at, each with
a reason a person can read:

- ``no_owner``: nobody answers for it (``owner`` is not set);
- ``unused``: none of its credentials was used for ``unused_days`` (counted from the
  identity's creation when none ever was);
- ``key_too_old``: an API key or a client assertion key that has not expired was made more
  than ``key_rotation_days`` ago;
- ``grants_outlive_task``: an agent session holds a live grant that expires after the
  session's task does (or its task has expired already while the grant lives on).

A grant is a standing allow with scopes whose ``expires_at`` is still ahead, on an active
session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec

from juncture.errors import CodedRefusal
from juncture.methods import METHOD_KINDS
from juncture.records import Authenticator, Session, Subject
from juncture.store.protocols import Store

#: The subject types the inventory lists: those that are not people.
IDENTITY_TYPES = ("agent", "service")
#: Every flag, sorted.
FLAGS = ("grants_outlive_task", "key_too_old", "no_owner", "unused")
#: At most this many subjects are looked at to fill one page when filtering by a flag: the
#: page may then hold fewer identities than asked (or none) while `next` goes on.
SCAN_BUDGET = 1000
#: Active sessions read per identity (the count stops there).
MAX_SESSIONS = 10_000
#: Subjects read from the store at a time.
_BATCH = 200


class InventorySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """When a key is too old and an identity unused (``juncture serve`` options)."""

    key_rotation_days: Annotated[int, msgspec.Meta(ge=1)] = 90
    unused_days: Annotated[int, msgspec.Meta(ge=1)] = 90

    def __post_init__(self) -> None:  # the constructor too (decoding checks the Meta)
        if self.key_rotation_days < 1 or self.unused_days < 1:
            raise ValueError("`key_rotation_days` and `unused_days` must be at least 1")


class InventoryError(CodedRefusal):
    """CodedRefusal: a stable code, a message fit for the caller, an HTTP status."""


class IdentityNotFound(InventoryError):
    """No service or agent of that type and id."""

    def __init__(self, subject_type: str, subject_id: str) -> None:
        super().__init__(
            "identity.not_found", f"no non-human identity `{subject_type}:{subject_id}`", 404
        )


def inventory(
    store: Store,
    now: datetime,
    settings: InventorySettings,
    *,
    subject_type: str | None = None,
    flag: str | None = None,
    limit: int = 100,
    after: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of identities by (type, id), of ``subject_type`` and having ``flag`` when given,
    and the token of the next page (None: the end).

    ``after`` is the ``"{type}:{id}"`` of the last identity of the previous page. Raises
    InventoryError (``request.invalid``) for a type other than ``service`` or ``agent``, an
    unknown flag, a limit outside 1 to 1000 or a malformed page token.
    """
    if subject_type is not None and subject_type not in IDENTITY_TYPES:
        raise InventoryError(
            "request.invalid",
            f"`type` must be `service` or `agent`, not `{subject_type}`",
            400,
        )
    if flag is not None and flag not in FLAGS:
        raise InventoryError(
            "request.invalid", f"unknown flag `{flag}` (one of {', '.join(FLAGS)})", 400
        )
    if not 1 <= limit <= 1000:
        raise InventoryError("request.invalid", "`limit` must be 1 to 1000", 400)
    if after is not None:
        after_type, colon, after_id = after.partition(":")
        if not colon or after_type not in IDENTITY_TYPES or not after_id:
            raise InventoryError("request.invalid", "`after` is not a page token", 400)
    types = (subject_type,) if subject_type is not None else IDENTITY_TYPES
    found: list[dict[str, Any]] = []
    scanned = 0
    last: Subject | None = None
    subjects = _subjects(store, types, after)
    for subject in subjects:
        scanned += 1
        last = subject
        view = _identity(store, now, settings, subject)
        if flag is None or flag in view["flags"]:
            found.append(view)
        if len(found) == limit or scanned >= SCAN_BUDGET:
            break
    else:
        return found, None  # every subject was read
    if next(subjects, None) is None:
        return found, None
    assert last is not None
    return found, f"{last.type}:{last.id}"


def identity(
    store: Store,
    now: datetime,
    settings: InventorySettings,
    subject_type: str,
    subject_id: str,
) -> dict[str, Any]:
    """One identity, as listed. Raises IdentityNotFound (also for a type that is not a
    service's or an agent's)."""
    subject = (
        store.get_subject(subject_type, subject_id) if subject_type in IDENTITY_TYPES else None
    )
    if subject is None:
        raise IdentityNotFound(subject_type, subject_id)
    return _identity(store, now, settings, subject)


def _subjects(store: Store, types: Sequence[str], after: str | None) -> Iterator[Subject]:
    """The subjects of ``types`` (sorted) after the page token, by (type, id)."""
    after_type, _, after_id = after.partition(":") if after is not None else ("", "", "")
    for kind in types:
        if after is not None and kind < after_type:
            continue
        cursor = f"{kind}:{after_id}" if after is not None and kind == after_type else None
        while True:
            page = store.list_subjects(subject_type=kind, limit=_BATCH, after=cursor)
            yield from page
            if len(page) < _BATCH:
                break
            cursor = f"{kind}:{page[-1].id}"


def _days(span: timedelta) -> int:
    return span.days  # whole days, rounded down


def _credential(a: Authenticator, now: datetime) -> dict[str, Any]:
    return {
        "id": a.id,
        "kind": a.kind,
        "label": a.label,
        "created_at": a.created_at,
        "age_days": _days(now - a.created_at),
        "expires_at": a.expires_at,
        "expired": a.expires_at is not None and a.expires_at <= now,
        "last_used_at": a.last_used_at,
        "last_used_from": a.last_used_from,
        "scopes": list(a.scopes),
    }


def _grants(session: Session, now: datetime) -> list[tuple[str, datetime, dict[str, Any]]]:
    """The session's live grants: (checkpoint, expires_at, view), by checkpoint."""
    if session.status != "active":
        return []
    live = []
    for checkpoint, standing in sorted(session.standing.items()):
        if standing.outcome != "allow" or not standing.scopes:
            continue
        if standing.expires_at is None or standing.expires_at <= now:
            continue
        view = {
            "session_id": session.id,
            "checkpoint": checkpoint,
            "scopes": list(standing.scopes),
            "expires_at": standing.expires_at,
            "decision": standing.decision,
        }
        live.append((checkpoint, standing.expires_at, view))
    return live


def _identity(
    store: Store, now: datetime, settings: InventorySettings, subject: Subject
) -> dict[str, Any]:
    credentials = store.list_authenticators(subject.type, subject.id)
    sessions = sorted(
        (
            s
            for s in store.list_sessions(subject_id=subject.id, status="active", limit=MAX_SESSIONS)
            if s.subject_type == subject.type and s.status == "active"
        ),
        key=lambda s: s.id,
    )
    used = [a.last_used_at for a in credentials if a.last_used_at is not None]
    last_used = max(used) if used else None
    reasons: dict[str, str] = {}

    if subject.owner is None:
        reasons["no_owner"] = "nobody owns it (set `owner` to user:<id> or team:<name>)"

    since = last_used if last_used is not None else subject.created_at
    if now - since > timedelta(days=settings.unused_days):
        idle = _days(now - since)
        reasons["unused"] = (
            f"no credential used for {idle} days (threshold {settings.unused_days} days)"
            if last_used is not None
            else f"no credential ever used, created {idle} days ago "
            f"(threshold {settings.unused_days} days)"
        )

    rotation = timedelta(days=settings.key_rotation_days)
    old = [
        f"{a.kind.replace('_', ' ')} {a.id} is {_days(now - a.created_at)} days old"
        for a in credentials
        if _is_key(a.kind)
        and (a.expires_at is None or a.expires_at > now)
        and now - a.created_at > rotation
    ]
    if old:
        reasons["key_too_old"] = (
            f"{'; '.join(old)} (rotation period {settings.key_rotation_days} days)"
        )

    grants: list[dict[str, Any]] = []
    outliving: list[str] = []
    for session in sessions:
        for checkpoint, expires_at, view in _grants(session, now):
            grants.append(view)
            task = session.task
            if subject.type != "agent" or task is None:
                continue
            if task.expires_at <= now:
                outliving.append(
                    f"session {session.id} holds a grant at `{checkpoint}` though its task "
                    f"{task.id} expired at {_time(task.expires_at)}"
                )
            elif expires_at > task.expires_at:
                outliving.append(
                    f"session {session.id}: the grant at `{checkpoint}` lasts until "
                    f"{_time(expires_at)}, past its task {task.id} ({_time(task.expires_at)})"
                )
    if outliving:
        reasons["grants_outlive_task"] = "; ".join(outliving)

    flags = sorted(reasons)
    return {
        "type": subject.type,
        "id": subject.id,
        "status": subject.status,
        "owner": subject.owner,
        "description": subject.description,
        "created_at": subject.created_at,
        "credentials": [_credential(a, now) for a in credentials],
        "last_used_at": last_used,
        "active_sessions": len(sessions),
        "live_grants": grants,
        "decisions_24h": store.count_decisions(subject.id, since=now - timedelta(hours=24)),
        "flags": flags,
        "flag_reasons": {name: reasons[name] for name in flags},
    }


def _time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class Inventory:
    """The inventory over one store and clock (`inventory` and `identity` above)."""

    def __init__(self, store: Store, now: Callable[[], datetime]) -> None:
        self._store = store
        self._now = now

    def page(
        self,
        settings: InventorySettings,
        *,
        subject_type: str | None = None,
        flag: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of identities and the next page's token. Raises InventoryError."""
        return inventory(
            self._store, self._now(), settings, subject_type=subject_type, flag=flag,
            limit=limit, after=after,
        )  # fmt: skip

    def identity(
        self, settings: InventorySettings, subject_type: str, subject_id: str
    ) -> dict[str, Any]:
        """One identity. Raises IdentityNotFound."""
        return identity(self._store, self._now(), settings, subject_type, subject_id)


def _is_key(kind: str) -> bool:
    """Whether credentials of ``kind`` are keys an administrator issues (and should rotate):
    the kind says so (``MethodKind.issued_by_admin``), built-in or plug-in."""
    found = METHOD_KINDS.get(kind)
    return found is not None and found.issued_by_admin
