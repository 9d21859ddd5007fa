"""The admin API (`/admin/v1`): policy versions, publish and rollback, apps and keys, the
decision log. Admin keys carry scopes: `read`, `publish`, `manage_apps`."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from juncture.api.archive import ARCHIVE_TYPES, read_archive_off_loop
from juncture.api.auth import authenticate_admin
from juncture.api.problems import ApiError, convert, json_body, page_limit, raw_body
from juncture.api.views import AppView, app_view, to_json
from juncture.policy.loader import MAX_BUNDLE_BYTES
from juncture.records import DecisionQuery, DecisionRecord, ShadowRecord, VersionInfo
from juncture.replay_jobs import ReplayJob
from juncture.service.rehearsals import ReplayRequest
from juncture.service.runtime import Runtime
from juncture.service.sweep import progress


class UploadVersion(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: File name (relative to the bundle root) -> UTF-8 text.
    files: dict[str, str] = {}
    #: File name -> base64 bytes (for files that are not text).
    files_base64: dict[str, str] = {}
    comment: str = ""
    activate: bool = False
    #: Install it as the shadow version (not with `activate`).
    shadow: bool = False
    #: Activate even if journeys, checkpoints or app routes in use would go (see `_activate`).
    allow_removal: bool = False


class Activate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    allow_removal: bool = False


class InstallShadow(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: A stored version's id, or a prefix no other version shares.
    version_id: str


class Promote(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    allow_removal: bool = False


class NewApp(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    journeys: list[str] = []
    assertable_methods: list[str] = []
    #: Where the hosted pages and forward auth may send a browser back to (docs/proxy.md).
    origins: list[str] = []
    #: Forward auth's identity headers: `subject`, `aal`, `scopes` -> header name.
    identity_headers: dict[str, str] = {}
    #: The hosted pages' name, logo and colours (docs/proxy.md#themes).
    theme: dict[str, Any] = {}


class AppChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What forward auth uses of an app, changed (an absent member is left as it is)."""

    origins: list[str] | None = None
    identity_headers: dict[str, str] | None = None
    #: The journeys the app may be decided by (kept in its binding history, for replay).
    journeys: list[str] | None = None
    #: The hosted pages' theme, replaced as a whole (`{}`: none).
    theme: dict[str, Any] | None = None


class RotateKey(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: How long the app's current keys keep working after the new one is issued.
    overlap_seconds: int = 86400


# -- the shapes of the answers (documented in /openapi.json) -----------------------------------


class Uploaded(msgspec.Struct, frozen=True, kw_only=True):
    """A version stored (`created`: new; false: the same bundle was there already)."""

    id: str
    created: bool
    active: bool
    #: The sweep the activation started (when `activate`).
    sweep: str | None
    changes: Any
    warnings: list[dict[str, Any]]


class VersionList(msgspec.Struct, frozen=True, kw_only=True):
    versions: list[VersionInfo]


class VersionShown(msgspec.Struct, frozen=True, kw_only=True):
    """A version and its files (null: a file that is not UTF-8 text)."""

    id: str
    author: str
    created_at: datetime
    comment: str
    files: dict[str, str | None]


class Activated(msgspec.Struct, frozen=True, kw_only=True):
    active: str
    sweep: str


class ShadowNode(msgspec.Struct, frozen=True, kw_only=True):
    """This node's shadow work since it started (`/metrics` has it too)."""

    #: Decisions the shadow decided, by transition (`allow->deny`; equal ones too).
    transitions: dict[str, int]
    errors: int
    dropped: int
    unrecorded: int
    #: Differences counted but not recorded: past this node's record rate.
    over_rate: int
    #: Of the transitions, decisions counted equal without deciding them again (their
    #: checkpoint is the same in both versions).
    unchanged: int
    waiting: int


class ShadowStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The shadow version (null: none), the active one, and what the shadow decided."""

    shadow: str | None
    active: str | None
    #: Its recorded differences by transition (every node's).
    differences: dict[str, int]
    node: ShadowNode


class ShadowChanged(msgspec.Struct, frozen=True, kw_only=True):
    """The shadow version now (null: none) and the one it replaced."""

    shadow: str | None
    replaced: str | None


class ShadowPromoted(msgspec.Struct, frozen=True, kw_only=True):
    active: str
    sweep: str


class ShadowPage(msgspec.Struct, frozen=True, kw_only=True):
    """What a shadow version decided otherwise, newest first; `next`: the next page's
    `before`."""

    shadow: str
    differences: list[ShadowRecord]
    next: str | None


class VersionDiff(msgspec.Struct, frozen=True, kw_only=True):
    from_: str = msgspec.field(name="from")
    to: str
    diff: str
    changes: Any


class SweepView(msgspec.Struct, frozen=True, kw_only=True):
    """A sweep's progress (`service.sweep.progress`)."""

    id: str
    reason: str
    version: str
    status: str
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    total: int
    processed: int
    changed: int
    skipped: int


class SweepList(msgspec.Struct, frozen=True, kw_only=True):
    sweeps: list[SweepView]


class ReplayList(msgspec.Struct, frozen=True, kw_only=True):
    """The replay jobs kept, newest first, without their reports (read one job for it)."""

    replays: list[ReplayJob]


class AppList(msgspec.Struct, frozen=True, kw_only=True):
    apps: list[AppView]


class AppOnly(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An app as it is now; ``sweep``: the recheck sweep its change of journeys started."""

    app: AppView
    sweep: str | None = None


class AppWithKey(msgspec.Struct, frozen=True, kw_only=True):
    """An app and its new key (shown this once)."""

    app: AppView
    key: str


class DecisionPage(msgspec.Struct, frozen=True, kw_only=True):
    """Logged decisions, newest first; `next`: the `before` of the next page."""

    decisions: list[DecisionRecord]
    next: str | None


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _json(body: Any, status: int = 200) -> Response:
    return Response(to_json(body), status_code=status, media_type="application/json")


async def upload_version(request: Request) -> Response:
    runtime = _runtime(request)
    admin = authenticate_admin(request, runtime, "publish")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ARCHIVE_TYPES:  # a tar(.gz) of the bundle; options in the query
        files = await read_archive_off_loop(await raw_body(request, MAX_BUNDLE_BYTES))
        params = request.query_params
        body = UploadVersion(
            comment=params.get("comment", ""),
            activate=params.get("activate", "false") == "true",
            shadow=params.get("shadow", "false") == "true",
            allow_removal=params.get("allow_removal", "false") == "true",
        )
    else:
        body = convert(await json_body(request), UploadVersion)
        files = {name: text.encode() for name, text in body.files.items()}
    if body.activate and body.shadow:
        raise ApiError(400, "request.invalid", "`activate` and `shadow` exclude each other")
    for name, encoded in body.files_base64.items():
        try:
            files[name] = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "request.invalid", f"`files_base64.{name}` is not base64") from None
    version_id, problems, created = runtime.policies.upload(
        files, author=admin.name, comment=body.comment
    )
    if version_id is None:
        raise ApiError(
            422, "policy.invalid", "the bundle has errors", problems=[p.to_dict() for p in problems]
        )
    changes = runtime.policies.changes(version_id)
    sweep = None
    if body.shadow:
        runtime.versions.install_shadow(version_id)
    elif body.activate:
        published = runtime.versions.publish(
            version_id, admin.name, allow_removal=body.allow_removal
        )
        sweep = published.id
    return _json(
        {
            "id": version_id,
            "created": created,
            "active": body.activate,
            "sweep": sweep,
            "changes": changes,
            "warnings": [p.to_dict() for p in problems],
        },
        201 if created else 200,
    )


def _version_id(runtime: Runtime, prefix: str) -> str:
    """The stored version a (unique) id prefix names. Raises NotFoundError 404 or
    AmbiguousVersion 409."""
    return runtime.versions.resolve(prefix)


async def list_versions(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    return _json(VersionList(versions=list(runtime.versions.list())))


async def show_version(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    version = runtime.versions.get(_version_id(runtime, request.path_params["version_id"]))
    files: dict[str, str | None] = {}
    for name, content in version.files.items():
        try:
            files[name] = content.decode("utf-8")
        except UnicodeDecodeError:
            files[name] = None
    return _json(
        VersionShown(
            id=version.id,
            author=version.author,
            created_at=version.created_at,
            comment=version.comment,
            files=files,
        )
    )


async def activate_version(request: Request) -> Response:
    runtime = _runtime(request)
    admin = authenticate_admin(request, runtime, "publish")
    body = convert(await json_body(request, required=False), Activate)
    version_id = _version_id(runtime, request.path_params["version_id"])
    sweep = runtime.versions.publish(version_id, admin.name, allow_removal=body.allow_removal)
    return _json(Activated(active=version_id, sweep=sweep.id))


async def start_sweep(request: Request) -> Response:
    runtime = _runtime(request)
    admin = authenticate_admin(request, runtime, "publish")
    run = runtime.versions.sweep(admin.name)
    return _json(progress(run), 202)


async def list_sweeps(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    status = request.query_params.get("status")
    return _json({"sweeps": [progress(r) for r in runtime.versions.sweeps(status)]})


async def read_sweep(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    return _json(progress(runtime.versions.sweep_run(request.path_params["sweep_id"])))


async def start_replay(request: Request) -> Response:
    """Start a replay of the decision log with a stored version (service/replay.py): 202 with
    the job, whose progress and report `GET /admin/v1/replays/{replay_id}` gives."""
    runtime = _runtime(request)
    admin = authenticate_admin(request, runtime, "publish")
    body = convert(await json_body(request), ReplayRequest)
    return _json(runtime.replays.start(body, admin.name), 202)


async def list_replays(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    return _json(ReplayList(replays=runtime.replays.list()))


async def read_replay(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    return _json(runtime.replays.get(request.path_params["replay_id"]))


async def diff_versions(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    against = request.query_params.get("against")
    if not against:
        raise ApiError(400, "request.invalid", "give `?against=<version id>`")
    against = _version_id(runtime, against)
    to = _version_id(runtime, request.path_params["version_id"])
    text, changes = runtime.versions.compare(against, to)
    return _json(VersionDiff(from_=against, to=to, diff=text, changes=changes))


async def create_app(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "manage_apps")
    body = convert(await json_body(request), NewApp)
    if not body.name.strip():
        raise ApiError(400, "request.invalid", "`name` must not be empty")
    app, key = runtime.apps.create(
        body.name,
        body.journeys,
        body.assertable_methods,
        body.origins,
        body.identity_headers,
        body.theme,
    )
    return _json({"app": app_view(app), "key": key}, 201)


async def change_app(request: Request) -> Response:
    runtime = _runtime(request)
    admin = authenticate_admin(request, runtime, "manage_apps")
    body = convert(await json_body(request), AppChange)
    before = runtime.apps.get(request.path_params["app_id"])
    app = runtime.apps.configure(
        request.path_params["app_id"], body.origins, body.identity_headers, body.theme,
        journeys=body.journeys,
    )  # fmt: skip
    if before is None or app.journeys == before.journeys:
        return _json({"app": app_view(app)})
    # Rebound: its sessions' standing outcomes were decided by other journeys, so they are
    # re-checked (a recheck sweep: every app's, as `POST /admin/v1/sweeps` starts one).
    run = runtime.versions.sweep(f"{admin.name}: app {app.name} rebound")
    return _json({"app": app_view(app), "sweep": run.id})


async def list_apps(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    return _json({"apps": [app_view(a) for a in runtime.apps.list()]})


async def rotate_key(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "manage_apps")
    body = convert(await json_body(request, required=False), RotateKey)
    if not 0 <= body.overlap_seconds <= 30 * 86400:
        raise ApiError(400, "request.invalid", "`overlap_seconds` must be 0 to 30 days")
    app, key = runtime.apps.rotate_key(
        request.path_params["app_id"], timedelta(seconds=body.overlap_seconds)
    )
    return _json({"app": app_view(app), "key": key}, 201)


def _time(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "request.invalid", f"`{name}` is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise ApiError(400, "request.invalid", f"`{name}` needs a time zone")
    return moment


async def query_decisions(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    params = request.query_params
    limit = page_limit(request)
    query = DecisionQuery(
        app=params.get("app"),
        subject_id=params.get("subject_id"),
        session_id=params.get("session_id"),
        action=params.get("action"),
        outcome=params.get("outcome"),
        since=_time(params.get("since"), "since"),
        until=_time(params.get("until"), "until"),
        limit=limit,
        before=params.get("before"),
    )
    records = runtime.log.writer.query(query)
    after = records[-1].id if len(records) == query.limit else None
    return _json(DecisionPage(decisions=list(records), next=after))


async def read_shadow(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    shadow, active, recorded, node = runtime.versions.shadow_status()
    return _json(ShadowStatus(shadow=shadow, active=active, differences=recorded, node=ShadowNode(
        transitions=node.transitions, errors=node.errors, dropped=node.dropped,
        unrecorded=node.unrecorded, over_rate=node.over_rate, unchanged=node.unchanged,
        waiting=node.waiting)))  # fmt: skip


async def install_shadow(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "publish")
    body = convert(await json_body(request), InstallShadow)
    version_id = _version_id(runtime, body.version_id)
    replaced = runtime.versions.install_shadow(version_id)
    return _json(ShadowChanged(shadow=version_id, replaced=replaced))


async def drop_shadow(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "publish")
    return _json(ShadowChanged(shadow=None, replaced=runtime.versions.drop_shadow()))


async def promote_shadow(request: Request) -> Response:
    runtime = _runtime(request)
    admin = authenticate_admin(request, runtime, "publish")
    body = convert(await json_body(request, required=False), Promote)
    version_id, sweep = runtime.versions.promote_shadow(
        admin.name, allow_removal=body.allow_removal
    )
    return _json(ShadowPromoted(active=version_id, sweep=sweep.id))


async def shadow_differences(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    params = request.query_params
    version = params.get("version")
    limit = page_limit(request)
    shadow, records = runtime.versions.shadow_records(
        _version_id(runtime, version) if version else None,
        transition=params.get("transition"),
        limit=limit,
        before=params.get("before"),
    )
    after = records[-1].decision_id if len(records) == limit else None
    return _json(ShadowPage(shadow=shadow, differences=list(records), next=after))


ROUTES = [
    ("/admin/v1/versions", upload_version, ["POST"]),
    ("/admin/v1/versions", list_versions, ["GET"]),
    ("/admin/v1/versions/{version_id}", show_version, ["GET"]),
    ("/admin/v1/versions/{version_id}/activate", activate_version, ["POST"]),
    ("/admin/v1/versions/{version_id}/diff", diff_versions, ["GET"]),
    ("/admin/v1/apps", create_app, ["POST"]),
    ("/admin/v1/apps", list_apps, ["GET"]),
    ("/admin/v1/apps/{app_id}", change_app, ["PATCH"]),
    ("/admin/v1/apps/{app_id}/keys", rotate_key, ["POST"]),
    ("/admin/v1/decisions", query_decisions, ["GET"]),
    ("/admin/v1/sweeps", start_sweep, ["POST"]),
    ("/admin/v1/sweeps", list_sweeps, ["GET"]),
    ("/admin/v1/sweeps/{sweep_id}", read_sweep, ["GET"]),
    ("/admin/v1/shadow", read_shadow, ["GET"]),
    ("/admin/v1/shadow", install_shadow, ["PUT"]),
    ("/admin/v1/shadow", drop_shadow, ["DELETE"]),
    ("/admin/v1/shadow/promote", promote_shadow, ["POST"]),
    ("/admin/v1/shadow/differences", shadow_differences, ["GET"]),
    ("/admin/v1/replays", start_replay, ["POST"]),
    ("/admin/v1/replays", list_replays, ["GET"]),
    ("/admin/v1/replays/{replay_id}", read_replay, ["GET"]),
]
