"""OpenID AuthZEN Authorization API 1.0: Subject, Resource and Action Search (no HTTP).

The candidates (the active bundle's declared entities, plus what the caller adds), each
decided as an evaluation, and the results paged with opaque tokens bound to the request.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from juncture.api.authzen_model import (
    MAX_PAGE,
    PARTS,
    Action,
    ActionRef,
    ActionSearchRequest,
    AuthZenError,
    EntityRef,
    EvaluationRequest,
    EvaluationResponse,
    PageRequest,
    Resource,
    ResourceSearchRequest,
    SearchResponse,
    Subject,
    SubjectSearchRequest,
    decode_body,
)

_T = TypeVar("_T")


# -- search ---------------------------------------------------------------------------------
class Catalog(msgspec.Struct, frozen=True, kw_only=True):
    """The entities a search may return."""

    subjects: tuple[Subject, ...] = ()
    resources: tuple[Resource, ...] = ()
    actions: tuple[Action, ...] = ()


def catalog(data: Mapping[str, Any]) -> Catalog:
    """The search candidates a bundle declares in its data document ``data/entities``.

    ``entities`` holds three lists: ``subjects`` and ``resources`` of ``{type, id,
    properties?}``, ``actions`` of ``{name, properties?}``. Items not of that shape are skipped.
    """
    declared = data.get("entities")
    declared = declared if isinstance(declared, Mapping) else {}

    def items(key: str, kind: type[_T]) -> tuple[_T, ...]:
        listed = declared.get(key)
        out: list[_T] = []
        for item in listed if isinstance(listed, list) else ():
            try:
                out.append(msgspec.convert(item, kind, strict=True))
            except msgspec.ValidationError:
                continue
        return tuple(out)

    return Catalog(
        subjects=items("subjects", Subject),
        resources=items("resources", Resource),
        actions=items("actions", Action),
    )


def _fingerprint(request: msgspec.Struct) -> str:
    fields = {f: getattr(request, f) for f in request.__struct_fields__ if f != "page"}
    digest = hashlib.sha256(msgspec.json.encode(fields, order="sorted")).digest()
    return base64.urlsafe_b64encode(digest[:9]).decode()


def _token(offset: int, limit: int | None, fingerprint: str) -> str:
    raw = msgspec.json.encode({"o": offset, "l": limit, "f": fingerprint})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class _Token(msgspec.Struct, frozen=True):
    o: Annotated[int, msgspec.Meta(ge=0)]
    l: Annotated[int, msgspec.Meta(ge=0)] | None  # noqa: E741
    f: str


def _read_token(token: str, fingerprint: str) -> _Token:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        parsed = msgspec.json.decode(raw, type=_Token)
    except (ValueError, msgspec.DecodeError):
        raise AuthZenError(
            "`page.token` is not a token this PDP issued", path="$.page.token"
        ) from None
    if parsed.f != fingerprint:
        raise AuthZenError(
            "`page.token` belongs to a search with other parameters", path="$.page.token"
        )
    return parsed


_C = TypeVar("_C")


def _search(
    request: SubjectSearchRequest | ResourceSearchRequest | ActionSearchRequest,
    candidates: Sequence[_C],
    ask: Callable[[_C], EvaluationRequest],
    decide: Callable[[EvaluationRequest], EvaluationResponse],
) -> tuple[list[_C], dict[str, Any]]:
    fingerprint = _fingerprint(request)
    page = request.page or PageRequest()
    offset, limit = 0, page.limit
    if page.token:
        token = _read_token(page.token, fingerprint)
        offset = token.o
        limit = page.limit if page.limit is not None else token.l
    size = min(limit, MAX_PAGE) if limit else MAX_PAGE  # absent or 0: no limit but the cap
    found: list[_C] = []
    next_token = ""
    for index in range(offset, len(candidates)):
        candidate = candidates[index]
        try:
            permitted = decide(ask(candidate)).decision
        except AuthZenError:
            permitted = False
        if not permitted:
            continue
        if len(found) == size:  # one more exists: the next page starts here
            next_token = _token(index, limit, fingerprint)
            break
        found.append(candidate)
    return found, {"next_token": next_token, "count": len(found)}


def search_subjects(
    request: SubjectSearchRequest,
    candidates: Sequence[Subject],
    decide: Callable[[EvaluationRequest], EvaluationResponse],
) -> SearchResponse:
    """The candidates of the searched ``subject.type`` for which ``decide`` permits the action
    on the resource, in candidate order, one page at a time (``page.limit``, opaque
    ``page.token``; ``page.next_token`` is empty on the last page). An unknown type or id
    gives no results, never an error.

    Raises:
        AuthZenError: ``request.invalid`` at ``$.page.token`` for a token not issued for this
            same search.
    """
    wanted = [c for c in candidates if c.type == request.subject.type]

    def ask(candidate: Subject) -> EvaluationRequest:
        return EvaluationRequest(
            subject=candidate,
            action=request.action,
            resource=request.resource,
            context=request.context,
        )

    found, page = _search(request, wanted, ask, decide)
    return SearchResponse(page=page, results=[EntityRef(type=c.type, id=c.id) for c in found])


def search_resources(
    request: ResourceSearchRequest,
    candidates: Sequence[Resource],
    decide: Callable[[EvaluationRequest], EvaluationResponse],
) -> SearchResponse:
    """The candidates of the searched ``resource.type`` the subject may act on; paged as
    :func:`search_subjects`."""
    wanted = [c for c in candidates if c.type == request.resource.type]

    def ask(candidate: Resource) -> EvaluationRequest:
        return EvaluationRequest(
            subject=request.subject,
            action=request.action,
            resource=candidate,
            context=request.context,
        )

    found, page = _search(request, wanted, ask, decide)
    return SearchResponse(page=page, results=[EntityRef(type=c.type, id=c.id) for c in found])


def search_actions(
    request: ActionSearchRequest,
    candidates: Sequence[Action],
    decide: Callable[[EvaluationRequest], EvaluationResponse],
) -> SearchResponse:
    """The candidate actions the subject may take on the resource; paged as
    :func:`search_subjects`. Results carry the action ``name`` only."""

    def ask(candidate: Action) -> EvaluationRequest:
        return EvaluationRequest(
            subject=request.subject,
            action=candidate,
            resource=request.resource,
            context=request.context,
        )

    found, page = _search(request, list(candidates), ask, decide)
    return SearchResponse(page=page, results=[ActionRef(name=c.name) for c in found])


# -- one entry point for the three searches ---------------------------------------------------
SearchKind = Literal["subject", "resource", "action"]
_SEARCH_TYPES: dict[str, type[Any]] = {
    "subject": SubjectSearchRequest,
    "resource": ResourceSearchRequest,
    "action": ActionSearchRequest,
}


class SearchRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A decoded search of any kind: ``kind``, the typed ``request``, and ``base`` (its
    ``subject``, ``action``, ``resource``, ``context`` as plain mappings)."""

    kind: SearchKind
    request: SubjectSearchRequest | ResourceSearchRequest | ActionSearchRequest
    base: dict[str, Any]


def decode_search(kind: SearchKind, body: bytes) -> SearchRequest:
    """Decode a Subject, Resource or Action Search request (see the ``decode_*_search``)."""
    request = decode_body(body, _SEARCH_TYPES[kind])
    base = {
        part: msgspec.to_builtins(value)
        for part in PARTS
        if (value := getattr(request, part, None)) is not None
    }
    return SearchRequest(kind=kind, request=request, base=base)


def run_search(
    search: SearchRequest,
    candidates: Sequence[Mapping[str, Any]],
    decide: Callable[[EvaluationRequest], EvaluationResponse],
) -> SearchResponse:
    """Run a search over candidate entities given as mappings (``{type, id, properties?}``, or
    ``{name, properties?}`` for actions); candidates not of that shape are skipped."""
    request = search.request
    if isinstance(request, SubjectSearchRequest):
        return search_subjects(request, _shaped(candidates, Subject), decide)
    if isinstance(request, ResourceSearchRequest):
        return search_resources(request, _shaped(candidates, Resource), decide)
    return search_actions(request, _shaped(candidates, Action), decide)


def _shaped(candidates: Sequence[Mapping[str, Any]], kind: type[_T]) -> list[_T]:
    out: list[_T] = []
    for candidate in candidates:
        try:
            out.append(msgspec.convert(candidate, kind, strict=True))
        except msgspec.ValidationError:
            continue
    return out
