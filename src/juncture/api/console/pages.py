"""Console pages: logging in and out, sessions (search, a session's page, revoke) and the
decision log (filters, a decision explained step by step, each step's source line)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from juncture.api.console.render import Ctx, error_page, read_form, redirect, render
from juncture.api.console.security import Logins, audit, check_origin, set_cookie
from juncture.errors import AuthError, JunctureError, NotFoundError, RequestError
from juncture.records import DecisionQuery, Session
from juncture.service.runtime import Runtime
from juncture.service.sessions import OBSERVED_SCAN

SESSION_STATUSES = ("pending", "active", "ended", "revoked")
OUTCOMES = ("allow", "deny", "step_up", "reroute", "revoke")
PAGE = 50


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def login_form(request: Request) -> Response:
    return render(request, "login.html", error=None)


async def log_in(request: Request) -> Response:
    """The admin key exchanged for a login cookie; the key is never shown back, nor kept."""
    runtime = _runtime(request)
    logins: Logins = request.app.state.console_logins
    try:
        check_origin(request)
        form = await read_form(request, 4096)
        token, login = logins.log_in(runtime, form.get("key", ""))
    except AuthError as error:
        audit(request, None, "console.login", "-", error.code)
        if error.code == "auth.csrf":
            return error_page(request, error, None)
        return render(request, "login.html", 401, error="That key is not a valid admin key.")
    except JunctureError as error:
        return error_page(request, error, None)
    audit(request, login.name, "console.login", login.admin_id, "ok")
    response = redirect("/console/sessions")
    set_cookie(response, request, token)
    return response


async def log_out(ctx: Ctx) -> Response:
    logins: Logins = ctx.request.app.state.console_logins
    logins.log_out(ctx.login)
    response = redirect("/console/login")
    set_cookie(response, ctx.request, None)
    return response


async def home(ctx: Ctx) -> Response:
    return redirect("/console/sessions")


def _param(ctx: Ctx, name: str) -> str | None:
    value = ctx.request.query_params.get(name, "").strip()
    return value or None


async def sessions(ctx: Ctx) -> Response:
    status = _param(ctx, "status")
    if status is not None and status not in SESSION_STATUSES:
        raise RequestError(f"`status` must be one of {', '.join(SESSION_STATUSES)}")
    ip, device = _param(ctx, "ip"), _param(ctx, "device")
    found, complete = ctx.runtime.sessions.find(
        app=_param(ctx, "app"), subject_id=_param(ctx, "subject"), status=status, ip=ip,
        device_id=device, limit=PAGE,
    )  # fmt: skip
    apps = {a.id: a.name for a in ctx.runtime.apps.list()}
    return ctx.render(
        "sessions.html", sessions=found, apps=apps, statuses=SESSION_STATUSES,
        query=dict(ctx.request.query_params), complete=complete, scan=OBSERVED_SCAN,
        observed=ip is not None or device is not None,
    )  # fmt: skip


def aal(session: Session) -> int:
    """The highest assurance level the session's proofs reached (0: none)."""
    return max((p.aal or 0 for p in session.proofs), default=0)


def flat(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """A document as (dotted path, value) rows, for a table."""
    if isinstance(value, dict):
        rows: list[tuple[str, str]] = []
        for key in sorted(value, key=str):
            rows += flat(value[key], f"{prefix}.{key}" if prefix else str(key))
        return rows or ([(prefix, "{}")] if prefix else [])
    if isinstance(value, list | tuple) and value and any(isinstance(v, dict) for v in value):
        rows = []
        for i, item in enumerate(value):
            rows += flat(item, f"{prefix}[{i}]")
        return rows
    if isinstance(value, list | tuple):
        return [(prefix, ", ".join(str(v) for v in value) or "[]")]
    if isinstance(value, datetime):
        return [(prefix, value.isoformat())]
    return [(prefix, "null" if value is None else str(value))]


def observed(session: Session) -> list[tuple[str, str]]:
    o = session.observed
    return [(k, v) for k, v in flat({
        "ip": o.ip, "user_agent": o.user_agent, "device_id": o.device_id,
        "platform": o.platform, "device_known": o.device_known,
        "country": o.located.country if o.located else None,
    }) if v != "null"]  # fmt: skip


async def session_page(ctx: Ctx) -> Response:
    session = ctx.runtime.sessions.read(ctx.request.path_params["session_id"])
    decisions = ctx.runtime.log.writer.query(DecisionQuery(session_id=session.id, limit=PAGE))
    received = ctx.runtime.sessions.received(session)
    return ctx.render(
        "session.html", s=session, aal=aal(session), context=flat(session.context),
        signals=flat(session.signals), observed=observed(session),
        decisions=decisions, received=received,
        can_revoke=ctx.can("manage_subjects") and session.status in ("pending", "active"),
    )  # fmt: skip


async def revoke_session(ctx: Ctx) -> Response:
    reason = ctx.form.get("reason", "").strip() or "revoked by an administrator"
    if len(reason) > 200:
        raise RequestError("the reason is longer than 200 characters")
    session = ctx.runtime.sessions.revoke(ctx.request.path_params["session_id"], reason)
    return redirect(f"/console/sessions/{session.id}")


def _time(ctx: Ctx, name: str) -> datetime | None:
    text = _param(ctx, name)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RequestError(f"`{name}` is not a time (2026-01-31T12:00Z)") from None
    if moment.tzinfo is None:
        raise RequestError(f"`{name}` needs a time zone (Z, +01:00)")
    return moment


async def decisions(ctx: Ctx) -> Response:
    outcome = _param(ctx, "outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise RequestError(f"`outcome` must be one of {', '.join(OUTCOMES)}")
    query = DecisionQuery(
        app=_param(ctx, "app"), subject_id=_param(ctx, "subject"),
        session_id=_param(ctx, "session"), action=_param(ctx, "checkpoint"), outcome=outcome,
        since=_time(ctx, "since"), until=_time(ctx, "until"), limit=PAGE,
        before=_param(ctx, "before"),
    )  # fmt: skip
    records = ctx.runtime.log.writer.query(query)
    after = records[-1].id if len(records) == PAGE else None
    apps = {a.id: a.name for a in ctx.runtime.apps.list()}
    params = {k: v for k, v in ctx.request.query_params.items() if k != "before"}
    return ctx.render("decisions.html", decisions=records, apps=apps, outcomes=OUTCOMES,
                      query=params, after=after)  # fmt: skip


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")


def used_facts(text: str, facts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The facts a step's text names (a dotted name in it that is a fact's path or a prefix
    of one)."""
    names = set(_NAME.findall(text))
    return [(path, value) for path, value in facts
            if any(path == n or path.startswith((n + ".", n + "["))
                   for n in names)]  # fmt: skip


async def decision_page(ctx: Ctx) -> Response:
    decision_id = ctx.request.path_params["decision_id"]
    record = ctx.runtime.log.writer.get(decision_id)
    if record is None:
        raise NotFoundError("no such decision")
    decision: dict[str, Any] = record.decision if isinstance(record.decision, dict) else {}
    facts = flat(record.facts if isinstance(record.facts, dict) else {})
    steps = [
        {**trace, "facts": used_facts(str(trace.get("step", {}).get("text", "")), facts)}
        for trace in decision.get("explanation", [])
        if isinstance(trace, dict)
    ]
    return ctx.render("decision.html", r=record, d=decision, steps=steps, facts=facts)
