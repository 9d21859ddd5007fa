"""How a route is described, and the OpenAPI 3.1 document built from the descriptions.

Three sources, nothing repeated:

- the route table (what `create_app` serves: every path and method),
- one `Endpoint` per route (`api/endpoints.py`): summary, who may call it, the struct its JSON
  body decodes to, the structs of its answers by status, the error codes it may answer,
- the msgspec structs themselves, whose JSON Schemas `msgspec.json.schema_components` derives
  (the same structs decode the requests, so the document cannot drift from what is accepted).

`api/openapi.py` builds it once, when the app is created: a route without a description, or
a description of no route, stops start-up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from juncture.api.auth import ADMIN_SCOPES
from juncture.errors import CODES, JunctureError

#: The paths refused while this node's clock is off the store's (`api.app.CLOCKED`; a test
#: holds the two equal).
CLOCKED = ("/access/", "/v1/", "/forward-auth/")
_REF = "#/components/schemas/{name}"
_METHODS = ("get", "put", "post", "delete", "patch")
#: Bad input of any JSON body (`api.problems.json_body` and `convert`).
_BODY_ERRORS: dict[int, tuple[str, ...]] = {
    400: ("request.malformed", "request.invalid", "request.too_deep", "request.content_type"),
    413: ("request.too_large",),
}


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """An error answer (RFC 9457): a stable, registered `code` (docs/errors.md), never a
    secret; some codes add members (`problems`, `removals`, `path`, ...)."""

    type: str
    title: str
    status: int
    code: str
    detail: str


class SetError(msgspec.Struct, frozen=True, kw_only=True):
    """An error answer of RFC 8935 (push) and RFC 8936 (poll)."""

    err: str
    description: str


@dataclass(frozen=True)
class Endpoint:
    """What a route takes and answers: one per method and path."""

    method: str
    path: str
    summary: str
    tag: str
    #: Who may call it: `"app"` (an app's key), `"admin:<scope>"` (an admin key with the
    #: scope), None (no key).
    auth: str | None
    #: The struct the JSON body decodes to (None: no JSON body).
    request: Any = None
    body_required: bool = True
    #: Other media types the body may have (taken as bytes, e.g. a tar of a bundle).
    body_media: tuple[str, ...] = ()
    #: Answers by status: the type of the body (a struct, `dict[str, Any]`, ...; None: none).
    ok: Mapping[int, Any] = field(default_factory=lambda: {200: dict[str, Any]})
    media: str = "application/json"
    #: Error codes beyond those that follow from `auth` and `request`, by status.
    errors: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    #: Errors answered in the format of RFC 8935/8936 (`SetError`), by status: their `err`s.
    set_errors: Mapping[int, tuple[str, ...]] = field(default_factory=dict)
    #: Optional query parameters (strings), then the required ones.
    query: tuple[str, ...] = ()
    required_query: tuple[str, ...] = ()
    #: False for the few routes served outside the error guard (no 500/503 documented there).
    guarded: bool = True

    def all_errors(self) -> dict[int, tuple[str, ...]]:
        """Every error code the route may answer, by status."""
        out: dict[int, list[str]] = {}

        def add(status: int, codes: Iterable[str]) -> None:
            out.setdefault(status, [])
            out[status] += [c for c in codes if c not in out[status]]

        if self.auth is not None:
            add(401, ("auth.missing", "auth.invalid"))
        if self.auth is not None and self.auth.startswith("admin:"):
            add(403, ("auth.forbidden",))
        if self.request is not None:
            for status, codes in _BODY_ERRORS.items():
                add(status, codes)
        elif self.body_media:  # bytes: only their size and their end are checked here
            add(400, ("request.malformed",))
            add(413, ("request.too_large",))
        for status, codes in self.errors.items():
            add(status, codes)
        if self.guarded:
            add(500, ("internal.error",))
            add(503, ("unavailable.store", "unavailable.corrupt"))
            if self.path.startswith(CLOCKED):
                add(503, ("unavailable.clock_skew",))
        return {status: tuple(out[status]) for status in sorted(out)}


class UndocumentedRoute(JunctureError):
    """A route without its `Endpoint`, or an `Endpoint` of no route."""


def _security(auth: str | None) -> list[dict[str, list[str]]]:
    if auth is None:
        return []
    if auth == "app":
        return [{"app": []}]
    kind, _, scope = auth.partition(":")
    if kind != "admin" or scope not in ADMIN_SCOPES:
        raise ValueError(f"unknown auth {auth!r}")
    return [{"admin": [scope]}]  # OpenAPI 3.1: the roles a non-OAuth scheme requires


def _parameters(endpoint: Endpoint, described: Mapping[str, str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in re.findall(r"{(\w+)}", endpoint.path):
        param = {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        if name in described:
            param["description"] = described[name]
        out.append(param)
    for names, required in ((endpoint.query, False), (endpoint.required_query, True)):
        out += [
            {"name": n, "in": "query", "required": required, "schema": {"type": "string"}}
            for n in names
        ]
    return out


def _operation(
    endpoint: Endpoint, schema: Mapping[Any, Any], params: Mapping[str, str]
) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, kind in sorted(endpoint.ok.items()):
        answer: dict[str, Any] = {"description": "success"}
        if kind is not None:
            answer["content"] = {endpoint.media: {"schema": schema[kind]}}
        responses[str(status)] = answer
    problems = endpoint.all_errors()
    for status in sorted({*problems, *endpoint.set_errors}):
        codes, errs = problems.get(status, ()), endpoint.set_errors.get(status, ())
        unknown = [c for c in codes if c not in CODES]
        if unknown:
            raise ValueError(f"{endpoint.method} {endpoint.path}: unregistered {unknown}")
        media: dict[str, Any] = {}
        if codes:
            media["application/problem+json"] = {"schema": schema[Problem]}
        if errs:
            media["application/json"] = {"schema": schema[SetError]}
        described = [f"`{c}`" for c in codes] + [f"`{e}` (RFC 8935 `err`)" for e in errs]
        responses[str(status)] = {"description": ", ".join(described), "content": media}
    op: dict[str, Any] = {
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
        "security": _security(endpoint.auth),
        "responses": responses,
    }
    parameters = _parameters(endpoint, params)
    if parameters:
        op["parameters"] = parameters
    if endpoint.request is not None or endpoint.body_media:
        content: dict[str, Any] = {}
        if endpoint.request is not None:
            content["application/json"] = {"schema": schema[endpoint.request]}
        for kind in endpoint.body_media:
            content[kind] = {"schema": {"type": "string", "contentMediaType": kind}}
        op["requestBody"] = {"required": endpoint.body_required, "content": content}
    return op


def build(
    version: str,
    endpoints: Iterable[Endpoint],
    routes: Iterable[tuple[str, Iterable[str]]] | None = None,
    described: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The document of ``endpoints``; with ``routes`` (path, methods), checked against them
    both ways and in their order. Raises UndocumentedRoute."""
    by_key = {(e.method.lower(), e.path): e for e in endpoints}
    if routes is not None:
        keys = [
            (m.lower(), path) for path, methods in routes for m in methods if m.upper() != "HEAD"
        ]
        missing = [k for k in keys if k not in by_key]
        extra = sorted(set(by_key) - set(keys))
        if missing or extra:
            raise UndocumentedRoute(f"routes without a description: {missing}; "
                                    f"descriptions of no route: {extra}")  # fmt: skip
        ordered = [by_key[k] for k in keys]
    else:
        ordered = list(by_key.values())
    kinds = list(
        dict.fromkeys(t for e in ordered for t in (e.request, *e.ok.values()) if t is not None)
    )
    kinds += [Problem, SetError]
    schemas, components = msgspec.json.schema_components(kinds, ref_template=_REF)
    schema = dict(zip(kinds, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in ordered:
        op = _operation(endpoint, schema, described or {})
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Juncture",
            "version": version,
            "description": "Journey-time decisions for identity and access.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "app": {"type": "http", "scheme": "bearer", "description": "an app's API key"},
                "admin": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an admin key; an operation names the scope it needs",
                },
            },
        },
    }
