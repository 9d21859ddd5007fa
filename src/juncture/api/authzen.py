"""OpenID AuthZEN Authorization API 1.0: the wire model and its rules (no HTTP here).

https://openid.net/specs/authorization-api-1_0-final.html — §5 information model, §6 Access
Evaluation, §7 Access Evaluations (defaults, `evaluations_semantic`), §9 discovery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import msgspec

from juncture.engine import Decision

Semantic = Literal["execute_all", "deny_on_first_deny", "permit_on_first_permit"]


class AuthZenError(Exception):
    """A request AuthZEN says is malformed: a stable ``code`` and the JSON ``path``."""

    def __init__(self, message: str, *, code: str = "request.invalid", path: str = "$") -> None:
        super().__init__(message)
        self.code = code
        self.path = path


class Entity(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    type: str
    id: str
    properties: dict[str, Any] | None = None


class Action(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    name: str
    properties: dict[str, Any] | None = None


class EvaluationRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    subject: Entity
    action: Action
    resource: Entity
    context: dict[str, Any] | None = None


class EvaluationResponse(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    decision: bool
    context: dict[str, Any] | None = None


class EvaluationsRequest(msgspec.Struct, frozen=True, kw_only=True):
    defaults: dict[str, Any]
    evaluations: list[dict[str, Any]]
    semantic: Semantic = "execute_all"


class EvaluationsResponse(msgspec.Struct, frozen=True, kw_only=True):
    evaluations: list[EvaluationResponse]


_PARTS = ("subject", "action", "resource", "context")


def _object(data: bytes) -> dict[str, Any]:
    try:
        value = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise AuthZenError(f"the body is not valid JSON: {exc}", code="request.malformed") from None
    if not isinstance(value, dict):
        raise AuthZenError("the body must be a JSON object")
    return value


def _evaluation(value: dict[str, Any], path: str = "$") -> EvaluationRequest:
    for part in ("subject", "action", "resource"):
        if part not in value or value[part] is None:
            raise AuthZenError(f"`{part}` is required", path=f"{path}.{part}")
    known = {k: v for k, v in value.items() if k in _PARTS and v is not None}
    try:
        return msgspec.convert(known, EvaluationRequest)
    except msgspec.ValidationError as exc:
        text = str(exc)
        where = text.rsplit("- at `", 1)[-1].rstrip("`") if "- at `" in text else "$"
        raise AuthZenError(f"invalid request: {text}", path=path + where[1:]) from None


def decode_evaluation(data: bytes) -> EvaluationRequest:
    """Decode an Access Evaluation request (§6.1). Unknown members are ignored."""
    return _evaluation(_object(data))


def decode_evaluations(data: bytes) -> EvaluationsRequest:
    """Decode an Access Evaluations request (§7.1): top-level defaults, items, options."""
    value = _object(data)
    items = value.get("evaluations")
    if items is not None and not isinstance(items, list):
        raise AuthZenError("`evaluations` must be an array", path="$.evaluations")
    options = value.get("options") or {}
    if not isinstance(options, dict):
        raise AuthZenError("`options` must be an object", path="$.options")
    semantic = options.get("evaluations_semantic", "execute_all")
    if semantic not in ("execute_all", "deny_on_first_deny", "permit_on_first_permit"):
        raise AuthZenError(
            f"unknown evaluations_semantic `{semantic}`", path="$.options.evaluations_semantic"
        )
    defaults = {k: v for k, v in value.items() if k in _PARTS and v is not None}
    if not items:  # no items: exactly the single evaluation (§7.1)
        _evaluation(defaults)
        items = [{}]
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise AuthZenError("each evaluation must be an object", path=f"$.evaluations[{i}]")
    return EvaluationsRequest(defaults=defaults, evaluations=items, semantic=semantic)


def merge_defaults(defaults: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """An item's own `subject`, `action`, `resource`, `context` override the defaults."""
    merged = dict(defaults)
    merged.update({k: v for k, v in item.items() if k in _PARTS and v is not None})
    return merged


def _error_response(exc: AuthZenError) -> EvaluationResponse:
    return EvaluationResponse(
        decision=False,
        context={"error": {"status": 400, "code": exc.code, "path": exc.path, "message": str(exc)}},
    )


def run_evaluations(
    request: EvaluationsRequest, decide: Callable[[EvaluationRequest], EvaluationResponse]
) -> EvaluationsResponse:
    """Evaluate the items in order under the request's semantic (§7.1.2).

    An item that is malformed is `false` with the error in its `context` (it does not fail
    the batch). `deny_on_first_deny` stops after the first `false`; `permit_on_first_permit`
    after the first `true`; the response then holds the items evaluated so far.
    """
    out: list[EvaluationResponse] = []
    for i, item in enumerate(request.evaluations):
        try:
            response = decide(
                _evaluation(merge_defaults(request.defaults, item), f"$.evaluations[{i}]")
            )
        except AuthZenError as exc:
            response = _error_response(exc)
        out.append(response)
        if request.semantic == "deny_on_first_deny" and not response.decision:
            break
        if request.semantic == "permit_on_first_permit" and response.decision:
            break
    return EvaluationsResponse(evaluations=out)


def session_id_of(request: EvaluationRequest) -> str | None:
    """The session a request names: `context.session_id` or `subject.properties.session_id`."""
    for source in (request.context, request.subject.properties):
        value = (source or {}).get("session_id")
        if isinstance(value, str) and value:
            return value
    return None


def to_facts(request: EvaluationRequest, *, app: str | None) -> dict[str, Any]:
    """A Juncture facts document from an AuthZEN request.

    `context.ip` becomes `network.ip` (a string that is not an IP is a missing fact);
    everything else of `context` stays readable as `context.*`.
    """
    context = dict(request.context or {})
    context.pop("session_id", None)
    facts: dict[str, Any] = {
        "subject": {
            "type": request.subject.type,
            "id": request.subject.id,
            "properties": request.subject.properties or {},
        },
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
    if isinstance(context.get("ip"), str):
        facts["network"] = {"ip": context["ip"]}
    return facts


def to_response(
    decision: Decision, *, challenge_id: str | None, www_authenticate: str | None
) -> EvaluationResponse:
    """`decision` is true only for allow and reroute; `context` carries Juncture's answer."""
    context: dict[str, Any] = {
        "outcome": decision.outcome,
        "id": decision.id,
        "version": decision.version,
    }
    if decision.reason is not None:
        context["reason"] = decision.reason
        context["reason_admin"] = {
            "403" if decision.outcome != "step_up" else "401": decision.reason
        }
    if decision.scopes:
        context["scopes"] = list(decision.scopes)
    if decision.outcome == "reroute":
        context["path"] = decision.path
    step_up = decision.step_up
    if step_up is not None:
        context.update(
            {
                "methods": list(step_up.methods),
                "acr_values": step_up.acr_values,
                "amr_values": " ".join(step_up.amr_values),
            }
        )
        if step_up.within is not None:
            context["max_age"] = step_up.within
        if challenge_id is not None:
            context["challenge_id"] = challenge_id
        if www_authenticate is not None:
            context["www_authenticate"] = www_authenticate
    return EvaluationResponse(decision=decision.permitted, context=context)


def metadata(base_url: str) -> dict[str, Any]:
    """The PDP metadata document (§9.1) for a server at ``base_url``."""
    return {
        "policy_decision_point": base_url,
        "access_evaluation_endpoint": f"{base_url}/access/v1/evaluation",
        "access_evaluations_endpoint": f"{base_url}/access/v1/evaluations",
    }
