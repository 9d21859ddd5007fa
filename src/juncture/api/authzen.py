"""OpenID AuthZEN Authorization API 1.0: the wire model and its rules (no HTTP here), in
three modules: the model and its decoding (`authzen_model.py`), search (`authzen_search.py`)
and, here, batches and the mapping to and from Juncture's decisions. This module names them
all (`__all__`): callers import `authzen` alone.

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

from collections.abc import Callable
from typing import Any

import msgspec

from juncture.api.authzen_model import (
    EVALUATION_PATH,
    EVALUATIONS_PATH,
    INVALID,
    MALFORMED,
    MAX_PAGE,
    METADATA_PATH,
    SEARCH_ACTION_PATH,
    SEARCH_RESOURCE_PATH,
    SEARCH_SUBJECT_PATH,
    SEMANTICS,
    Action,
    ActionSearchRequest,
    AuthZenError,
    EvaluationRequest,
    EvaluationResponse,
    EvaluationsRequest,
    EvaluationsResponse,
    Metadata,
    Resource,
    ResourceSearchRequest,
    SearchResponse,
    Semantic,
    Subject,
    SubjectSearchRequest,
    decode_action_search,
    decode_evaluation,
    decode_evaluations,
    decode_resource_search,
    decode_subject_search,
    merge_defaults,
)
from juncture.api.authzen_search import (
    Catalog,
    SearchKind,
    SearchRequest,
    catalog,
    decode_search,
    run_search,
    search_actions,
    search_resources,
    search_subjects,
)
from juncture.engine import Decision
from juncture.engine.decision import StepUp
from juncture.service.ids import is_id
from juncture.service.observe import ReportedDevice

#: The AuthZEN API in one name: the model (`authzen_model`), search (`authzen_search`) and,
#: here, batches and the mapping to and from Juncture's decisions.
__all__ = [
    "EVALUATIONS_PATH", "EVALUATION_PATH", "INVALID", "MALFORMED", "MAX_PAGE", "METADATA_PATH",
    "SEARCH_ACTION_PATH", "SEARCH_RESOURCE_PATH", "SEARCH_SUBJECT_PATH", "SEMANTICS", "Action",
    "ActionSearchRequest", "AuthZenError", "Catalog", "EvaluationRequest", "EvaluationResponse",
    "EvaluationsRequest", "EvaluationsResponse", "Metadata", "Resource", "ResourceSearchRequest",
    "SearchKind", "SearchRequest", "SearchResponse", "Semantic", "Subject", "SubjectSearchRequest",
    "catalog", "decode_action_search", "decode_evaluation", "decode_evaluations",
    "decode_resource_search", "decode_search", "decode_subject_search", "merge_defaults",
    "metadata", "run_evaluations", "run_search", "search_actions", "search_resources",
    "search_subjects", "session_id_of", "to_facts", "to_response", "www_authenticate",
]  # fmt: skip


# -- batches --------------------------------------------------------------------------------
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
