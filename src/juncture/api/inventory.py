"""The inventory of non-human identities (`/admin/v1/identities`, admin scope `read`): every
service and agent with its owner, credentials, sessions, live grants and flags
(service/inventory.py)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from juncture.api.auth import authenticate_admin
from juncture.api.problems import page_limit
from juncture.api.views import to_json
from juncture.service.inventory import InventorySettings
from juncture.service.runtime import Runtime


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _settings(request: Request) -> InventorySettings:
    settings = getattr(request.app.state, "inventory", None)
    return settings if isinstance(settings, InventorySettings) else InventorySettings()


def _json(body: Any) -> Response:
    return Response(to_json(body), media_type="application/json")


async def list_identities(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    params = request.query_params
    limit = page_limit(request)
    runtime.log.writer.flush()  # the last decisions count too
    found, after = runtime.inventory.page(
        _settings(request),
        subject_type=params.get("type"),
        flag=params.get("flag"),
        limit=limit,
        after=params.get("after"),
    )
    return _json({"identities": found, "next": after})


async def read_identity(request: Request) -> Response:
    runtime = _runtime(request)
    authenticate_admin(request, runtime, "read")
    runtime.log.writer.flush()
    found = runtime.inventory.identity(
        _settings(request), request.path_params["subject_type"], request.path_params["subject_id"]
    )
    return _json(found)


ROUTES = [
    ("/admin/v1/identities", list_identities, ["GET"]),
    ("/admin/v1/identities/{subject_type}/{subject_id}", read_identity, ["GET"]),
]
