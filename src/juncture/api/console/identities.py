"""The console's identities: subjects (disable, enable) and apps with their keys (create,
rotate with an overlap). A new key is shown once, on the page the action answers with, and
never again (it is stored as a hash)."""

from __future__ import annotations

from datetime import timedelta

from starlette.responses import Response

from juncture.api.console.render import Ctx, redirect
from juncture.errors import RequestError

SUBJECT_TYPES = ("user", "service", "agent")
PAGE = 100


async def identities(ctx: Ctx) -> Response:
    params = ctx.request.query_params
    kind = params.get("type") or None
    if kind is not None and kind not in SUBJECT_TYPES:
        raise RequestError(f"`type` must be one of {', '.join(SUBJECT_TYPES)}")
    subjects = ctx.runtime.directory.subjects(
        subject_type=kind, status=params.get("status") or None, limit=PAGE,
        after=params.get("after") or None,
    )  # fmt: skip
    after = f"{subjects[-1].type}:{subjects[-1].id}" if len(subjects) == PAGE else None
    return ctx.render("identities.html", subjects=subjects, apps=ctx.runtime.apps.list(),
                      types=SUBJECT_TYPES, query=dict(params), after=after,
                      can_subjects=ctx.can("manage_subjects"),
                      can_apps=ctx.can("manage_apps"), new_key=None)  # fmt: skip


async def set_status(ctx: Ctx) -> Response:
    """Disable (its active sessions are revoked) or enable a subject, as the admin API's
    `PATCH /admin/v1/subjects/{id}` does."""
    status = ctx.form.get("status")
    if status not in ("active", "disabled"):
        raise RequestError("`status` must be active or disabled")
    kind = ctx.request.path_params["subject_type"]
    if kind not in SUBJECT_TYPES:
        raise RequestError(f"the type must be one of {', '.join(SUBJECT_TYPES)}")
    ctx.runtime.directory.update_subject(
        kind, ctx.request.path_params["subject_id"], attributes=None, status=status
    )
    return redirect("/console/identities")


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.replace(",", " ").split() if n.strip()]


async def create_app(ctx: Ctx) -> Response:
    name = ctx.form.get("name", "").strip()
    if not name:
        raise RequestError("give the app a name")
    app, key = ctx.runtime.apps.create(
        name, _names(ctx.form.get("journeys", "")), _names(ctx.form.get("assertable", ""))
    )
    return _key_shown(ctx, app.name, key)


async def rotate_key(ctx: Ctx) -> Response:
    try:
        hours = float(ctx.form.get("overlap_hours", "24"))
    except ValueError:
        raise RequestError("the overlap is a number of hours") from None
    if not 0 <= hours <= 30 * 24:
        raise RequestError("the overlap must be 0 to 30 days")
    app, key = ctx.runtime.apps.rotate_key(
        ctx.request.path_params["app_id"], timedelta(hours=hours)
    )
    return _key_shown(ctx, app.name, key)


def _key_shown(ctx: Ctx, app: str, key: str) -> Response:
    """The page that shows a new key, this once (the answer is never cached: no-store)."""
    return ctx.render("key.html", app=app, new_key=key)
