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
from juncture.records import App, AppKey, DecisionQuery, DecisionRecord, VersionInfo
from juncture.service.ids import new_id, new_key
from juncture.service.policies import AmbiguousVersion
from juncture.service.runtime import Runtime
from juncture.service.sweep import progress
from juncture.store.protocols import ConflictError, NotFound


class UploadVersion(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: File name (relative to the bundle root) -> UTF-8 text.
    files: dict[str, str] = {}
    #: File name -> base64 bytes (for files that are not text).
    files_base64: dict[str, str] = {}
    comment: str = ""
    activate: bool = False
    #: Activate even if journeys, checkpoints or app routes in use would go (see `_activate`).
    allow_removal: bool = False


class Activate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    allow_removal: bool = False


class NewApp(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    journeys: list[str] = []
    assertable_methods: list[str] = []


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


class AppList(msgspec.Struct, frozen=True, kw_only=True):
    apps: list[AppView]


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
            allow_removal=params.get("allow_removal", "false") == "true",
        )
    else:
        body = convert(await json_body(request), UploadVersion)
        files = {name: text.encode() for name, text in body.files.items()}
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
    if body.activate:
        sweep = _activate(runtime, version_id, admin.name, allow_removal=body.allow_removal)
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


def _activate(runtime: Runtime, version_id: str, by: str, *, allow_removal: bool) -> str:
    """Activate a stored version and start its sweep; the sweep's id.

    Refused (409 ``version.removes_used``, nothing changed) when the version takes away a
    journey, a checkpoint or an app's route that decisions used in the last 24 hours or live
    sessions use now, unless ``allow_removal``.
    """
    if not allow_removal:
        removals = runtime.policies.removals(version_id)
        if removals:
            names = ", ".join(_removal_name(r) for r in removals)
            raise ApiError(
                409,
                "version.removes_used",
                f"this version removes what is in use: {names}"
                " (publish with allow_removal to go ahead)",
                removals=removals,
            )
    runtime.policies.activate(version_id, by=by)
    return runtime.start_sweep(f"publish {version_id}").id


def _removal_name(removal: dict[str, Any]) -> str:
    if removal["kind"] == "checkpoint":
        return f"checkpoint `{removal['checkpoint']}` of journey `{removal['journey']}`"
    if removal["kind"] == "route":
        apps = ", ".join(removal["apps"])
        return f"journey `{removal['journey']}` for app(s) {apps}"
    return f"journey `{removal['journey']}`"


def _version_id(runtime: Runtime, prefix: str) -> str:
    """The stored version a (unique) id prefix names. Raises ApiError 404 or 409."""
    try:
        return runtime.policies.resolve(prefix)
    except NotFound:
        raise ApiError(404, "version.not_found", f"no version starts with `{prefix}`") from None
    except AmbiguousVersion as exc:
        raise ApiError(
            409,
            "version.ambiguous",
            f"more than one version starts with `{prefix}`: give more of the id",
            matches=exc.matches,
        ) from None


async def list_versions(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    return _json(VersionList(versions=list(runtime.store.list_versions())))


async def show_version(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    version = runtime.store.get_version(_version_id(runtime, request.path_params["version_id"]))
    if version is None:
        raise ApiError(404, "version.not_found", "no such version")
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
    try:
        sweep = _activate(runtime, version_id, admin.name, allow_removal=body.allow_removal)
    except NotFound:
        raise ApiError(404, "version.not_found", "no such version") from None
    return _json(Activated(active=version_id, sweep=sweep))


async def start_sweep(request: Request) -> Response:
    runtime = _runtime(request)
    admin = authenticate_admin(request, runtime, "publish")
    run = runtime.start_sweep(f"manual by {admin.name}")
    return _json(progress(run), 202)


async def list_sweeps(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    status = request.query_params.get("status")
    return _json({"sweeps": [progress(r) for r in runtime.store.list_sweeps(status=status)]})


async def read_sweep(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    run = runtime.store.get_sweep(request.path_params["sweep_id"])
    if run is None:
        raise ApiError(404, "sweep.not_found", "no such sweep")
    return _json(progress(run))


async def diff_versions(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    against = request.query_params.get("against")
    if not against:
        raise ApiError(400, "request.invalid", "give `?against=<version id>`")
    against = _version_id(runtime, against)
    to = _version_id(runtime, request.path_params["version_id"])
    try:
        text = runtime.policies.diff(against, to)
        changes = runtime.policies.changes(to, against)
    except NotFound:
        raise ApiError(404, "version.not_found", "no such version") from None
    return _json(VersionDiff(from_=against, to=to, diff=text, changes=changes))


async def create_app(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "manage_apps")
    body = convert(await json_body(request), NewApp)
    if not body.name.strip():
        raise ApiError(400, "request.invalid", "`name` must not be empty")
    key, prefix, digest = new_key("app")
    now = runtime.now()
    app = App(
        id=new_id("app"),
        name=body.name,
        created_at=now,
        journeys=tuple(body.journeys),
        assertable_methods=tuple(body.assertable_methods),
        keys=(AppKey(prefix=prefix, hash=digest, created_at=now),),
    )
    try:
        runtime.store.put_app(app)
    except ConflictError:
        raise ApiError(409, "state.conflict", "try again") from None
    return _json({"app": app_view(app), "key": key}, 201)


async def list_apps(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    return _json({"apps": [app_view(a) for a in runtime.store.list_apps()]})


async def rotate_key(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "manage_apps")
    body = convert(await json_body(request, required=False), RotateKey)
    if not 0 <= body.overlap_seconds <= 30 * 86400:
        raise ApiError(400, "request.invalid", "`overlap_seconds` must be 0 to 30 days")
    app = runtime.store.get_app(request.path_params["app_id"])
    if app is None:
        raise ApiError(404, "app.not_found", "no such app")
    now = runtime.now()
    until = now + timedelta(seconds=body.overlap_seconds)
    old = tuple(
        msgspec.structs.replace(k, expires_at=min(k.expires_at or until, until))
        for k in app.keys
        if k.expires_at is None or k.expires_at > now
    )
    key, prefix, digest = new_key("app")
    app = msgspec.structs.replace(
        app, keys=(*old, AppKey(prefix=prefix, hash=digest, created_at=now))
    )
    runtime.store.put_app(app)
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
    runtime.log.writer.flush()
    try:
        records = runtime.store.query(query)
    except NotFound:  # a cursor naming no decision is the caller's mistake, not the store's
        raise ApiError(400, "request.invalid", "`before` names no logged decision") from None
    after = records[-1].id if len(records) == query.limit else None
    return _json(DecisionPage(decisions=list(records), next=after))
