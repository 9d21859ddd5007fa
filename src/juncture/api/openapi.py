"""The OpenAPI 3.1 document of every endpoint (served at `/openapi.json`)."""

from __future__ import annotations

from typing import Any

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_ERRORS = {
    "400": {
        "description": "bad input (`request.invalid`, ...; a body not sent as application/json: `request.content_type`)",
        "content": {"application/problem+json": {"schema": _PROBLEM}},
    },
    "401": {
        "description": "no valid key",
        "content": {"application/problem+json": {"schema": _PROBLEM}},
    },
    "403": {
        "description": "outside the key's rights",
        "content": {"application/problem+json": {"schema": _PROBLEM}},
    },
}


def _op(
    summary: str,
    tag: str,
    security: str,
    body: str | None = None,
    ok: str = "200",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "security": [{security: []}] if security else [],
        "responses": {
            ok: {
                "description": "success",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            **_ERRORS,
        },
    }
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}},
        }
    if extra:
        op.update(extra)
    return op


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}


def openapi_document(version: str) -> dict[str, Any]:
    entity = {
        "type": "object",
        "required": ["type", "id"],
        "properties": {
            "type": {"type": "string"},
            "id": {"type": "string"},
            "properties": {"type": "object"},
        },
    }
    schemas: dict[str, Any] = {
        "Transmitter": {
            "type": "object",
            "required": ["name", "issuer", "audience"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string"},
                "issuer": {"type": "string"},
                "audience": {"oneOf": [{"type": "string"}, {"type": "array"}]},
                "algorithms": {"type": "array", "items": {"type": "string"}},
                "jwks_file": {"type": "string"},
                "jwks_uri": {"type": "string"},
                "jwks": {"type": "object"},
                "push_token": {"type": "string"},
                "poll_url": {"type": "string"},
                "poll_authorization": {"type": "string"},
                "critical_subject_members": {"type": "array", "items": {"type": "string"}},
            },
        },
        "MoveClock": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "offset": {"type": "string", "description": "`+11m`, `-5m`: from the real clock"},
                "at": {"type": "string", "format": "date-time"},
            },
        },
        "Problem": {
            "type": "object",
            "required": ["type", "title", "status", "code"],
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "code": {"type": "string"},
                "detail": {"type": "string"},
            },
        },
        "Evaluation": {
            "type": "object",
            "required": ["subject", "action", "resource"],
            "properties": {
                "subject": entity,
                "resource": entity,
                "action": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}, "properties": {"type": "object"}},
                },
                "context": {"type": "object"},
            },
        },
        "Evaluations": {
            "type": "object",
            "properties": {
                "subject": entity,
                "resource": entity,
                "action": {"type": "object"},
                "context": {"type": "object"},
                "evaluations": {"type": "array", "items": {"type": "object"}},
                "options": {
                    "type": "object",
                    "properties": {
                        "evaluations_semantic": {
                            "enum": ["execute_all", "deny_on_first_deny", "permit_on_first_permit"]
                        }
                    },
                },
            },
        },
        "Search": {"type": "object"},
        "StartSession": {
            "type": "object",
            "description": "`subject` is required unless `credential.api_key` names it",
            "properties": {
                "subject": entity,
                "credential": {
                    "type": "object",
                    "description": "a service's or agent's credential Juncture checks: one of "
                    "`api_key`, `client_assertion` (a signed JWT); `method` names the journey's "
                    "method when it declares several of the kind",
                    "properties": {
                        "api_key": {"type": "string"},
                        "client_assertion": {"type": "string"},
                        "method": {"type": "string"},
                    },
                },
                "delegation": {
                    "type": "object",
                    "description": "an agent's: the live user session of this app it acts for",
                    "required": ["session_id"],
                    "properties": {"session_id": {"type": "string"}},
                },
                "task": {"$ref": "#/components/schemas/Task"},
                "context": {"type": "object"},
                "proofs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["method"],
                        "properties": {"method": {"type": "string"}},
                    },
                },
                "action": {"type": "string", "default": "login"},
            },
        },
        "Task": {
            "type": "object",
            "required": ["id", "purpose"],
            "description": "what an agent does now; give `expires_in` or `expires_at` (24h at most)",
            "properties": {
                "id": {"type": "string"},
                "purpose": {"type": "string"},
                "tools": {"type": "array", "items": {"type": "string"}},
                "expires_in": {"type": "string", "examples": ["1h"]},
                "expires_at": {"type": "string", "format": "date-time"},
                "details": {"type": "object"},
            },
        },
        "TaskChange": {
            "type": "object",
            "required": ["task"],
            "properties": {"task": {"$ref": "#/components/schemas/Task"}},
        },
        "Answer": {
            "type": "object",
            "required": ["session_id", "answer"],
            "properties": {
                "session_id": {"type": "string"},
                "answer": {"enum": ["approve", "reject"]},
                "reason": {"type": "string"},
            },
        },
        "NewKey": {
            "type": "object",
            "properties": {
                "label": {"type": "string"},
                "scopes": {"type": "array", "items": {"type": "string"}},
                "expires_in": {"type": "string", "examples": ["90d"]},
            },
        },
        "Rotate": {
            "type": "object",
            "properties": {"overlap": {"type": "string", "default": "24h"}},
        },
        "NewAssertionKeys": {
            "type": "object",
            "required": ["jwks"],
            "properties": {
                "jwks": {"type": "object", "description": "a JWK Set of public keys"},
                "label": {"type": "string"},
                "scopes": {"type": "array", "items": {"type": "string"}},
                "expires_in": {"type": "string"},
            },
        },
        "ContextUpdate": {
            "type": "object",
            "properties": {"context": {"type": "object"}, "signals": {"type": "object"}},
        },
        "EndSession": {"type": "object", "properties": {"revoke_reason": {"type": "string"}}},
        "Verify": {
            "type": "object",
            "required": ["method"],
            "properties": {
                "method": {"type": "string"},
                "proof": {
                    "description": "what Juncture verifies: a password or code (string), a "
                    "WebAuthn assertion (object), a token (string); absent: the app asserts "
                    "the method"
                },
            },
        },
        "Start": {
            "type": "object",
            "required": ["method"],
            "properties": {"method": {"type": "string"}},
        },
        "Subject": {
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {"type": "string"},
                "type": {"enum": ["user", "service", "agent"]},
                "attributes": {"type": "object"},
                "status": {"enum": ["active", "disabled"]},
                "owner": {"type": "string", "description": "`user:<id>` or `team:<name>`"},
                "description": {"type": "string"},
            },
        },
        "SubjectChange": {
            "type": "object",
            "properties": {
                "attributes": {"type": "object"},
                "status": {"enum": ["active", "disabled"]},
                "owner": {"type": "string"},
                "description": {"type": "string"},
            },
        },
        "Enroll": {
            "type": "object",
            "required": ["method"],
            "properties": {
                "method": {"type": "string"},
                "session_id": {"type": "string"},
                "journey": {"type": "string"},
                "label": {"type": "string"},
                "password": {"type": "string"},
                "account": {"type": "string"},
                "address": {"type": "string"},
                "user_name": {"type": "string"},
                "display_name": {"type": "string"},
            },
        },
        "Confirm": {
            "type": "object",
            "required": ["proof"],
            "properties": {
                "proof": {},
                "session_id": {"type": "string"},
                "journey": {"type": "string"},
            },
        },
        "UploadVersion": {
            "type": "object",
            "properties": {
                "files": {"type": "object", "additionalProperties": {"type": "string"}},
                "files_base64": {"type": "object", "additionalProperties": {"type": "string"}},
                "comment": {"type": "string"},
                "activate": {"type": "boolean"},
                "allow_removal": {"type": "boolean"},
            },
        },
        "Activate": {
            "type": "object",
            "properties": {"allow_removal": {"type": "boolean"}},
        },
        "NewApp": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "journeys": {"type": "array", "items": {"type": "string"}},
                "assertable_methods": {"type": "array", "items": {"type": "string"}},
            },
        },
        "RotateKey": {"type": "object", "properties": {"overlap_seconds": {"type": "integer"}}},
    }
    sid, cid, vid, aid, subj, auid = (
        _path_param(n)
        for n in (
            "session_id", "challenge_id", "version_id", "app_id", "subject_id",
            "authenticator_id",
        )
    )  # fmt: skip
    vid = {**vid, "description": "A version id, or any prefix of one no other version shares."}
    paths: dict[str, Any] = {
        "/.well-known/authzen-configuration": {
            "get": _op("AuthZEN discovery metadata", "access", "")
        },
        "/access/v1/evaluation": {
            "post": _op("Decide one request (AuthZEN)", "access", "app", "Evaluation")
        },
        "/access/v1/evaluations": {
            "post": _op("Decide a batch (AuthZEN)", "access", "app", "Evaluations")
        },
        "/access/v1/search/subject": {
            "post": _op("Subjects permitted (AuthZEN)", "access", "app", "Search")
        },
        "/access/v1/search/resource": {
            "post": _op("Resources permitted (AuthZEN)", "access", "app", "Search")
        },
        "/access/v1/search/action": {
            "post": _op("Actions permitted (AuthZEN)", "access", "app", "Search")
        },
        "/v1/sessions": {
            "post": _op(
                "Start a session and decide `login`", "sessions", "app", "StartSession", "201"
            )
        },
        "/v1/sessions/{session_id}": {
            "get": _op("Read a session", "sessions", "app", extra={"parameters": [sid]})
        },
        "/v1/sessions/{session_id}/end": {
            "post": _op(
                "End or revoke a session",
                "sessions",
                "app",
                "EndSession",
                extra={"parameters": [sid]},
            )
        },
        "/v1/sessions/{session_id}/signals": {
            "post": _op(
                "Update context and signals; re-run the guard",
                "sessions",
                "app",
                "ContextUpdate",
                extra={"parameters": [sid]},
            )
        },
        "/v1/sessions/{session_id}/task": {
            "post": _op(
                "Give an agent session its task (the next decisions follow it)",
                "sessions",
                "app",
                "TaskChange",
                extra={"parameters": [sid]},
            )
        },
        "/v1/approvals": {
            "get": _op(
                "The approvals asked of the user of a session (pending and live by default)",
                "approvals",
                "app",
                extra={"parameters": [_query("session_id"), _query("status")]},
            )
        },
        "/v1/approvals/{approval_id}": {
            "get": _op(
                "One approval asked of the user of a session",
                "approvals",
                "app",
                extra={"parameters": [_path_param("approval_id"), _query("session_id")]},
            ),
            "post": _op(
                "Approve (the `approval.approve` checkpoint) or reject from the user's session",
                "approvals",
                "app",
                "Answer",
                extra={"parameters": [_path_param("approval_id")]},
            ),
        },
        "/v1/challenges/{challenge_id}/verify": {
            "post": _op(
                "Verify a step-up challenge",
                "sessions",
                "app",
                "Verify",
                extra={"parameters": [cid]},
            )
        },
        "/v1/challenges/{challenge_id}/start": {
            "post": _op(
                "Start a method's ceremony for a challenge (WebAuthn options, an email code)",
                "sessions",
                "app",
                "Start",
                extra={"parameters": [cid]},
            )
        },
        "/v1/subjects/{subject_id}/authenticators": {
            "get": _op(
                "List a subject's authenticators (with a session of the subject)",
                "directory",
                "app",
                extra={"parameters": [subj, _query("session_id")]},
            ),
            "post": _op(
                "Enroll an authenticator (the `authenticator.enroll` checkpoint decides)",
                "directory",
                "app",
                "Enroll",
                "201",
                extra={"parameters": [subj]},
            ),
        },
        "/v1/subjects/{subject_id}/authenticators/{authenticator_id}": {
            "delete": _op(
                "Remove an authenticator (the `authenticator.remove` checkpoint decides)",
                "directory",
                "app",
                extra={"parameters": [subj, auid, _query("session_id")]},
            )
        },
        "/v1/subjects/{subject_id}/authenticators/{authenticator_id}/confirm": {
            "post": _op(
                "Confirm a new authenticator with its first verification",
                "directory",
                "app",
                "Confirm",
                extra={"parameters": [subj, auid]},
            )
        },
        "/admin/v1/subjects": {
            "post": _op("Create a subject", "directory", "admin", "Subject", "201"),
            "get": _op(
                "List subjects",
                "directory",
                "admin",
                extra={"parameters": [_query(n) for n in ("type", "status", "limit", "after")]},
            ),
        },
        "/admin/v1/subjects/{subject_id}": {
            "get": _op(
                "A subject and its authenticators",
                "directory",
                "admin",
                extra={"parameters": [subj, _query("type")]},
            ),
            "patch": _op(
                "Change a subject (disabling revokes its sessions)",
                "directory",
                "admin",
                "SubjectChange",
                extra={"parameters": [subj, _query("type")]},
            ),
        },
        "/admin/v1/subjects/{subject_id}/authenticators": {
            "post": _op(
                "Enroll for a subject (no checkpoint: an administrator's act)",
                "directory",
                "admin",
                "Enroll",
                "201",
                extra={"parameters": [subj]},
            ),
        },
        "/admin/v1/subjects/{subject_id}/keys": {
            "post": _op(
                "Issue an API key to a service or an agent (`?type=`); the key is shown once",
                "directory",
                "admin",
                "NewKey",
                "201",
                extra={"parameters": [subj, _query("type")]},
            ),
        },
        "/admin/v1/subjects/{subject_id}/keys/{authenticator_id}/rotate": {
            "post": _op(
                "Rotate an API key: a new one, the old one working on for the overlap",
                "directory",
                "admin",
                "Rotate",
                "201",
                extra={"parameters": [subj, auid, _query("type")]},
            ),
        },
        "/admin/v1/subjects/{subject_id}/assertion-keys": {
            "post": _op(
                "Register the public keys a service signs its client assertions with",
                "directory",
                "admin",
                "NewAssertionKeys",
                "201",
                extra={"parameters": [subj, _query("type")]},
            ),
        },
        "/admin/v1/subjects/{subject_id}/authenticators/{authenticator_id}": {
            "delete": _op(
                "Remove an authenticator", "directory", "admin", extra={"parameters": [subj, auid]}
            ),
        },
        "/admin/v1/subjects/{subject_id}/authenticators/{authenticator_id}/confirm": {
            "post": _op(
                "Confirm an authenticator",
                "directory",
                "admin",
                "Confirm",
                extra={"parameters": [subj, auid]},
            ),
        },
        "/.well-known/ssf-configuration": {
            "get": _op("Shared Signals transmitter metadata", "shared signals", "")
        },
        "/ssf/jwks.json": {
            "get": _op("The keys Juncture signs its events with", "shared signals", "")
        },
        "/ssf/streams": {
            "post": _op(
                "Create a stream (the app is its receiver)", "shared signals", "app", ok="201"
            ),
            "get": _op(
                "Read a stream, or all of the app's",
                "shared signals",
                "app",
                extra={"parameters": [_query("stream_id")]},
            ),
            "patch": _op("Update a stream", "shared signals", "app"),
            "put": _op("Replace a stream", "shared signals", "app"),
            "delete": _op(
                "Delete a stream",
                "shared signals",
                "app",
                ok="204",
                extra={"parameters": [_query("stream_id")]},
            ),
        },
        "/ssf/status": {
            "get": _op(
                "A stream's status",
                "shared signals",
                "app",
                extra={"parameters": [_query("stream_id")]},
            ),
            "post": _op("Enable, pause or disable a stream", "shared signals", "app"),
        },
        "/ssf/subjects:add": {"post": _op("Add a subject to a stream", "shared signals", "app")},
        "/ssf/subjects:remove": {
            "post": _op("Remove a subject from a stream", "shared signals", "app", ok="204")
        },
        "/ssf/verify": {
            "post": _op("Ask for a verification event", "shared signals", "app", ok="204")
        },
        "/ssf/poll/{stream_id}": {
            "post": _op(
                "Poll a stream (RFC 8936)",
                "shared signals",
                "app",
                extra={"parameters": [_path_param("stream_id")]},
            )
        },
        "/ssf/receive/{transmitter}": {
            "post": _op(
                "Push a SET from a configured transmitter (RFC 8935)",
                "shared signals",
                "",
                ok="202",
                extra={"parameters": [_path_param("transmitter")]},
            )
        },
        "/admin/v1/identities": {
            "get": _op(
                "The inventory of services and agents: owner, credentials, sessions, live "
                "grants, flags (`no_owner`, `unused`, `key_too_old`, `grants_outlive_task`)",
                "admin",
                "admin",
                extra={"parameters": [_query(n) for n in ("type", "flag", "limit", "after")]},
            ),
        },
        "/admin/v1/identities/{subject_type}/{subject_id}": {
            "get": _op(
                "One service or agent of the inventory",
                "admin",
                "admin",
                extra={"parameters": [_path_param("subject_type"), subj]},
            ),
        },
        "/admin/v1/transmitters": {
            "get": _op("Trusted Shared Signals transmitters (no secret shown)", "admin", "admin"),
            "post": _op(
                "Trust a transmitter (written to the transmitters file)",
                "admin",
                "admin",
                "Transmitter",
                "201",
            ),
        },
        "/admin/v1/transmitters/{name}": {
            "delete": _op(
                "Stop trusting a transmitter",
                "admin",
                "admin",
                ok="204",
                extra={"parameters": [_path_param("name")]},
            ),
        },
        "/admin/v1/clock": {
            "get": _op("Development mode: the test clock (404 without --dev)", "admin", "admin"),
            "post": _op(
                "Development mode: move decision time (an offset, or a moment)",
                "admin",
                "admin",
                "MoveClock",
            ),
            "delete": _op("Development mode: back to the real clock", "admin", "admin"),
        },
        "/admin/v1/sweeps": {
            "post": _op(
                "Start a sweep: re-check sessions with standing outcomes",
                "admin",
                "admin",
                ok="202",
            ),
            "get": _op(
                "List sweeps (newest first)",
                "admin",
                "admin",
                extra={"parameters": [_query("status")]},
            ),
        },
        "/admin/v1/sweeps/{sweep_id}": {
            "get": _op(
                "A sweep's progress",
                "admin",
                "admin",
                extra={"parameters": [_path_param("sweep_id")]},
            ),
        },
        "/admin/v1/versions": {
            "post": _op("Upload a bundle as a version", "admin", "admin", "UploadVersion", "201"),
            "get": _op("List versions", "admin", "admin"),
        },
        "/admin/v1/versions/{version_id}": {
            "get": _op("Show a version", "admin", "admin", extra={"parameters": [vid]})
        },
        "/admin/v1/versions/{version_id}/activate": {
            "post": _op(
                "Publish (or roll back to) a version",
                "admin",
                "admin",
                extra={
                    "parameters": [vid],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Activate"}
                            }
                        },
                    },
                },
            )
        },
        "/admin/v1/versions/{version_id}/diff": {
            "get": _op(
                "Diff against another version",
                "admin",
                "admin",
                extra={
                    "parameters": [
                        vid,
                        {
                            "name": "against",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ]
                },
            )
        },
        "/admin/v1/apps": {
            "post": _op(
                "Register an app (its key is shown once)", "admin", "admin", "NewApp", "201"
            ),
            "get": _op("List apps", "admin", "admin"),
        },
        "/admin/v1/apps/{app_id}/keys": {
            "post": _op(
                "Rotate an app's key with overlap",
                "admin",
                "admin",
                "RotateKey",
                "201",
                extra={"parameters": [aid]},
            )
        },
        "/admin/v1/decisions": {
            "get": _op(
                "Query the decision log",
                "admin",
                "admin",
                extra={
                    "parameters": [
                        {"name": n, "in": "query", "schema": {"type": "string"}}
                        for n in (
                            "app",
                            "subject_id",
                            "session_id",
                            "action",
                            "outcome",
                            "since",
                            "until",
                            "limit",
                            "before",
                        )
                    ]
                },
            )
        },
        "/metrics": {"get": _op("Prometheus metrics", "operations", "")},
        "/healthz": {"get": _op("Health and active version", "operations", "")},
        "/openapi.json": {"get": _op("This document", "operations", "")},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Juncture",
            "version": version,
            "description": "Journey-time decisions for identity and access.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "app": {"type": "http", "scheme": "bearer", "description": "an app's API key"},
                "admin": {"type": "http", "scheme": "bearer", "description": "an admin key"},
            },
        },
    }
