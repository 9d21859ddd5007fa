"""The OpenAPI document describes every route the app serves, with every HTTP method; each
documented request schema is the schema of the struct the handler decodes; real answers of a
running server match their documented schemas."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from starlette.routing import Mount, Route

from juncture import __version__
from juncture.api import app as app_module
from juncture.api.app import create_app
from juncture.api.describe import CLOCKED, Endpoint, UndocumentedRoute, build
from juncture.api.endpoints import ENDPOINTS, PARAMETERS
from juncture.api.openapi import openapi_document
from juncture.api.server import open_runtime
from juncture.errors import CODES
from service.server import Server
from service.test_http import admin, bundle, evaluation, new_app, start
from service.test_transmitters_http import edr

SPEC = openapi_document(__version__)
SCHEMAS = SPEC["components"]["schemas"]
METHODS = ("get", "put", "post", "delete", "patch")


def _served(tmp_path: Path) -> list[tuple[str, str]]:
    runtime = open_runtime(tmp_path / "j.db")
    try:
        app = create_app(runtime).app  # type: ignore[attr-defined]  # the Starlette app in Front
        return [
            (method.lower(), route.path)
            for route in app.routes
            if isinstance(route, Route)
            for method in route.methods or ()
            if method != "HEAD"
        ]
    finally:
        runtime.close()
        runtime.store.close()


def test_every_route_and_method_is_described(tmp_path: Path) -> None:
    runtime = open_runtime(tmp_path / "j.db")
    try:
        app = create_app(runtime).app  # type: ignore[attr-defined]  # the Starlette app in Front
        paths = openapi_document(__version__)["paths"]
        # The console's and the hosted HTML pages (api/console, api/hosted) are no part of the
        # JSON API.
        pages = ("/console", "/hosted/v1")
        routes = [r for r in app.routes if not (isinstance(r, Mount) and r.path in pages)]
        for route in routes:
            assert isinstance(route, Route)
            assert route.path in paths, route.path
            for method in route.methods or ():
                if method != "HEAD":
                    assert method.lower() in paths[route.path], (route.path, method)
        served = {r.path for r in routes}
        assert set(paths) <= served
    finally:
        runtime.close()
        runtime.store.close()


def test_the_document_has_exactly_the_routes_the_app_serves(tmp_path: Path) -> None:
    served = _served(tmp_path)
    documented = [(m, p) for p, item in SPEC["paths"].items() for m in item if m in METHODS]
    assert len(served) == len(set(served))
    assert sorted(documented) == sorted(served)
    assert len(ENDPOINTS) == len(served)


def test_a_route_without_a_description_or_a_description_without_a_route_stops_start_up(
    tmp_path: Path,
) -> None:
    served = [(path, [method.upper()]) for method, path in _served(tmp_path)]
    assert build(__version__, ENDPOINTS, served, PARAMETERS) == SPEC
    with pytest.raises(UndocumentedRoute, match="/v1/new"):
        build(__version__, ENDPOINTS, [*served, ("/v1/new", ["GET"])])
    with pytest.raises(UndocumentedRoute, match="/healthz"):
        build(__version__, ENDPOINTS, [r for r in served if r[0] != "/healthz"])


def _inline(node: Any, components: dict[str, Any]) -> Any:
    """The schema with every `$ref` replaced by what it names (the structs are not recursive)."""
    if isinstance(node, dict):
        if "$ref" in node:
            named = components[node["$ref"].rsplit("/", 1)[1]]
            rest = {k: v for k, v in node.items() if k != "$ref"}
            return {**_inline(named, components), **_inline(rest, components)}
        return {k: _inline(v, components) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, components) for v in node]
    return node


def test_each_documented_request_body_is_the_schema_of_the_struct_it_decodes_to() -> None:
    checked = 0
    for endpoint in ENDPOINTS:
        if endpoint.request is None:
            continue
        operation = SPEC["paths"][endpoint.path][endpoint.method.lower()]
        documented = operation["requestBody"]["content"]["application/json"]["schema"]
        (alone,), components = msgspec.json.schema_components([endpoint.request])
        assert _inline(documented, SCHEMAS) == _inline(alone, components), endpoint.path
        assert operation["requestBody"]["required"] is endpoint.body_required
        checked += 1
    assert checked >= 30


def test_the_document_is_well_formed_openapi_3_1() -> None:
    """Structural checks (no OpenAPI validator is installed): every reference resolves, every
    path parameter is declared, every operation says who may call it and answers problems
    with registered codes."""
    assert SPEC["openapi"] == "3.1.0" and SPEC["info"]["version"] == __version__
    text = msgspec.json.encode(SPEC).decode()
    for name in re.findall(r'"\$ref":"#/components/schemas/([^"]+)"', text):
        assert name in SCHEMAS, name
    schemes = SPEC["components"]["securitySchemes"]
    for path, item in SPEC["paths"].items():
        assert path.startswith("/")
        for method, operation in item.items():
            assert method in METHODS
            assert operation["summary"] and operation["tags"] and operation["responses"]
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
            for need in operation["security"]:
                assert set(need) <= set(schemes)
            for status, answer in operation["responses"].items():
                assert re.fullmatch(r"[1-5]\d\d", status) and answer["description"]
                problem = answer.get("content", {}).get("application/problem+json")
                if problem is not None:
                    assert int(status) >= 400
                    codes = re.findall(r"`([a-z_]+\.[a-z_.]+)`", answer["description"])
                    assert codes and set(codes) <= set(CODES), (method, path, status)


def test_admin_routes_name_their_scope_and_clocked_paths_match_the_app() -> None:
    assert CLOCKED == app_module.CLOCKED
    for endpoint in ENDPOINTS:
        operation = SPEC["paths"][endpoint.path][endpoint.method.lower()]
        if endpoint.path.startswith("/admin/"):
            ((scheme, scopes),) = operation["security"][0].items()
            assert scheme == "admin" and len(scopes) == 1, endpoint.path
        unavailable = operation["responses"].get("503", {}).get("description", "")
        clocked = "unavailable.clock_skew" in unavailable
        assert clocked == endpoint.path.startswith(CLOCKED), endpoint.path


def test_an_endpoint_names_only_registered_codes_and_known_scopes() -> None:
    with pytest.raises(ValueError, match="unregistered"):
        build("x", [Endpoint("GET", "/x", "x", "x", None, errors={400: ("no.such",)})])
    with pytest.raises(ValueError, match="unknown auth"):
        build("x", [Endpoint("GET", "/x", "x", "x", "admin:everything")])


# -- real answers against their documented schemas ------------------------------------------------


def validate(value: Any, schema: Any, where: str = "$") -> None:
    """A small JSON Schema check of the keywords msgspec emits (no validator is installed)."""
    while "$ref" in schema:
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**SCHEMAS[schema["$ref"].rsplit("/", 1)[1]], **rest}
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                validate(value, option, where)
                return
            except AssertionError as error:
                errors.append(str(error))
        raise AssertionError(f"{where}: no option of anyOf matches: {errors}")
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    kinds = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "null": type(None),
    }
    kind = schema.get("type")
    if kind is not None:
        assert isinstance(value, kinds[kind]), f"{where}: {value!r} is not {kind}"
        if kind in ("integer", "number"):
            assert not isinstance(value, bool), f"{where}: {value!r} is not {kind}"
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            assert name in value, f"{where}: `{name}` is missing"
        for name, member in value.items():
            if name in properties:
                validate(member, properties[name], f"{where}.{name}")
            elif isinstance(schema.get("additionalProperties"), dict):
                validate(member, schema["additionalProperties"], f"{where}.{name}")
            else:
                assert schema.get("additionalProperties", True) is not False, f"{where}.{name}"
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            validate(item, schema["items"], f"{where}[{i}]")


def check(response: httpx.Response, method: str, path: str) -> dict[str, Any]:
    """The answer matches the schema documented for its status (problems included)."""
    operation = SPEC["paths"][path][method]
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, f"{method} {path}: {response.status_code} {response.text}"
    media = response.headers["content-type"].split(";")[0]
    content = documented.get("content", {})
    assert media in content, f"{method} {path}: {media} not in {list(content)}"
    body = response.json()
    validate(body, content[media]["schema"], f"{method} {path}")
    assert isinstance(body, dict)
    return body


def test_the_schema_check_catches_a_missing_or_mistyped_member() -> None:
    broken = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}
    with pytest.raises(AssertionError, match="missing"):
        validate({}, broken)
    with pytest.raises(AssertionError, match="is not string"):
        validate({"id": 1}, broken)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path / "j.db", bundle(tmp_path / "v1", "10m")).start()
    try:
        yield running
    finally:
        running.stop()


def test_real_answers_match_their_documented_schemas(server: Server) -> None:
    served = httpx.get(f"{server.url}/openapi.json").json()
    assert served == msgspec.json.decode(msgspec.json.encode(SPEC))  # the same, as JSON
    check(httpx.get(f"{server.url}/healthz"), "get", "/healthz")
    app_id, web = new_app(server)
    session = start(web)["session"]["id"]
    pending = web.post("/v1/sessions", json={"subject": {"type": "user", "id": "bob"}})
    answer = check(pending, "post", "/v1/sessions")  # a step-up: its challenge
    assert answer["decision"]["challenge"]["id"].startswith("ch_")
    check(web.get(f"/v1/sessions/{session}"), "get", "/v1/sessions/{session_id}")
    evaluation(web, session)
    asked = {
        "subject": {"type": "user", "id": "alice"},
        "action": {"name": "change_email"},
        "resource": {"type": "account", "id": "alice"},
        "context": {"session_id": session},
    }
    check(web.post("/access/v1/evaluation", json=asked), "post", "/access/v1/evaluation")
    discovery = "/.well-known/authzen-configuration"
    check(web.get(discovery), "get", discovery)
    signals = web.post(f"/v1/sessions/{session}/signals", json={"signals": {"x": 1}})
    check(signals, "post", "/v1/sessions/{session_id}/signals")
    check(web.post(f"/v1/sessions/{session}/end"), "post", "/v1/sessions/{session_id}/end")
    check(web.get("/v1/sessions/s_nothing"), "get", "/v1/sessions/{session_id}")  # a problem
    with admin(server) as client:
        versions = check(client.get("/admin/v1/versions"), "get", "/admin/v1/versions")
        version = versions["versions"][0]["id"]
        check(client.get(f"/admin/v1/versions/{version}"), "get", "/admin/v1/versions/{version_id}")
        assert server.bundle is not None
        files = {"acct.yaml": (server.bundle / "acct.yaml").read_text() + "\n# 2\n"}
        uploaded = client.post("/admin/v1/versions", json={"files": files, "activate": True})
        new = check(uploaded, "post", "/admin/v1/versions")["id"]
        diff = client.get(f"/admin/v1/versions/{new}/diff", params={"against": version})
        check(diff, "get", "/admin/v1/versions/{version_id}/diff")
        activated = client.post(f"/admin/v1/versions/{version}/activate")
        check(activated, "post", "/admin/v1/versions/{version_id}/activate")
        check(client.get("/admin/v1/apps"), "get", "/admin/v1/apps")
        check(client.post(f"/admin/v1/apps/{app_id}/keys"), "post", "/admin/v1/apps/{app_id}/keys")
        check(client.get("/admin/v1/decisions"), "get", "/admin/v1/decisions")
        sweep = check(client.post("/admin/v1/sweeps"), "post", "/admin/v1/sweeps")["id"]
        check(client.get("/admin/v1/sweeps"), "get", "/admin/v1/sweeps")
        check(client.get(f"/admin/v1/sweeps/{sweep}"), "get", "/admin/v1/sweeps/{sweep_id}")
        replays = "/admin/v1/replays"
        replay = check(client.post(replays, json={"candidate": new}), "post", replays)["id"]
        check(client.get(replays), "get", replays)
        check(client.get(f"{replays}/{replay}"), "get", "/admin/v1/replays/{replay_id}")
        check(client.post(replays, json={"candidate": new, "since": "x"}), "post", replays)
        check(client.post("/admin/v1/apps", json={"name": ""}), "post", "/admin/v1/apps")
        subjects, subject = "/admin/v1/subjects", "/admin/v1/subjects/{subject_id}"
        check(client.post(subjects, json={"id": "carol"}), "post", subjects)
        service = {"id": "svc", "type": "service", "owner": "team:ops"}
        check(client.post(subjects, json=service), "post", subjects)
        check(client.get(subjects), "get", subjects)
        check(client.get(subjects, params={"limit": 1}), "get", subjects)  # with `next`
        check(client.get("/admin/v1/subjects/svc", params={"type": "service"}), "get", subject)
        changed = client.patch("/admin/v1/subjects/carol", json={"attributes": {"tier": 1}})
        check(changed, "patch", subject)
        enrolled = client.post("/admin/v1/subjects/carol/authenticators", json={"method": "totp"})
        made = check(enrolled, "post", f"{subject}/authenticators")["authenticator"]["id"]
        check(client.get("/admin/v1/subjects/carol"), "get", subject)
        removed = client.delete(f"/admin/v1/subjects/carol/authenticators/{made}")
        check(removed, "delete", f"{subject}/authenticators/{{authenticator_id}}")
        trusted = client.post("/admin/v1/transmitters", json=edr())
        check(trusted, "post", "/admin/v1/transmitters")
        check(client.get("/admin/v1/transmitters"), "get", "/admin/v1/transmitters")
    check(httpx.get(f"{server.url}/admin/v1/apps"), "get", "/admin/v1/apps")  # 401
