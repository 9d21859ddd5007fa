"""OpenID AuthZEN Authorization API 1.0: the wire model and its rules (no HTTP here).

https://openid.net/specs/authorization-api-1_0-final.html (source: github.com/openid/authzen
``api/authorization-api-1_0.md``) and the certification scenario
(``certification/authorization-api-1_0-scenario.md``):

- Subject, Resource (``type``, ``id`` required), Action (``name`` required), each with optional
  ``properties``; an optional free-form ``context``. Unknown members are ignored everywhere;
  a missing required member or a value of the wrong type is :class:`AuthZenError`
  ``request.invalid`` with its JSON path; a body that is not JSON is ``request.malformed``.
- Access Evaluations: top-level ``subject``/``action``/``resource``/``context`` are defaults,
  an item's own member replaces the default as a whole, except that a required sub-member the
  item leaves out (``type``/``id``, ``name``) falls back to the default's
  (:func:`merge_defaults`). ``options.evaluations_semantic`` is one of ``execute_all``
  (default), ``deny_on_first_deny`` and ``permit_on_first_permit``; a short-circuited response
  holds the items evaluated up to and including the one that stopped it. No ``evaluations``
  (or an empty array): the request is a single Access Evaluation and so is the response.
- Search (subject, resource, action) with opaque page tokens; PDP metadata.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from juncture.engine import Decision
from juncture.engine.decision import StepUp
from juncture.errors import RequestError
from juncture.service.ids import is_id
from juncture.service.observe import ReportedDevice

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
        return {k: v for k in _PARTS if (v := getattr(self, k)) is not None}

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


_PARTS = ("subject", "action", "resource", "context")
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


def _decode(body: bytes, kind: type[_T]) -> _T:
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
    return _decode(body, EvaluationRequest)


def decode_evaluations(body: bytes) -> EvaluationsRequest:
    """Decode an Access Evaluations request: top-level defaults, items, options.

    Whole-payload problems raise (a default or ``evaluations`` of the wrong type, an unknown
    ``evaluations_semantic``); a bad item does not: it is answered ``false`` by
    :func:`run_evaluations`. Without items the top level must be a complete evaluation.
    """
    request = _decode(body, EvaluationsRequest)
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
    return _decode(body, SubjectSearchRequest)


def decode_resource_search(body: bytes) -> ResourceSearchRequest:
    """Decode a Resource Search request (``subject``, ``action``, ``resource.type``)."""
    return _decode(body, ResourceSearchRequest)


def decode_action_search(body: bytes) -> ActionSearchRequest:
    """Decode an Action Search request (``subject``, ``resource``; an ``action`` is ignored)."""
    return _decode(body, ActionSearchRequest)


# -- batches --------------------------------------------------------------------------------
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
    for part in _PARTS:
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


def _failed(exc: AuthZenError) -> EvaluationResponse:
    error = {"status": 400, "code": exc.code, "path": exc.path, "message": str(exc)}
    return EvaluationResponse(decision=False, context={"error": error})


def run_evaluations(
    request: EvaluationsRequest, decide: Callable[[EvaluationRequest], EvaluationResponse]
) -> EvaluationsResponse:
    """Evaluate a batch in order under its ``evaluations_semantic``.

    - ``execute_all``: every item, in order.
    - ``deny_on_first_deny``: stops after the first ``false`` (a malformed item is ``false``);
      the response holds the items up to and including it.
    - ``permit_on_first_permit``: stops after the first ``true``, likewise.

    A malformed item is ``{"decision": false, "context": {"error": {...}}}`` and does not fail
    the batch. Without items, the top level is decided as a single evaluation and the response
    has that shape (``{"decision": ...}``).
    """
    defaults = request.defaults
    if not request.evaluations:
        single = decide(merge_defaults(defaults, {}))
        return EvaluationsResponse(decision=single.decision, context=single.context)
    semantic = request.semantic
    out: list[EvaluationResponse] = []
    for i, item in enumerate(request.evaluations):
        where = f"$.evaluations[{i}]"
        try:
            if not isinstance(item, dict):
                raise AuthZenError("an evaluation must be an object", path=where)
            response = decide(merge_defaults(defaults, item, path=where))
        except AuthZenError as exc:
            response = _failed(exc)
        out.append(response)
        if semantic == "deny_on_first_deny" and not response.decision:
            break
        if semantic == "permit_on_first_permit" and response.decision:
            break
    return EvaluationsResponse(evaluations=out)


# -- to and from Juncture -------------------------------------------------------------------
def session_id_of(request: EvaluationRequest) -> str | None:
    """The session a request names: ``context.session_id`` or ``subject.properties.session_id``.

    A request that names a session is bound to it or refused, never decided without it: a
    ``session_id`` that is not a well-formed session id (empty, a number, a list, an object,
    any other text) is ``request.invalid``, and so are two that differ. A well-formed id of no
    session of the app is the runtime's 404.

    Raises:
        AuthZenError: ``request.invalid`` with the path of the bad member.
    """
    named: str | None = None
    for source, path in (
        (request.context, "$.context.session_id"),
        (request.subject.properties, "$.subject.properties.session_id"),
    ):
        if source is None or "session_id" not in source:
            continue
        value = source["session_id"]
        if not is_id("s", value):
            raise AuthZenError("`session_id` is not a session id (`s_` and 32 hex digits)",
                               path=path)  # fmt: skip
        if named is not None and value != named:
            raise AuthZenError("two different `session_id`s name the session", path=path)
        named = value
    return named


def _ip(*values: Any) -> str | None:
    """The first reported IP of ``values`` (None: not reported), as given when a string.

    Any other value (a number, a list, an object) was reported too, and is no address: it
    becomes ``""``, which the observation refuses, so the IP is a missing fact. It is never
    taken as no report at all, which a remembered IP or the connection's address
    (``--connection-ip``) would fill.
    """
    for value in values:
        if value is not None:
            return value if isinstance(value, str) else ""
    return None


def _well_typed(value: Any, kind: type[msgspec.Struct]) -> dict[str, Any] | None:
    """``value`` without its nulls if it is a valid facts section of ``kind``, else None."""
    if not isinstance(value, dict):
        return None
    present = {k: v for k, v in value.items() if v is not None}
    try:
        msgspec.convert(present, kind, strict=True)
    except (msgspec.ValidationError, ValueError):
        return None
    return present or None


def to_facts(request: EvaluationRequest, *, app: str | None) -> dict[str, Any]:
    """A Juncture facts document (docs/facts.md) from an AuthZEN request.

    ``subject``, ``action`` and ``resource`` are copied (``properties`` default to ``{}``), the
    AuthZEN ``context`` is ``context``. The subject's ``type`` is kept as given: journeys govern
    ``user``, ``service`` and ``agent``; any other type selects no journey (deny ``no_journey``).
    Lifted when well-typed (otherwise they stay readable only under ``context``/properties):

    - ``network.ip`` from ``context.ip``, else ``subject.properties.ip_address`` (AuthZEN's
      common subject property), when not null: a value that is not a string parsing as an
      IP address is then a missing fact (never the remembered or the connection's address);
    - ``device`` from ``context.device`` when it is a valid reported device (``id``,
      ``platform``, ``user_agent``, ``managed``, ``compliant``, ``posture_at``); else
      ``device.id`` from ``subject.properties.device_id`` (string); ``device.user_agent``
      from ``context.user_agent`` when the device section has none.

    ``geo`` is never lifted: Juncture observes it from the IP (`context.geo` stays readable
    as ``context.geo``, what the caller said).
    """
    context = dict(request.context or {})
    context.pop("session_id", None)  # binds the session (session_id_of); not a condition's fact
    subject = request.subject
    subject_properties = subject.properties or {}
    facts: dict[str, Any] = {
        "subject": {"type": subject.type, "id": subject.id, "properties": subject_properties},
        "action": {"name": request.action.name, "properties": request.action.properties or {}},
        "resource": {
            "type": request.resource.type,
            "id": request.resource.id,
            "properties": request.resource.properties or {},
        },
        "context": context,
    }
    if app is not None:
        facts["app"] = app
    ip = _ip(context.get("ip"), subject_properties.get("ip_address"))
    if ip is not None:
        facts["network"] = {"ip": ip}
    device = _well_typed(context.get("device"), ReportedDevice)
    if device is None and isinstance(subject_properties.get("device_id"), str):
        device = {"id": subject_properties["device_id"]}
    agent = context.get("user_agent")
    if isinstance(agent, str) and (device is None or "user_agent" not in device):
        device = {**(device or {}), "user_agent": agent}
    if device is not None:
        facts["device"] = device
    return facts


def _quoted(text: str) -> str:
    """An RFC 9110 quoted-string: backslash-escape ``\\`` and ``"``; control characters dropped."""
    clean = "".join(c for c in text if c == "\t" or (" " <= c and c != "\x7f"))
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def www_authenticate(
    step_up: StepUp, description: str = "stronger or fresher authentication is required"
) -> str:
    """The RFC 9470 challenge for a step-up, as a ``WWW-Authenticate`` value.

    ``Bearer error="insufficient_user_authentication", error_description="...",
    acr_values="...", max_age="..."``; ``acr_values`` and ``max_age`` only when the step-up
    has them.
    """
    parts = [
        'Bearer error="insufficient_user_authentication"',
        f"error_description={_quoted(description)}",
    ]
    if step_up.acr_values:
        parts.append(f"acr_values={_quoted(step_up.acr_values)}")
    if step_up.within is not None:
        parts.append(f"max_age={_quoted(str(step_up.within))}")
    return ", ".join(parts)


def to_response(
    decision: Decision, *, challenge_id: str | None, www_authenticate: str | None
) -> EvaluationResponse:
    """The AuthZEN answer for a Juncture decision.

    ``decision`` is true only for ``allow``: a ``reroute`` lets the action proceed only
    elsewhere (its ``path``, with its ``scopes``), which a PEP reading only the boolean would
    miss, so it is false, and the PEP that knows reroutes reads them from ``context``
    (``outcome``, ``path``, ``scopes``, ``ttl``). ``context`` carries ``outcome``,
    ``reason``, ``id`` (the decision id), ``version``; ``missing`` (the facts a condition
    needed that were not observed) when there are any; ``scopes`` and ``ttl`` when granted;
    for ``reroute`` the ``path``; for ``step_up`` ``challenge_id``, ``methods``, ``acr_values``,
    ``amr_values`` (space-separated, as AuthZEN's step-up hint), ``max_age`` and
    ``www_authenticate`` (the RFC 9470 challenge; built here when not given). Absent values are
    left out.
    """
    context: dict[str, Any] = {"outcome": decision.outcome}
    if decision.reason is not None:
        context["reason"] = decision.reason
    if decision.id is not None:
        context["id"] = decision.id
    if decision.version:
        context["version"] = decision.version
    if decision.missing:  # facts a condition needed and nothing observed: why it failed closed
        context["missing"] = list(decision.missing)
    if decision.permitted:
        if decision.scopes:
            context["scopes"] = list(decision.scopes)
        if decision.ttl is not None:
            context["ttl"] = decision.ttl
        if decision.outcome == "reroute" and decision.path is not None:
            context["path"] = decision.path
    step_up = decision.step_up
    if decision.outcome == "step_up" and step_up is not None:
        if challenge_id is not None:
            context["challenge_id"] = challenge_id
        context["methods"] = list(step_up.methods)
        if step_up.acr_values:
            context["acr_values"] = step_up.acr_values
        if step_up.amr_values:
            context["amr_values"] = " ".join(step_up.amr_values)
        if step_up.within is not None:
            context["max_age"] = step_up.within
        context["www_authenticate"] = (
            www_authenticate if www_authenticate is not None else _challenge(step_up)
        )
    return EvaluationResponse(decision=decision.outcome == "allow", context=context)


_challenge = www_authenticate  # to_response's parameter shadows the function's name


def metadata(base_url: str) -> dict[str, Any]:
    """The PDP metadata (``/.well-known/authzen-configuration``) for a PDP at ``base_url``.

    ``policy_decision_point`` is ``base_url`` without a trailing ``/`` (a PEP compares it to the
    URL it used for discovery); every endpoint this module models is listed.
    """
    base = base_url.rstrip("/")
    document = Metadata(
        policy_decision_point=base,
        access_evaluation_endpoint=base + EVALUATION_PATH,
        access_evaluations_endpoint=base + EVALUATIONS_PATH,
        search_subject_endpoint=base + SEARCH_SUBJECT_PATH,
        search_resource_endpoint=base + SEARCH_RESOURCE_PATH,
        search_action_endpoint=base + SEARCH_ACTION_PATH,
    )
    out: dict[str, Any] = msgspec.to_builtins(document)
    return out


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
    request = _decode(body, _SEARCH_TYPES[kind])
    base = {
        part: msgspec.to_builtins(value)
        for part in _PARTS
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
