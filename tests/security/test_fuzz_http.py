"""Every public endpoint fuzzed over real HTTP against one `juncture serve` on SQLite.

The routes come from the server's own `/openapi.json` (every path and method). Hypothesis
sends each one random JSON (deep and wide, huge numbers, unicode, nulls), mutations of a
valid body (members dropped, added, retyped), bytes that are not JSON, wrong content types
and query strings, with the app's key, the admin key, a junk key and no key; path
parameters are real ids of existing objects or junk. Every answer comes within the timeout,
is below 500 and, when 4xx, is a problem with a registered code (I6). The examples are
derandomized (the same every run) and bounded so that the module takes about a minute.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from juncture import __version__
from juncture.api.openapi import openapi_document
from juncture.errors import CODES
from service.test_methods_http import PASSWORD, World

#: How long one answer may take (a 2-core machine shared with other work: generous).
TIMEOUT = 5.0
#: Examples per route; about 60 routes, so this bounds the module.
EXAMPLES = 60

_SPEC = openapi_document(__version__)
OPERATIONS = sorted(
    (method.upper(), path)
    for path, item in _SPEC["paths"].items()
    for method in item
    if method in ("get", "post", "put", "patch", "delete")
)
#: Routes that answer in the error format of RFC 8935/8936 (`err`, `description`), not RFC 9457.
SET_ERRORS = ("/ssf/poll/{stream_id}", "/ssf/receive/{transmitter}")
#: 5xx answers a route may document: the store (or an issuer's keys, a mail server) away.
DOCUMENTED_503: set[str] = set()  # the store is up: a 503 here misreports bad input


class Target:
    """The running server, its keys and the real ids of objects in its store."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.url = world.server.url
        self.keys: dict[str, str | None] = {
            "app": str(world.app.headers["Authorization"]).removeprefix("Bearer "),
            "admin": world.server.admin_token(),
            "junk": "jct_app_" + "A" * 40,
            "none": None,
        }
        self.http = httpx.Client(base_url=self.url, timeout=TIMEOUT)
        self.ids: dict[str, list[str]] = {}
        self.valid: dict[tuple[str, str], list[Any]] = {}

    def collect_ids(self) -> None:
        world = self.world
        admin = world.admin
        other = admin.post("/admin/v1/apps", json={"name": "other"})
        assert other.status_code == 201, other.text
        made = admin.post("/admin/v1/subjects", json={"id": "bob"})
        assert made.status_code == 201, made.text
        authenticators = admin.get("/admin/v1/subjects/alice").json()
        live = world.logged_in()
        pending = world.login()
        versions = admin.get("/admin/v1/versions").json()["versions"]
        sweep = admin.post("/admin/v1/sweeps")
        assert sweep.status_code == 202, sweep.text
        stream = world.app.post("/ssf/streams", json={"delivery": {"method": "urn:ietf:rfc:8936"}})
        assert stream.status_code in (200, 201), stream.text
        self.ids = {
            "session_id": [live, pending["session"]["id"]],
            "challenge_id": [pending["decision"]["challenge"]["id"]],
            "subject_id": ["alice", "bob"],
            "authenticator_id": [a["id"] for a in authenticators.get("authenticators", [])],
            "version_id": [v["id"] for v in versions],
            "app_id": [other.json()["app"]["id"]],  # never the fuzzing app: keys rotate
            "sweep_id": [sweep.json()["id"]],
            "stream_id": [stream.json()["stream_id"]],
            "subject_type": ["user", "service", "agent"],
            "transmitter": ["https://idp.example.com"],
            "approval_id": [],
        }
        self.valid = valid_bodies(self.ids)
        assert all(self.ids[name] for name in ("authenticator_id", "version_id")), self.ids

    def refresh(self) -> None:
        """A live session and a live challenge for the next route (the last ones may be spent)."""
        started = self.world.app.post(
            "/v1/sessions", json={"subject": {"type": "user", "id": "alice"}}
        )
        if started.status_code != 201:  # alice disabled or locked by an earlier route: no matter
            return
        challenge = started.json()["decision"]["challenge"]["id"]
        verified = self.world.verify(challenge, "password", PASSWORD)
        pending = self.world.app.post(
            "/v1/sessions", json={"subject": {"type": "user", "id": "alice"}}
        )
        if verified.status_code != 200 or pending.status_code != 201:
            return
        self.ids["session_id"] = [started.json()["session"]["id"], pending.json()["session"]["id"],
                                  *self.ids["session_id"][-2:]]  # fmt: skip
        self.ids["challenge_id"] = [pending.json()["decision"]["challenge"]["id"]]
        self.valid = valid_bodies(self.ids)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    world = World(tmp_path_factory.mktemp("fuzz"), lockout=1000)
    try:
        world.subject()
        world.enroll_password()
        made = Target(world)
        made.collect_ids()
        yield made
        made.http.close()
    finally:
        world.stop()


# -- strategies -----------------------------------------------------------------------------------


def _names(node: Any, into: set[str]) -> set[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                into.update(value)
            _names(value, into)
    elif isinstance(node, list):
        for value in node:
            _names(value, into)
    return into


MEMBER_NAMES = sorted(_names(_SPEC, set()))
HUGE = [2**63, -(2**63) - 1, 2**64, 10**400, -(10**400), 1e308, -1e308, 5e-324, 0, -0.0]
TEXTS = st.text(max_size=40) | st.sampled_from(
    ["", " ", "\x00", "\u202e", "\U0001f600", "a" * 5000, "../../etc/passwd", "s_" + "0" * 32,
     "%00", "null", "true", "1e999", "\ud800"]
)  # fmt: skip
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.sampled_from(HUGE)
    | st.floats(allow_nan=False, allow_infinity=False) | TEXTS
)  # fmt: skip
KEYS = st.sampled_from(MEMBER_NAMES) | st.text(max_size=12)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=30,
)


@st.composite
def deep(draw: st.DrawFn) -> Any:
    """A value nested up to a little past the documented depth limit (32)."""
    value = draw(SCALARS)
    for _ in range(draw(st.integers(1, 40))):
        value = [value] if draw(st.booleans()) else {draw(KEYS): value}
    return value


@st.composite
def wide(draw: st.DrawFn) -> Any:
    count = draw(st.integers(50, 3000))
    if draw(st.booleans()):
        return [draw(SCALARS)] * count
    return {f"k{i}": i for i in range(count)}


def _resolve(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = _SPEC["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def example(schema: Any, name: str, ids: dict[str, list[str]]) -> Any:
    """A plausible valid value of a schema: every member filled, real ids where named."""
    schema = _resolve(schema)
    if not isinstance(schema, dict):
        return None
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:  # msgspec's `X | None`: the first option is the value itself
        return example(schema["anyOf"][0], name, ids)
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {key: example(sub, key, ids) for key, sub in props.items()}
    if kind == "array":
        return [example(schema.get("items", {}), name, ids)]
    if kind == "integer":
        return 60
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    fill = {"id": "alice", "type": "user", "method": "password", "proof": PASSWORD,
            "name": "login", "password": PASSWORD}  # fmt: skip
    if ids.get(name):
        return ids[name][0]
    return fill.get(name, "x")


def valid_bodies(ids: dict[str, list[str]]) -> dict[tuple[str, str], list[Any]]:
    """Bodies a route accepts (written by hand where the schema alone gives none)."""
    session = ids["session_id"][0]
    user = {"type": "user", "id": "alice"}
    account = {"type": "account", "id": "alice"}
    ask = {
        "subject": user,
        "action": {"name": "login"},
        "resource": account,
        "context": {"session_id": session},
    }
    context = {
        "context": {"risky": True},
        "network": {"ip": "203.0.113.9"},
        "device": {"id": "d1", "managed": True},
    }
    stream = ids["stream_id"][0]
    task = {"id": "t1", "purpose": "book_trip", "tools": ["search"], "expires_in": "1h"}
    return {
        ("POST", "/access/v1/evaluation"): [ask, {**ask, "context": context}],
        ("POST", "/access/v1/evaluations"): [
            {
                "subject": user,
                "resource": account,
                "context": {"session_id": session},
                "evaluations": [{"action": {"name": "login"}}, {"action": {"name": "dashboard"}}],
            }
        ],
        ("POST", "/access/v1/search/subject"): [{**ask, "subject": {"type": "user"}}],
        ("POST", "/access/v1/search/resource"): [{**ask, "resource": {"type": "account"}}],
        ("POST", "/access/v1/search/action"): [{k: v for k, v in ask.items() if k != "action"}],
        ("POST", "/v1/sessions"): [
            {"subject": user, "context": context},
            {
                "subject": {"type": "agent", "id": "bot"},
                "task": task,
                "delegation": {"session_id": session},
            },
        ],
        ("POST", "/v1/sessions/{session_id}/signals"): [
            {"context": context},
            {"signals": {"x": 1}},
        ],
        ("POST", "/v1/sessions/{session_id}/task"): [{"task": task}],
        ("POST", "/v1/sessions/{session_id}/end"): [{"revoke_reason": "fuzz"}, {}],
        ("POST", "/v1/challenges/{challenge_id}/verify"): [
            {"method": "password", "proof": PASSWORD},
            {"method": "totp", "proof": "123456"},
            {"method": "passkey", "proof": {"id": "x", "response": {}}},
            {"method": "email", "proof": "000000"},
            {"method": "recovery", "proof": "x"},
        ],
        ("POST", "/v1/challenges/{challenge_id}/start"): [
            {"method": "passkey"},
            {"method": "email"},
        ],
        ("POST", "/v1/subjects/{subject_id}/authenticators"): [
            {"method": "totp", "session_id": session, "label": "phone"},
            {"method": "passkey", "session_id": session, "user_name": "alice"},
            {"method": "email", "session_id": session, "address": "alice@example.com"},
        ],
        ("POST", "/v1/subjects/{subject_id}/authenticators/{authenticator_id}/confirm"): [
            {"proof": "123456", "session_id": session}
        ],
        ("POST", "/admin/v1/subjects"): [
            {"id": "dave", "type": "user", "attributes": {"a": 1}},
            {"id": "svc", "type": "service", "owner": "alice"},
        ],
        ("PATCH", "/admin/v1/subjects/{subject_id}"): [{"attributes": {"b": [1, 2]}}],
        ("POST", "/admin/v1/subjects/{subject_id}/authenticators"): [
            {"method": "password", "password": PASSWORD + "!"},
            {"method": "totp"},
            {"method": "recovery"},
            {"method": "email", "address": "a@example.com"},
        ],
        ("POST", "/admin/v1/subjects/{subject_id}/keys"): [
            {"label": "k", "scopes": ["read"], "expires_in": "90d"}
        ],
        ("POST", "/admin/v1/subjects/{subject_id}/assertion-keys"): [
            {"jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}}
        ],
        ("POST", "/admin/v1/versions"): [
            {
                "files": {
                    "a.yaml": 'journey: a\napplies_to: [x]\ncheckpoints:\n  "*": [{deny: no}]\n'
                },
                "activate": False,
            }
        ],
        ("POST", "/admin/v1/apps"): [
            {"name": "fuzzed", "journeys": ["acct"], "assertable_methods": ["password"]}
        ],
        ("POST", "/ssf/streams"): [
            {
                "delivery": {"method": "urn:ietf:rfc:8936"},
                "events_requested": ["x"],
                "description": "d",
            }
        ],
        ("PATCH", "/ssf/streams"): [{"stream_id": stream, "description": "e"}],
        ("PUT", "/ssf/streams"): [
            {
                "stream_id": stream,
                "delivery": {"method": "urn:ietf:rfc:8936"},
                "events_requested": [],
            }
        ],
        ("POST", "/ssf/status"): [{"stream_id": stream, "status": "paused", "reason": "r"}],
        ("POST", "/ssf/subjects:add"): [
            {"stream_id": stream, "subject": {"format": "opaque", "id": "alice"}, "verified": True}
        ],
        ("POST", "/ssf/subjects:remove"): [
            {"stream_id": stream, "subject": {"format": "email", "email": "a@example.com"}}
        ],
        ("POST", "/ssf/verify"): [{"stream_id": stream, "state": "s"}],
        ("POST", "/ssf/poll/{stream_id}"): [
            {
                "maxEvents": 5,
                "returnImmediately": True,
                "ack": ["j1"],
                "setErrs": {"j2": {"err": "x", "description": "y"}},
            }
        ],
        ("POST", "/v1/approvals/{approval_id}"): [{"session_id": session, "answer": "approve"}],
    }


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [at]
    if isinstance(value, dict):
        for key, sub in value.items():
            found += _paths(sub, (*at, key))
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            found += _paths(sub, (*at, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, valid: Any) -> Any:
    """A valid body with a few members dropped, added or retyped (anywhere in it)."""
    body = json.loads(json.dumps(valid))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(_paths(body)))
        if not where:
            body = draw(JSON) if draw(st.integers(0, 4)) == 0 else body
            continue
        parent = body
        try:
            for step in where[:-1]:
                parent = parent[step]
            last = where[-1]
            parent[last]  # (still there after an earlier mutation?)
        except (KeyError, IndexError, TypeError):
            continue
        action = draw(st.sampled_from(["drop", "add", "retype", "retype"]))
        if action == "drop":
            del parent[last]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(KEYS)] = draw(JSON)
        elif action == "add" and isinstance(parent, list):
            parent.append(draw(JSON))
        else:
            parent[last] = draw(JSON | deep())
    return body


CONTENT_TYPES = st.sampled_from([
    "application/problem+json",
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/secevent+jwt", "application/json; charset=latin-1", "", "*/*", "x/y;;=\"",
])  # fmt: skip


@st.composite
def request_of(draw: st.DrawFn, target: Target, method: str, path: str) -> dict[str, Any]:
    operation = _SPEC["paths"][path][method.lower()]
    url = path
    for name in [p["name"] for p in operation.get("parameters", []) if p.get("in") == "path"]:
        real = target.ids.get(name, [])
        junk = draw(TEXTS.filter(bool))
        value = draw(st.sampled_from(real)) if real and draw(st.booleans()) else junk
        url = url.replace("{" + name + "}", _quote(value))
    query_names = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
    if draw(st.booleans()):
        names = st.sampled_from(query_names) | KEYS if query_names else KEYS
        query = draw(st.dictionaries(names, TEXTS, max_size=4))
        url += "?" + "&".join(f"{_quote(k)}={_quote(v)}" for k, v in query.items())
    headers: dict[str, str] = {}
    # mostly the key the route takes (so that the body is read), sometimes any other
    wanted = [name for need in operation.get("security", [{}]) for name in need] or ["none"]
    holder = draw(st.sampled_from(wanted)) if draw(st.integers(0, 3)) else None
    key = target.keys[holder or draw(st.sampled_from(["app", "admin", "junk", "none"]))]
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    content: bytes | None = None
    if method in ("POST", "PUT", "PATCH") or draw(st.integers(0, 5)) == 0:
        schema = operation.get("requestBody", {}).get("content", {})
        schema = schema.get("application/json", {}).get("schema", {"type": "object"})
        known = target.valid.get((method, path), [])
        valid = draw(st.sampled_from([*known, example(schema, "", target.ids)]))
        kind = draw(st.sampled_from(["valid", "valid", "mutated", "mutated", "mutated", "json",
                                     "deep", "wide", "bytes", "text", "none"]))  # fmt: skip
        if kind == "valid":
            content = json.dumps(valid).encode()
        elif kind == "mutated":
            content = json.dumps(draw(mutated(valid))).encode()
        elif kind == "json":
            content = json.dumps(draw(JSON)).encode()
        elif kind == "deep":
            content = json.dumps(draw(deep())).encode()
        elif kind == "wide":
            content = json.dumps(draw(wide())).encode()
        elif kind == "bytes":
            content = draw(st.binary(max_size=300))
        elif kind == "text":
            content = draw(
                st.sampled_from(
                    [
                        b"{",
                        b"[1,",
                        b'{"a":NaN}',
                        b'{"a":Infinity}',
                        b"\xef\xbb\xbf{}",
                        b"{}{}",
                        b'{"a":1,"a":2}',
                        b'"\\ud800"',
                        b'{"\\u0000":1}',
                        b"\xff\xfe{\x00}\x00",
                    ]
                )
            )
        if content is not None:
            wrong = draw(st.integers(0, 3)) == 0
            headers["Content-Type"] = draw(CONTENT_TYPES) if wrong else "application/json"
    return {"method": method, "url": url, "headers": headers, "content": content}


def _quote(text: str) -> str:
    """Percent-encoded UTF-8, lone surrogates too (bytes that are not UTF-8 reach the server)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def check(target: Target, request: dict[str, Any]) -> None:
    where = f"{request['method']} {request['url']} {request['headers']}"
    where += f" {request['content']!r:.300}"
    try:
        response = target.http.request(**request)
    except httpx.TimeoutException:  # pragma: no cover - the failure this test looks for
        pytest.fail(f"no answer within {TIMEOUT}s: {where}")
    status = response.status_code
    if status >= 500:
        body = _json_or_none(response)
        code = body.get("code") if isinstance(body, dict) else None
        assert status == 503 and code in DOCUMENTED_503, f"{status} {response.text}: {where}"
        return
    if status < 400:
        return
    body = _json_or_none(response)
    assert isinstance(body, dict), f"{status} {response.text!r}: {where}"
    if "err" in body and any(request["url"].startswith(p.split("{")[0]) for p in SET_ERRORS):
        assert isinstance(body["err"], str) and isinstance(body.get("description"), str), where
        return
    assert response.headers["content-type"].startswith("application/problem+json"), where
    assert body.get("code") in CODES, f"{status} {response.text}: {where}"
    assert body.get("status") == status, f"{status} {response.text}: {where}"


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


# -- tests ----------------------------------------------------------------------------------------


def test_fuzz_covers_every_route_the_server_describes(target: Target) -> None:
    served = target.http.get("/openapi.json").json()
    assert (
        sorted(
            (method.upper(), path)
            for path, item in served["paths"].items()
            for method in item
            if method in ("get", "post", "put", "patch", "delete")
        )
        == OPERATIONS
    )


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_fuzzed_requests_never_fail_the_server(target: Target, method: str, path: str) -> None:
    """I6: whatever a caller sends to a route (any key, any body, any query, any id), the answer
    comes within the timeout and is not a 5xx; bad input gets a problem with a registered code."""

    target.refresh()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def fuzz(data: st.DataObject) -> None:
        check(target, data.draw(request_of(target, method, path)))

    fuzz()


@pytest.mark.parametrize("path", ["/", "/v1", "/v1/sessions/", "/admin/v1/%00", "/x" * 500,
                                  "/v1/sessions/%2e%2e/end", "/access/v1/evaluation/"])  # fmt: skip
def test_unknown_paths_are_problems(target: Target, path: str) -> None:
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        check(target, {"method": method, "url": path, "content": b"{}",
                       "headers": {"Content-Type": "application/json"}})  # fmt: skip


def test_server_still_answers_after_the_fuzz(target: Target) -> None:
    """After every route was fuzzed the server is alive and answers health and decisions."""
    process = target.world.server.process
    assert process is not None and process.poll() is None
    health = target.http.get("/healthz")
    assert health.status_code == 200, health.text
    started = target.world.app.post(
        "/v1/sessions", json={"subject": {"type": "user", "id": "carol"}, "context": {}}
    )
    assert started.status_code in (201, 404), started.text
