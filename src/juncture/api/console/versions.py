"""Console pages of policy versions: the list with the shadow status, a version's files (a
line highlighted: where explanations point), the diff of two, activate (rollback is activating
an older one), and publish (a version made from another with one file changed)."""

from __future__ import annotations

from starlette.responses import Response

from juncture.api.console.graph import journey_graph
from juncture.api.console.rehearsals import newest_differences
from juncture.api.console.render import Ctx, redirect
from juncture.errors import NotFoundError, RequestError
from juncture.policy.loader import MAX_BUNDLE_BYTES
from juncture.service.policies import NoActiveVersion

#: The publish form's limit (a bundle's).
UPLOAD_LIMIT = MAX_BUNDLE_BYTES


async def versions(ctx: Ctx) -> Response:
    listed = list(ctx.runtime.versions.list())
    shadow, active, recorded, node = ctx.runtime.versions.shadow_status()
    replays = ctx.runtime.replays.list()
    return ctx.render("versions.html", versions=listed, shadow=shadow, active=active,
                      differences=recorded, node=node, replays=replays,
                      newest=newest_differences(ctx, shadow),
                      can_publish=ctx.can("publish"))  # fmt: skip


def _text(content: bytes) -> str | None:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return None


async def version_files(ctx: Ctx) -> Response:
    """A version's files; ``?file=`` one of them, ``&line=`` the line highlighted."""
    version = ctx.runtime.versions.get(
        ctx.runtime.versions.resolve(ctx.request.path_params["version_id"])
    )
    name = ctx.request.query_params.get("file") or min(version.files, default="")
    if name not in version.files:
        raise NotFoundError(f"version {version.id[:12]} has no file `{name}`")
    text = _text(version.files[name])
    try:
        line = int(ctx.request.query_params.get("line", "0"))
    except ValueError:
        raise RequestError("`line` is not a number") from None
    lines = (text or "").splitlines()
    return ctx.render("source.html", v=version, file=name, files=sorted(version.files),
                      lines=lines, binary=text is None, line=line)  # fmt: skip


async def diff(ctx: Ctx) -> Response:
    params = ctx.request.query_params
    given_from, given_to = params.get("from", "").strip(), params.get("to", "").strip()
    if not given_from or not given_to:
        raise RequestError("choose two versions to compare")
    old = ctx.runtime.versions.resolve(given_from)
    new = ctx.runtime.versions.resolve(given_to)
    text, changes = ctx.runtime.versions.compare(old, new)
    rows = []
    for line in text.splitlines():
        kind = ("file" if line.startswith(("+++", "---")) else "hunk" if line.startswith("@@")
                else "add" if line.startswith("+") else "del" if line.startswith("-") else "ctx")
        rows.append((kind, line))  # fmt: skip
    summary = [(k, v) for k, v in sorted(changes.items()) if k not in ("from", "to") and v]
    return ctx.render("diff.html", old=old, new=new, rows=rows, summary=summary)


async def activate(ctx: Ctx) -> Response:
    """Activate a stored version (a rollback, when it is an older one), as the admin API's
    `POST /admin/v1/versions/{id}/activate` does."""
    version_id = ctx.runtime.versions.resolve(ctx.request.path_params["version_id"])
    allow_removal = ctx.form.get("allow_removal") == "on"
    ctx.runtime.versions.publish(version_id, ctx.login.name, allow_removal=allow_removal)
    return redirect("/console/versions")


async def publish_form(ctx: Ctx) -> Response:
    """The publish form: a file of a version (the active one by default) to change."""
    params = ctx.request.query_params
    try:
        base_id = ctx.runtime.versions.resolve(params["base"]) if params.get("base") else (
            ctx.runtime.policies.active().version)  # fmt: skip
    except NoActiveVersion:
        base_id = None
    files = ctx.runtime.versions.get(base_id).files if base_id else {}
    name = params.get("file") or min(files, default="journey.yaml")
    text = _text(files[name]) if name in files else ""
    return ctx.render("publish.html", base=base_id, files=sorted(files), file=name,
                      text=text or "", problems=[])  # fmt: skip


async def publish(ctx: Ctx) -> Response:
    """A new version: the base version's files with one file written (or added), stored and,
    when asked, activated, as the admin API's upload does."""
    form = ctx.form
    name = form.get("file", "").strip()
    if not name or name.startswith("/") or ".." in name.split("/"):
        raise RequestError("give the file a relative name (acct.yaml)")
    files = dict(ctx.runtime.versions.get(ctx.runtime.versions.resolve(form["base"])).files
                 if form.get("base") else {})  # fmt: skip
    files[name] = form.get("text", "").replace("\r\n", "\n").encode()
    version_id, problems, _ = ctx.runtime.policies.upload(
        files, author=ctx.login.name, comment=form.get("comment", "")
    )
    if version_id is None:
        return ctx.render("publish.html", 422, base=form.get("base") or None,
                          files=sorted(files), file=name, text=form.get("text", ""),
                          problems=[p.to_dict() for p in problems])  # fmt: skip
    if form.get("activate") == "on":
        ctx.runtime.versions.publish(version_id, ctx.login.name)
    return redirect("/console/versions")


async def journeys(ctx: Ctx) -> Response:
    """The active version's journeys as graphs (graph.py), with their invariants."""
    try:
        plan = ctx.runtime.policies.active()
    except NoActiveVersion:
        return ctx.render("journeys.html", version=None, journeys=[])
    drawn = [
        {"name": j.name, "file": j.file, "applies_to": j.applies_to, "graph": journey_graph(j),
         "invariants": j.invariants}
        for j in sorted(plan.journeys.values(), key=lambda j: j.name)
    ]  # fmt: skip
    return ctx.render("journeys.html", version=plan.version, journeys=drawn)
