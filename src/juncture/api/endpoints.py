"""The description of every route (tabular data): what `/openapi.json` says of it.

One `Endpoint` per method and path the app serves (`api/app.py`, the `ROUTES` of the api
modules). The structs named here are the ones the handlers decode requests into and whose
shape their answers have; `api/describe.py` turns the table into the OpenAPI document.
Adding a route means adding its line here: start-up refuses a route without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from juncture.api import (
    admin,
    approvals,
    devclock,
    directory,
    forward,
    native,
    ssf,
    transmitters,
)
from juncture.api.authzen import (
    ActionSearchRequest,
    EvaluationRequest,
    EvaluationResponse,
    EvaluationsRequest,
    EvaluationsResponse,
    Metadata,
    ResourceSearchRequest,
    SearchResponse,
    SubjectSearchRequest,
)
from juncture.api.describe import Endpoint
from juncture.api.views import DecisionAnswer, DevClockView, Health, SessionRead, SessionView
from juncture.replay_jobs import ReplayJob
from juncture.service.receive import TransmitterEntry
from juncture.service.rehearsals import ReplayRequest

#: A JSON object whose members the table does not spell out.
Obj = dict[str, Any]
#: Error codes by HTTP status.
Errors = Mapping[int, tuple[str, ...]]

#: What a path parameter is, where the name alone does not say it.
PARAMETERS = {
    "version_id": "A version id, or any prefix of one no other version shares.",
    "subject_type": "`service` or `agent`",
}

_SESSION: Errors = {404: ("session.not_found",), 409: ("session.not_active",)}
_DECIDES: Errors = {400: ("facts.invalid",), 403: ("subject.disabled",)}
_CHALLENGE: Errors = {404: ("challenge.not_found",), 409: ("challenge.not_live",)}
_OWN: Errors = {
    400: ("request.invalid",),
    403: ("session.subject_mismatch",),
    404: ("session.not_found", "subject.not_found"),
    409: ("session.not_active",),
}
_AUTHENTICATOR: Errors = {404: ("subject.not_found", "authenticator.not_found")}
_NO_DEV: Errors = {404: ("dev.disabled",)}
_NO_SSF: Errors = {404: ("request.not_found",)}
_STREAM: Errors = {400: ("request.invalid",), 404: ("request.not_found", "stream.not_found")}
_VERSION: Errors = {404: ("version.not_found",), 409: ("version.ambiguous",)}
_TYPE: Errors = {400: ("request.invalid",)}


def _merge(*parts: Errors) -> Errors:
    out: dict[int, tuple[str, ...]] = {}
    for part in parts:
        for status, codes in part.items():
            known = out.get(status, ())
            out[status] = (*known, *(c for c in codes if c not in known))
    return out


def _access() -> list[Endpoint]:
    search = "Search permitted {} (AuthZEN)"
    return [
        Endpoint("POST", "/access/v1/evaluation", "Decide one request (AuthZEN)", "access",
                 "app", EvaluationRequest, ok={200: EvaluationResponse}, errors=_DECIDES),
        Endpoint("POST", "/access/v1/evaluations", "Decide a batch (AuthZEN)", "access", "app",
                 EvaluationsRequest, ok={200: EvaluationsResponse}, errors=_DECIDES),
        Endpoint("POST", "/access/v1/search/subject", search.format("subjects"), "access", "app",
                 SubjectSearchRequest, ok={200: SearchResponse}, errors=_DECIDES),
        Endpoint("POST", "/access/v1/search/resource", search.format("resources"), "access",
                 "app", ResourceSearchRequest, ok={200: SearchResponse}, errors=_DECIDES),
        Endpoint("POST", "/access/v1/search/action", search.format("actions"), "access", "app",
                 ActionSearchRequest, ok={200: SearchResponse}, errors=_DECIDES),
        Endpoint("GET", "/.well-known/authzen-configuration", "AuthZEN discovery metadata",
                 "access", None, ok={200: Metadata}),
    ]  # fmt: skip


def _sessions() -> list[Endpoint]:
    answer = {200: DecisionAnswer}
    return [
        Endpoint("POST", "/v1/sessions", "Start a session and decide `login` (201; 200: no "
                 "session, the decision alone)", "sessions", "app", native.StartSession,
                 ok={201: DecisionAnswer, 200: DecisionAnswer},
                 errors=_merge(_DECIDES, {400: ("auth.method_not_assertable", "task.invalid",
                                                "delegation.required", "delegation.invalid"),
                                          401: ("credential.invalid",),
                                          409: ("credential.busy", "credential.expired")})),
        Endpoint("GET", "/v1/sessions/{session_id}", "Read a session", "sessions", "app",
                 ok={200: SessionRead}, errors={404: ("session.not_found",)}),
        Endpoint("POST", "/v1/sessions/{session_id}/end", "End or revoke a session",
                 "sessions", "app", native.EndSession, body_required=False,
                 ok={200: SessionView}, errors={404: ("session.not_found",)}),
        Endpoint("POST", "/v1/sessions/{session_id}/signals", "Update context and signals; "
                 "re-run the guard", "sessions", "app", native.ContextUpdate, ok=answer,
                 errors=_merge(_DECIDES, _SESSION)),
        Endpoint("POST", "/v1/sessions/{session_id}/task", "Give an agent session its task "
                 "(the next decisions follow it)", "sessions", "app", native.TaskChange,
                 ok=answer, errors=_merge(_DECIDES, _SESSION, {400: ("task.invalid",)})),
        Endpoint("POST", "/v1/challenges/{challenge_id}/verify", "Verify a step-up challenge",
                 "sessions", "app", native.Verify, ok=answer,
                 errors=_merge(_CHALLENGE, {400: ("challenge.method_not_accepted",
                                                  "challenge.proof_malformed",
                                                  "auth.method_not_assertable"),
                                            401: ("challenge.failed",),
                                            429: ("auth.locked",)})),
        Endpoint("POST", "/v1/challenges/{challenge_id}/start", "Start a method's ceremony for "
                 "a challenge (WebAuthn options, an email code)", "sessions", "app",
                 directory.Start,
                 errors=_merge(_CHALLENGE, {400: ("challenge.no_start",
                                                  "challenge.method_not_accepted")})),
    ]  # fmt: skip


def _approvals() -> list[Endpoint]:
    return [
        Endpoint("GET", "/v1/approvals", "The approvals asked of the user of a session (pending "
                 "and live by default)", "approvals", "app", query=("session_id", "status"),
                 errors=_merge(_TYPE, _SESSION)),
        Endpoint("GET", "/v1/approvals/{approval_id}", "One approval asked of the user of a "
                 "session", "approvals", "app", query=("session_id",),
                 errors=_merge(_TYPE, _SESSION, {404: ("approval.not_found",)})),
        Endpoint("POST", "/v1/approvals/{approval_id}", "Approve (the `approval.approve` "
                 "checkpoint) or reject from the user's session", "approvals", "app",
                 approvals.Answer,
                 errors=_merge(_SESSION, {404: ("approval.not_found",),
                                          409: ("approval.answered", "approval.expired")})),
    ]  # fmt: skip


def _directory() -> list[Endpoint]:
    subjects, keys = "/admin/v1/subjects", "/admin/v1/subjects/{subject_id}"
    manage = "admin:manage_subjects"
    found: Errors = {404: ("subject.not_found",)}
    return [
        Endpoint("POST", subjects, "Create a subject", "directory", manage, directory.NewSubject,
                 ok={201: directory.SubjectShown}, errors={409: ("subject.exists",)}),
        Endpoint("GET", subjects, "List subjects", "directory", "admin:read",
                 ok={200: directory.SubjectList}, query=("type", "status", "limit", "after"),
                 errors=_TYPE),
        Endpoint("GET", keys, "A subject and its authenticators", "directory", "admin:read",
                 ok={200: directory.SubjectDetail}, query=("type",),
                 errors=_merge(_TYPE, found)),
        Endpoint("PATCH", keys, "Change a subject (disabling revokes its sessions)",
                 "directory", manage, directory.SubjectChange, query=("type",),
                 ok={200: directory.SubjectShown},
                 errors=_merge(found, {409: ("subject.busy",)})),
        Endpoint("POST", f"{keys}/authenticators", "Enroll for a subject (no checkpoint: an "
                 "administrator's act)", "directory", manage, directory.Enroll,
                 ok={201: directory.Enrolled},
                 errors=_merge(found, {400: ("authenticator.unknown_method",
                                             "authenticator.not_enrollable",
                                             "enrollment.invalid", "journey.not_found")})),
        Endpoint("POST", f"{keys}/authenticators/{{authenticator_id}}/confirm", "Confirm an "
                 "authenticator", "directory", manage, directory.Confirm,
                 ok={200: directory.AuthenticatorAnswer},
                 errors=_merge(_AUTHENTICATOR, {409: ("authenticator.confirmed",)})),
        Endpoint("DELETE", f"{keys}/authenticators/{{authenticator_id}}", "Remove an "
                 "authenticator", "directory", manage, ok={200: directory.Removed},
                 errors=_AUTHENTICATOR),
        Endpoint("POST", f"{keys}/keys", "Issue an API key to a service or an agent (`?type=`); "
                 "the key is shown once", "directory", manage, directory.NewKey,
                 ok={201: directory.IssuedKey},
                 query=("type",), errors=_merge(_TYPE, found)),
        Endpoint("POST", f"{keys}/keys/{{authenticator_id}}/rotate", "Rotate an API key: a new "
                 "one, the old one working on for the overlap", "directory", manage,
                 directory.Rotate, body_required=False, ok={201: directory.IssuedKey},
                 query=("type",),
                 errors=_merge(_TYPE, _AUTHENTICATOR, {400: ("credential.not_rotatable",),
                                                       409: ("credential.expired",)})),
        Endpoint("POST", f"{keys}/assertion-keys", "Register the public keys a service signs "
                 "its client assertions with", "directory", manage, directory.NewAssertionKeys,
                 ok={201: directory.AuthenticatorAnswer}, query=("type",),
                 errors=_merge(_TYPE, found, {400: ("credential.invalid_keys",)})),
        Endpoint("GET", "/v1/subjects/{subject_id}/authenticators", "List a subject's "
                 "authenticators (with a session of the subject)", "directory", "app",
                 ok={200: directory.AuthenticatorList}, query=("session_id",), errors=_OWN),
        Endpoint("POST", "/v1/subjects/{subject_id}/authenticators", "Enroll an authenticator "
                 "(the `authenticator.enroll` checkpoint decides; 200: it did not allow)",
                 "directory", "app", directory.Enroll, ok={201: Obj, 200: Obj},
                 errors=_merge(_OWN, {400: ("authenticator.unknown_method",
                                            "authenticator.not_enrollable",
                                            "enrollment.invalid")})),
        Endpoint("POST", "/v1/subjects/{subject_id}/authenticators/{authenticator_id}/confirm",
                 "Confirm a new authenticator with its first verification", "directory", "app",
                 directory.Confirm, ok={200: directory.AuthenticatorAnswer},
                 errors=_merge(_OWN, _AUTHENTICATOR, {409: ("authenticator.confirmed",)})),
        Endpoint("DELETE", "/v1/subjects/{subject_id}/authenticators/{authenticator_id}",
                 "Remove an authenticator (the `authenticator.remove` checkpoint decides)",
                 "directory", "app", query=("session_id",), errors=_merge(_OWN, _AUTHENTICATOR)),
    ]  # fmt: skip


def _admin() -> list[Endpoint]:
    version = "/admin/v1/versions/{version_id}"
    sweep = {202: admin.SweepView}
    return [
        Endpoint("POST", "/admin/v1/versions", "Upload a bundle as a version (JSON, or a tar "
                 "of it with `comment`, `activate`, `allow_removal` in the query); 200: "
                 "stored already", "admin", "admin:publish", admin.UploadVersion,
                 body_media=("application/x-tar", "application/gzip"),
                 ok={201: admin.Uploaded, 200: admin.Uploaded},
                 query=("comment", "activate", "shadow", "allow_removal"),
                 errors={400: ("request.invalid",),
                         409: ("version.removes_used", "version.rehearsal_failed",
                               "shadow.is_active"),
                         422: ("policy.invalid",)}),
        Endpoint("GET", "/admin/v1/versions", "List versions", "admin", "admin:read",
                 ok={200: admin.VersionList}),
        Endpoint("GET", version, "Show a version", "admin", "admin:read",
                 ok={200: admin.VersionShown}, errors=_VERSION),
        Endpoint("POST", f"{version}/activate", "Publish (or roll back to) a version", "admin",
                 "admin:publish", admin.Activate, body_required=False,
                 ok={200: admin.Activated},
                 errors=_merge(_VERSION, {409: ("version.removes_used",
                                                "version.rehearsal_failed")})),
        Endpoint("GET", f"{version}/diff", "Diff against another version", "admin",
                 "admin:read", ok={200: admin.VersionDiff}, required_query=("against",),
                 errors=_merge(_TYPE, _VERSION)),
        Endpoint("GET", "/admin/v1/shadow", "The shadow version and what it decided "
                 "otherwise, by transition", "admin", "admin:read", ok={200: admin.ShadowStatus}),
        Endpoint("PUT", "/admin/v1/shadow", "Install a stored version as the shadow: every "
                 "live decision is decided by it too, its answers only recorded", "admin",
                 "admin:publish", admin.InstallShadow, ok={200: admin.ShadowChanged},
                 errors=_merge(_TYPE, _VERSION, {409: ("shadow.is_active",),
                                                 422: ("policy.invalid",)})),
        Endpoint("DELETE", "/admin/v1/shadow", "Remove the shadow version (its records stay)",
                 "admin", "admin:publish", ok={200: admin.ShadowChanged}),
        Endpoint("POST", "/admin/v1/shadow/promote", "Publish the shadow version (a publish: "
                 "guarded, activated, swept)", "admin", "admin:publish", admin.Promote,
                 body_required=False, ok={200: admin.ShadowPromoted},
                 errors=_merge(_VERSION, {409: ("shadow.none", "version.removes_used",
                                                "version.rehearsal_failed")})),
        Endpoint("GET", "/admin/v1/shadow/differences", "What a shadow version decided "
                 "otherwise, newest first", "admin", "admin:read", ok={200: admin.ShadowPage},
                 query=("version", "transition", "limit", "before"),
                 errors=_merge(_TYPE, _VERSION, {404: ("shadow.not_found",),
                                                 409: ("shadow.none",)})),
        Endpoint("POST", "/admin/v1/apps", "Register an app (its key is shown once)", "admin",
                 "admin:manage_apps", admin.NewApp, ok={201: admin.AppWithKey},
                 errors={409: ("state.conflict",)}),
        Endpoint("GET", "/admin/v1/apps", "List apps", "admin", "admin:read",
                 ok={200: admin.AppList}),
        Endpoint("PATCH", "/admin/v1/apps/{app_id}", "Change an app's origins, identity "
                 "headers (forward auth), theme or journeys", "admin", "admin:manage_apps",
                 admin.AppChange,
                 ok={200: admin.AppOnly}, errors={400: ("request.invalid",),
                                                  404: ("app.not_found",)}),
        Endpoint("POST", "/admin/v1/apps/{app_id}/keys", "Rotate an app's key with overlap",
                 "admin", "admin:manage_apps", admin.RotateKey, body_required=False,
                 ok={201: admin.AppWithKey}, errors={404: ("app.not_found",)}),
        Endpoint("GET", "/admin/v1/decisions", "Query the decision log", "admin", "admin:read",
                 ok={200: admin.DecisionPage}, errors=_TYPE,
                 query=("app", "subject_id", "session_id", "action", "outcome", "since",
                        "until", "limit", "before")),
        Endpoint("POST", "/admin/v1/sweeps", "Start a sweep: re-check sessions with standing "
                 "outcomes", "admin", "admin:publish", ok=sweep),
        Endpoint("GET", "/admin/v1/sweeps", "List sweeps (newest first)", "admin", "admin:read",
                 ok={200: admin.SweepList}, query=("status",)),
        Endpoint("GET", "/admin/v1/sweeps/{sweep_id}", "A sweep's progress", "admin",
                 "admin:read", ok={200: admin.SweepView}, errors={404: ("sweep.not_found",)}),
        Endpoint("POST", "/admin/v1/replays", "Replay the decision log with a stored version "
                 "(a job: 202, then its progress and report)", "admin", "admin:publish",
                 ReplayRequest, ok={202: ReplayJob},
                 errors={400: ("request.invalid", "replay.rule_invalid",
                               "replay.window_invalid"), 404: ("version.not_found",),
                         409: ("version.ambiguous", "state.conflict")}),
        Endpoint("GET", "/admin/v1/replays", "List the replay jobs kept (newest first, "
                 "without their reports)", "admin", "admin:read", ok={200: admin.ReplayList}),
        Endpoint("GET", "/admin/v1/replays/{replay_id}", "A replay's progress, then its report "
                 "and the rules broken", "admin", "admin:read", ok={200: ReplayJob},
                 errors={404: ("replay.not_found",)}),
        Endpoint("GET", "/admin/v1/identities", "The inventory of services and agents: owner, "
                 "credentials, sessions, live grants, flags (`no_owner`, `unused`, "
                 "`key_too_old`, `grants_outlive_task`)", "admin", "admin:read",
                 query=("type", "flag", "limit", "after"), errors=_TYPE),
        Endpoint("GET", "/admin/v1/identities/{subject_type}/{subject_id}", "One service or "
                 "agent of the inventory", "admin", "admin:read",
                 errors={404: ("identity.not_found",)}),
        Endpoint("GET", "/admin/v1/transmitters", "Trusted Shared Signals transmitters (no "
                 "secret shown)", "admin", "admin:read", ok={200: transmitters.TransmitterList}),
        Endpoint("POST", "/admin/v1/transmitters", "Trust a transmitter (written to the "
                 "transmitters file)", "admin", "admin:manage_apps", TransmitterEntry,
                 ok={201: transmitters.TransmitterView},
                 errors={409: ("transmitter.exists", "transmitter.file_invalid")}),
        Endpoint("DELETE", "/admin/v1/transmitters/{name}", "Stop trusting a transmitter",
                 "admin", "admin:manage_apps", ok={204: None},
                 errors={404: ("transmitter.not_found",), 409: ("transmitter.file_invalid",)}),
        Endpoint("GET", "/admin/v1/clock", "Development mode: the test clock (404 without "
                 "--dev)", "admin", "admin:read", ok={200: DevClockView}, errors=_NO_DEV),
        Endpoint("POST", "/admin/v1/clock", "Development mode: move decision time (an offset, "
                 "or a moment)", "admin", "admin:publish", devclock.MoveClock,
                 ok={200: DevClockView}, errors=_NO_DEV),
        Endpoint("DELETE", "/admin/v1/clock", "Development mode: back to the real clock",
                 "admin", "admin:publish", ok={200: DevClockView}, errors=_NO_DEV),
    ]  # fmt: skip


def _shared_signals() -> list[Endpoint]:
    tag, streams = "shared signals", "/ssf/streams"
    return [
        Endpoint("GET", "/.well-known/ssf-configuration", "Shared Signals transmitter metadata",
                 tag, None, errors=_NO_SSF),
        Endpoint("GET", "/ssf/jwks.json", "The keys Juncture signs its events with", tag, None,
                 errors=_NO_SSF),
        Endpoint("POST", streams, "Create a stream (the app is its receiver)", tag, "app",
                 ssf.StreamIn, ok={201: Obj},
                 errors=_merge(_NO_SSF, {400: ("stream.unsafe_endpoint",)})),
        Endpoint("GET", streams, "Read a stream, or all of the app's (a list)", tag, "app",
                 ok={200: Obj | list[Obj]}, query=("stream_id",), errors=_STREAM),
        Endpoint("PATCH", streams, "Update a stream", tag, "app", ssf.StreamIn,
                 errors=_merge(_STREAM, {400: ("stream.unsafe_endpoint",),
                                         409: ("state.conflict",)})),
        Endpoint("PUT", streams, "Replace a stream", tag, "app", ssf.StreamIn,
                 errors=_merge(_STREAM, {400: ("stream.unsafe_endpoint",),
                                         409: ("state.conflict",)})),
        Endpoint("DELETE", streams, "Delete a stream", tag, "app", ok={204: None},
                 query=("stream_id",), errors=_STREAM),
        Endpoint("GET", "/ssf/status", "A stream's status", tag, "app", query=("stream_id",),
                 errors=_STREAM),
        Endpoint("POST", "/ssf/status", "Enable, pause or disable a stream", tag, "app",
                 ssf.StatusIn, errors=_STREAM),
        Endpoint("POST", "/ssf/subjects:add", "Add a subject to a stream", tag, "app",
                 ssf.SubjectIn, ok={200: None}, errors=_STREAM),
        Endpoint("POST", "/ssf/subjects:remove", "Remove a subject from a stream", tag, "app",
                 ssf.SubjectIn, ok={204: None}, errors=_STREAM),
        Endpoint("POST", "/ssf/verify", "Ask for a verification event", tag, "app",
                 ssf.VerifyIn, ok={204: None}, errors=_STREAM),
        Endpoint("POST", "/ssf/poll/{stream_id}", "Poll a stream (RFC 8936)", tag, "app", Obj,
                 errors=_STREAM, set_errors={400: ("invalid_request",)}),
        Endpoint("POST", "/ssf/receive/{transmitter}", "Push a SET from a configured "
                 "transmitter (RFC 8935; its push token, if it has one, as a bearer token)",
                 tag, None, body_media=("application/secevent+jwt",), ok={202: None},
                 errors={}, set_errors={
                     400: ("invalid_request", "invalid_key", "invalid_issuer", "invalid_audience"),
                     401: ("authentication_failed",), 404: ("invalid_request",),
                     409: ("invalid_request",), 503: ("temporarily_unavailable",)}),
    ]  # fmt: skip


def _forward_auth() -> list[Endpoint]:
    """Asked by a reverse proxy for every request (docs/proxy.md): any method (Envoy asks with
    the original one), 200 (go on, with the identity headers), 302 or, for nginx, 401 with
    `Location` (log in, step up, reroute), 403 and a page (refused)."""
    paths = {
        "/forward-auth/v1/{proxy}": "Forward auth for nginx, Traefik or Caddy",
        "/forward-auth/v1/envoy": "Forward auth for Envoy's ext_authz (the path asked about: /)",
        "/forward-auth/v1/envoy/{path:path}": "Forward auth for Envoy's ext_authz",
    }
    return [
        Endpoint(method, path, summary, "forward auth", "app", ok={200: None, 302: None},
                 errors={400: ("proxy.request",), 404: ("request.not_found",)})
        for path, summary in paths.items()
        for method in forward.METHODS
    ]  # fmt: skip


def _operations() -> list[Endpoint]:
    return [
        Endpoint("GET", "/metrics", "Prometheus metrics (with a metrics token: only for it, "
                 "as a bearer token)", "operations", None, ok={200: str},
                 media="text/plain", errors={401: ("auth.missing", "auth.invalid")},
                 guarded=False),
        Endpoint("GET", "/openapi.json", "This document", "operations", None, guarded=False),
        Endpoint("GET", "/healthz", "Health and active version (503: the store is away, "
                 "or this node's clock is off)", "operations", None, ok={200: Health},
                 errors={503: ("unavailable.store",)}, guarded=False),
    ]  # fmt: skip


ENDPOINTS: tuple[Endpoint, ...] = (
    *_access(),
    *_sessions(),
    *_approvals(),
    *_directory(),
    *_admin(),
    *_shared_signals(),
    *_forward_auth(),
    *_operations(),
)
