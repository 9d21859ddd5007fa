"""The OpenAPI document describes every route the app serves, with every HTTP method."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Route

from juncture import __version__
from juncture.api.app import create_app
from juncture.api.openapi import openapi_document
from juncture.api.server import open_runtime


def test_every_route_and_method_is_described(tmp_path: Path) -> None:
    runtime = open_runtime(tmp_path / "j.db")
    try:
        app = create_app(runtime).app  # type: ignore[attr-defined]
        paths = openapi_document(__version__)["paths"]
        for route in app.routes:
            assert isinstance(route, Route)
            assert route.path in paths, route.path
            for method in route.methods or ():
                if method != "HEAD":
                    assert method.lower() in paths[route.path], (route.path, method)
        served = {r.path for r in app.routes}
        assert set(paths) <= served
    finally:
        runtime.close()
        runtime.store.close()
