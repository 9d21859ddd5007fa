"""OpenID AuthZEN Authorization API 1.0: the information model and its decoding (no HTTP).

The wire structs (requests and responses of evaluation, evaluations, search, metadata), the
paths, and the strict decoding of request bodies: a missing required member or a value of
the wrong type is :class:`AuthZenError` ``request.invalid`` with its JSON path; a body that is
not JSON is ``request.malformed``. The rules of batches and the mapping to and from Juncture
are in `authzen.py`, search in `authzen_search.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from juncture.errors import RequestError

Semantic = Literal["execute_all", "deny_on_first_deny", "permit_on_first_permit"]
SEMANTICS: tuple[str, ...] = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")

#: Error codes this module raises (the caller maps them to HTTP 400).
INVALID = "request.invalid"
MALFORMED = "request.malformed"

#: The most results one search page holds, whatever ``page.limit`` asks for.
MAX_PAGE = 1000

EVALUATION_PATH = "/access/v1/evaluation"
EVALUATIONS_PATH = "/access/v1/evaluations"
SEARCH_SUBJECT_PATH = "/access/v1/search/subject"
SEARCH_RESOURCE_PATH = "/access/v1/search/resource"
SEARCH_ACTION_PATH = "/access/v1/search/action"
METADATA_PATH = "/.well-known/authzen-configuration"


class AuthZenError(RequestError):
    """A request AuthZEN says is malformed: a stable ``code`` and the JSON ``path`` (a member
    of the problem answered, 400)."""

    def __init__(self, message: str, *, code: str = INVALID, path: str = "$") -> None:
        super().__init__(message, code=code, extra={"path": path})
        self.path = path


# -- the information model -------------------------------------------------------------------
class _Wire(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Lenient base: unknown members are ignored (AuthZEN forward compatibility)."""


class Subject(_Wire, frozen=True):
    type: str
    id: str
    properties: dict[str, Any] | None = None


class Resource(_Wire, frozen=True):
    type: str
    id: str
    properties: dict[str, Any] | None = None


class Action(_Wire, frozen=True):
    name: str
    properties: dict[str, Any] | None = None


class EvaluationRequest(_Wire, frozen=True):
    subject: Subject
    action: Action
    resource: Resource
    context: dict[str, Any] | None = None


class EvaluationResponse(_Wire, frozen=True):
    decision: bool
    context: dict[str, Any] | None = None


class Options(_Wire, frozen=True):
    evaluations_semantic: str = "execute_all"


class EvaluationsRequest(_Wire, frozen=True):
    """The batch as sent: the top-level members are defaults (partial entities allowed)."""

    subject: dict[str, Any] | None = None
    action: dict[str, Any] | None = None
    resource: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    evaluations: list[Any] | None = None
    options: Options = Options()

    @property
    def defaults(self) -> dict[str, Any]:
        """The top-level members given, by name."""
        return {k: v for k in PARTS if (v := getattr(self, k)) is not None}

    @property
    def semantic(self) -> Semantic:
        return self.options.evaluations_semantic  # type: ignore[return-value]


class EvaluationsResponse(_Wire, frozen=True):
    """``{"evaluations": [...]}``; for a request without items, the single-evaluation shape."""

    evaluations: list[EvaluationResponse] | None = None
    decision: bool | None = None
    context: dict[str, Any] | None = None


class PageRequest(_Wire, frozen=True):
    token: str | None = None
    limit: Annotated[int, msgspec.Meta(ge=0)] | None = None
    properties: dict[str, Any] | None = None


class TypeOnly(_Wire, frozen=True):
    """The entity searched for: its ``type``; an ``id``, if sent, is ignored."""

    type: str
    properties: dict[str, Any] | None = None


class SubjectSearchRequest(_Wire, frozen=True):
    subject: TypeOnly
    action: Action
    resource: Resource
    context: dict[str, Any] | None = None
    page: PageRequest | None = None


class ResourceSearchRequest(_Wire, frozen=True):
    subject: Subject
    action: Action
    resource: TypeOnly
    context: dict[str, Any] | None = None
    page: PageRequest | None = None


class ActionSearchRequest(_Wire, frozen=True):
    subject: Subject
    resource: Resource
    context: dict[str, Any] | None = None
    page: PageRequest | None = None


class EntityRef(_Wire, frozen=True):
    type: str
    id: str


class ActionRef(_Wire, frozen=True):
    name: str


class SearchResponse(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """``page`` first (RECOMMENDED), then ``results``; ``page.next_token`` is always present."""

    page: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    results: list[Any]  # REQUIRED, even when empty: never omitted


class Metadata(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    policy_decision_point: str
    access_evaluation_endpoint: str
    access_evaluations_endpoint: str | None = None
    search_subject_endpoint: str | None = None
    search_resource_endpoint: str | None = None
    search_action_endpoint: str | None = None
    capabilities: list[str] | None = None


PARTS = ("subject", "action", "resource", "context")
_REQUIRED = {"subject": ("type", "id"), "resource": ("type", "id"), "action": ("name",)}

# -- decoding -------------------------------------------------------------------------------
_T = TypeVar("_T")
_MISSING = re.compile(r"^Object missing required field `([^`]+)`(?: - at `(\$[^`]*)`)?$")
_AT = re.compile(r" - at `(\$[^`]*)`$")


def _path(message: str, prefix: str = "$") -> str:
    """The JSON path of a msgspec validation message, under ``prefix``."""
    missing = _MISSING.match(message)
    if missing is not None:
        where = (missing.group(2) or "$") + "." + missing.group(1)
    else:
        at = _AT.search(message)
        where = at.group(1) if at else "$"
    return prefix + where[1:]


def _invalid(exc: msgspec.ValidationError, prefix: str = "$") -> AuthZenError:
    text = str(exc)
    path = _path(text, prefix)
    return AuthZenError(f"invalid request: {_AT.sub('', text)} at `{path}`", path=path)


def decode_body(body: bytes, kind: type[_T]) -> _T:
    if not body.strip():
        raise AuthZenError("a JSON body is required", code=MALFORMED)
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise _invalid(exc) from None
    except msgspec.DecodeError as exc:
        raise AuthZenError(f"the body is not valid JSON: {exc}", code=MALFORMED) from None


def _convert(value: Any, kind: type[_T], path: str) -> _T:
    try:
        return msgspec.convert(value, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise _invalid(exc, path) from None


def decode_evaluation(body: bytes) -> EvaluationRequest:
    """Decode an Access Evaluation request. Unknown members are ignored.

    Raises:
        AuthZenError: ``request.malformed`` (not JSON, empty) or ``request.invalid`` (a
            required member missing, a wrong type), with the JSON path.
    """
    return decode_body(body, EvaluationRequest)


def decode_evaluations(body: bytes) -> EvaluationsRequest:
    """Decode an Access Evaluations request: top-level defaults, items, options.

    Whole-payload problems raise (a default or ``evaluations`` of the wrong type, an unknown
    ``evaluations_semantic``); a bad item does not: it is answered ``false`` by
    :func:`run_evaluations`. Without items the top level must be a complete evaluation.
    """
    request = decode_body(body, EvaluationsRequest)
    if request.options.evaluations_semantic not in SEMANTICS:
        raise AuthZenError(
            f"`evaluations_semantic` must be one of {', '.join(SEMANTICS)}",
            path="$.options.evaluations_semantic",
        )
    if not request.evaluations:
        merge_defaults(request.defaults, {})  # the single-evaluation form: validate it now
    return request


def decode_subject_search(body: bytes) -> SubjectSearchRequest:
    """Decode a Subject Search request (``subject.type``, ``action``, ``resource``)."""
    return decode_body(body, SubjectSearchRequest)


def decode_resource_search(body: bytes) -> ResourceSearchRequest:
    """Decode a Resource Search request (``subject``, ``action``, ``resource.type``)."""
    return decode_body(body, ResourceSearchRequest)


def decode_action_search(body: bytes) -> ActionSearchRequest:
    """Decode an Action Search request (``subject``, ``resource``; an ``action`` is ignored)."""
    return decode_body(body, ActionSearchRequest)


# -- the defaults of a batch ------------------------------------------------------------------
def merge_defaults(
    defaults: Mapping[str, Any], item: Mapping[str, Any], *, path: str = "$"
) -> EvaluationRequest:
    """One item of a batch with the request's defaults applied.

    An item's ``subject``, ``action``, ``resource`` or ``context`` replaces the default as a
    whole (its ``properties`` are not merged with the default's); a required sub-member it
    leaves out (``type``/``id`` of an entity, ``name`` of the action) is taken from the default.
    ``null`` counts as absent.

    Raises:
        AuthZenError: ``request.invalid`` when the result is not a valid evaluation (``path``
            is the item's path: ``$.evaluations[1].resource``).
    """
    merged: dict[str, Any] = {}
    for part in PARTS:
        own = item.get(part)
        default = defaults.get(part)
        if own is None:
            value = default
        elif isinstance(own, dict) and isinstance(default, dict) and part in _REQUIRED:
            value = dict(own)
            for key in _REQUIRED[part]:
                if value.get(key) is None and default.get(key) is not None:
                    value[key] = default[key]
        else:
            value = own
        if value is not None:
            merged[part] = value
    return _convert(merged, EvaluationRequest, path)
