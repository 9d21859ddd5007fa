"""The OpenAPI 3.1 document of every endpoint (served at `/openapi.json`).

Generated from the route table, the description of each route (`api/endpoints.py`) and the
msgspec structs they name (`api/describe.py` builds it; docs/architecture.md, "The OpenAPI document").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from juncture.api.describe import build
from juncture.api.endpoints import ENDPOINTS, PARAMETERS


def openapi_document(
    version: str, routes: Iterable[tuple[str, Iterable[str]]] | None = None
) -> dict[str, Any]:
    """The document of every described endpoint; with ``routes`` (each path and its methods,
    as the app serves them), checked against them both ways and in their order. Raises
    `describe.UndocumentedRoute`."""
    return build(version, ENDPOINTS, routes, PARAMETERS)
