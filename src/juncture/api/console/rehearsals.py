"""The console's rehearsals of a version before it goes live: the shadow version (install one,
see what it decided otherwise, promote or drop it) and replays of the decision log with a
stored version (start one, then its page shows its progress and its report; the page reloads
itself with a <meta refresh> while the job runs: no script)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from juncture.api.console.render import Ctx, redirect
from juncture.errors import RequestError, StateConflict
from juncture.replay_jobs import ReplayJob
from juncture.service.rehearsals import ReplayRequest

#: The shadow's newest differences shown on the versions page.
DIFFERENCES = 10
#: Seconds between two reloads of a running replay's page.
RELOAD = 2


def newest_differences(ctx: Ctx, shadow: str | None) -> list[Any]:
    """The installed shadow's newest recorded differences (none without a shadow)."""
    if shadow is None:
        return []
    _, records = ctx.runtime.versions.shadow_records(shadow, limit=DIFFERENCES)
    return list(records)


async def install_shadow(ctx: Ctx) -> Response:
    """Install a stored version as the shadow (replacing any), as `POST /admin/v1/shadow`."""
    version_id = ctx.runtime.versions.resolve(ctx.request.path_params["version_id"])
    ctx.runtime.versions.install_shadow(version_id)
    return redirect("/console/versions#shadow")


async def drop_shadow(ctx: Ctx) -> Response:
    """Remove the shadow version (its records stay), as `DELETE /admin/v1/shadow`."""
    if ctx.runtime.versions.drop_shadow() is None:
        raise StateConflict("no shadow version is installed", code="shadow.none")
    return redirect("/console/versions#shadow")


async def promote_shadow(ctx: Ctx) -> Response:
    """Publish the shadow version (guarded, activated, swept), as `POST
    /admin/v1/shadow/promote`."""
    allow_removal = ctx.form.get("allow_removal") == "on"
    ctx.runtime.versions.promote_shadow(ctx.login.name, allow_removal=allow_removal)
    return redirect("/console/versions")


def _given(ctx: Ctx, name: str) -> str | None:
    value = ctx.form.get(name, "").strip()
    return value or None


async def start_replay(ctx: Ctx) -> Response:
    """Replay the decision log with a stored version against the active one (or another), as
    `POST /admin/v1/replays`; to the job's page."""
    candidate = _given(ctx, "candidate")
    if candidate is None:
        raise RequestError("choose a version to replay")
    request = ReplayRequest(
        candidate=candidate, against=_given(ctx, "against"),
        since=_given(ctx, "since") or "24h", until=_given(ctx, "until"),
        app=_given(ctx, "app"), checkpoint=_given(ctx, "checkpoint"),
    )  # fmt: skip
    job = ctx.runtime.replays.start(request, ctx.login.name)
    return redirect(f"/console/replays/{job.id}")


def table(job: ReplayJob) -> list[dict[str, Any]]:
    """The report's checkpoint × old→new rows, changed ones first, then by count."""
    cells = (job.report or {}).get("table", [])
    rows = [{"checkpoint": c["checkpoint"], "old": c["old"], "new": c["new"],
             "count": c["count"], "changed": c["old"] != c["new"],
             "samples": c.get("samples", [])} for c in cells]  # fmt: skip
    return sorted(rows, key=lambda r: (not r["changed"], r["checkpoint"], -r["count"]))


async def replay_page(ctx: Ctx) -> Response:
    """A replay job: its progress while it runs (the page reloads itself), then its report."""
    job = ctx.runtime.replays.get(ctx.request.path_params["replay_id"])
    report = job.report or {}
    not_replayable = sorted((reason, int(v.get("count", 0)))
                            for reason, v in report.get("not_replayable", {}).items())  # fmt: skip
    return ctx.render("replay.html", job=job, report=report, rows=table(job),
                      not_replayable=not_replayable,
                      reload=RELOAD if job.status == "running" else None)  # fmt: skip
