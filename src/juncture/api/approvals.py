"""Approvals (`/v1/approvals`): the person an agent acts for answers what it asks.

The calling app acts for the user's session (`session_id`, a live session of that app); an
approval addressed to someone else does not exist for it. Approving is the user's
`approval.approve` checkpoint: its answer may be a step-up (a challenge to verify, then ask
again) or a deny, and then nothing changes. See service/approvals.py.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from juncture.api.auth import authenticate_app
from juncture.api.problems import ApiError, convert, json_body
from juncture.api.views import decision_view, to_json
from juncture.service.approval_requests import approval_view
from juncture.service.runtime import Runtime


class Answer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    session_id: str
    answer: Literal["approve", "reject"]
    reason: str | None = None


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _json(body: Any, status: int = 200) -> Response:
    return Response(to_json(body), status_code=status, media_type="application/json")


def _session_id(request: Request) -> str:
    session_id = request.query_params.get("session_id")
    if not session_id:
        raise ApiError(400, "request.invalid", "`session_id` (the user's session) is needed")
    return session_id


async def list_approvals(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    status = request.query_params.get("status")
    if status not in (None, "pending", "approved", "rejected"):
        raise ApiError(400, "request.invalid", "`status` is pending, approved or rejected")
    found = runtime.approvals.list_for(app, _session_id(request), status=status)
    return _json({"approvals": [approval_view(a) for a in found]})


async def read_approval(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    found = runtime.approvals.get_for(
        app, _session_id(request), request.path_params["approval_id"]
    )
    return _json(approval_view(found))


async def answer_approval(request: Request) -> Response:
    runtime = _runtime(request)
    app = authenticate_app(request, runtime)
    body = convert(await json_body(request), Answer)
    if body.reason is not None and len(body.reason) > 500:
        raise ApiError(400, "request.invalid", "`reason` is at most 500 characters")
    outcome, answered = runtime.approvals.answer(
        app, body.session_id, request.path_params["approval_id"],
        approve=body.answer == "approve", reason=body.reason,
    )  # fmt: skip
    out: dict[str, Any] = {}
    if outcome is not None:
        out["decision"] = decision_view(outcome.decision, outcome.challenge)
    if answered is not None:
        out["approval"] = approval_view(answered)
    return _json(out)


ROUTES = [
    ("/v1/approvals", list_approvals, ["GET"]),
    ("/v1/approvals/{approval_id}", read_approval, ["GET"]),
    ("/v1/approvals/{approval_id}", answer_approval, ["POST"]),
]
