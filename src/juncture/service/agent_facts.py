"""The facts Juncture keeps for an agent's or a service's session, which journeys read and no
app can set: `agent` (the delegation and the task) and `grants` (the live grants of its
standing allows)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from juncture.records import Session, Task


@lru_cache(maxsize=16_384)
def _when(at: datetime) -> str:
    """A time as facts carry it (RFC 3339, UTC, ``Z``): what `timestamp()` reads. Cached: a
    session's grants are read at every one of its decisions, with the same times."""
    return at.isoformat().replace("+00:00", "Z")


def task_view(task: Task) -> dict[str, Any]:
    """`agent.task` as journeys read it: the task's details, then its own fields."""
    return {
        **task.details,
        "id": task.id,
        "purpose": task.purpose,
        "tools": list(task.tools),
        "started_at": _when(task.started_at),
        "expires_at": _when(task.expires_at),
    }


def agent_facts(session: Session) -> dict[str, Any] | None:
    """The `agent` facts Juncture knows of a session (delegation, task), or None."""
    if session.delegation is None and session.task is None:
        return None
    out: dict[str, Any] = {}
    if session.delegation is not None:
        out["delegated_by"] = session.delegation.subject_id
        out["delegation"] = {
            "session_id": session.delegation.session_id,
            "subject_type": session.delegation.subject_type,
        }
    if session.task is not None:
        out["task"] = task_view(session.task)
    return out


#: A session's standing outcomes -> (its grants, the first of their expiries): grants change
#: only with what stands, or when one of them lapses, and are read at every decision.
_GRANTS: dict[tuple[Any, ...], tuple[dict[str, Any], datetime | None]] = {}
_GRANTS_MAX = 8192


def grant_facts(session: Session, now: datetime) -> dict[str, Any]:
    """The session's live grants by scope: each allow with a ttl and scopes not yet expired
    (the longest-lived one when several checkpoints grant a scope). Read only: the map may
    be shared with the session's next decisions."""
    key = tuple(session.standing.items())
    cached = _GRANTS.get(key)
    if cached is not None and (cached[1] is None or now < cached[1]):
        return cached[0]
    grants, first = _live_grants(session, now)
    if len(_GRANTS) >= _GRANTS_MAX:
        _GRANTS.clear()
    _GRANTS[key] = (grants, first)
    return grants


def _live_grants(session: Session, now: datetime) -> tuple[dict[str, Any], datetime | None]:
    grants: dict[str, Any] = {}
    until: dict[str, datetime] = {}
    for checkpoint, standing in session.standing.items():
        expires_at = standing.expires_at
        if standing.outcome != "allow" or not standing.scopes or expires_at is None:
            continue
        if expires_at <= now:
            continue
        for scope in standing.scopes:
            kept = until.get(scope)
            if kept is not None and kept >= expires_at:  # the longest-lived one stays
                continue
            until[scope] = expires_at
            grants[scope] = {
                "scope": scope,
                "checkpoint": checkpoint,
                "granted_at": _when(standing.decided_at),
                "expires_at": _when(expires_at),
                "decision": standing.decision,
            }
    return grants, min(until.values(), default=None)


def grant_until(session: Session, expires_at: datetime) -> datetime:
    """A grant's expiry: never past the session's task."""
    if session.task is not None:
        return min(expires_at, session.task.expires_at)
    return expires_at


def non_human(session: Session) -> bool:
    """Whether a session carries what `Agents.refusal` checks (a delegation, a credential, a
    task, scopes); a person's session does not, and costs nothing more."""
    return (
        session.delegation is not None
        or session.credential is not None
        or session.task is not None
        or bool(session.credential_scopes)
    )
