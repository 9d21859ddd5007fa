"""Requests/s and latency of the decision service over HTTP: `juncture serve` against a bare
Starlette endpoint on the same server stack (the floor).

Load: `wrk` (Debian's), closed loop, --connections keep-alive connections for --duration
seconds on 127.0.0.1, after a --warmup run that is not counted. Every request is the same
session-bound AuthZEN evaluation (`POST /access/v1/evaluation`, `context.session_id` of a
session started beforehand, action `change_email`: the bundle written to a temp dir requires a
TOTP within 15 minutes, then allows; the session answers its step-up challenge once, so every
timed decision is `allow`). The floor is uvicorn with the same settings as `juncture serve`
(httptools, uvloop, log level warning, the same worker count) serving a Starlette route that
reads the body and answers a constant; wrk sends it the very same bytes.

Checked before timing: one request per server (Juncture: status 200, `decision` true,
`context.outcome` allow; floor: the constant). During the load: wrk's count of responses
with a status of 400 or more and its socket errors (both must be 0). After it: Juncture's
decision log (read from the SQLite file once the server has stopped) holds an `allow` record
for at least every request wrk counted and nothing but the one setup `step_up` otherwise.

Each server runs in its own process group in a temp dir on a free port, and is stopped with
SIGTERM (then SIGKILL of the group if it hangs); the script checks that no process of the group
is left. Rounds interleave the four configurations; the figures are the medians over rounds.

    .venv/bin/python bench/http_load.py [--duration 20] [--connections 32] [--rounds 3]
        [--workers 1 2] [--threads 1] [--profile-seconds 10] [--no-write]

With ``--backends sqlite postgres`` it compares the stores instead (section `http-postgres`):
Juncture on SQLite, on PostgreSQL (a server started for the run, as the tests start it:
tests/postgres.py, a fresh database per run) with one node, and with two nodes on the same
database loaded at once (one wrk per node, the connections split between them; requests
summed, percentiles the worse node's, server CPU both nodes'). No floor, no profile. Target:
one node on PostgreSQL at ≥ 70% of the same node's requests/s on SQLite.

With ``--shadow`` it measures what a shadow version costs (section `http-shadow`): Juncture
alone, with a shadow version answering as the active one does (nothing recorded), and with one
answering otherwise on every request (its differences recorded at the default rate, and every
one), interleaved per round. Checked after each shadowed run: the shadow decided every answered
request or counted it dropped, and nothing is left waiting.
Target (issue 17): at most 15% more server CPU per decision.

With ``--decision-log batched durable`` it compares the decision log's modes instead (Juncture
only, `juncture serve --decision-log MODE`, the modes interleaved per round; section
`http-decision-log`). Without `wrk` on the PATH, the load comes from a Python fallback in this
process (asyncio + httpx, the same closed loop over keep-alive connections): it is slower
than wrk and shares the CPUs with the server, so its figures compare modes with each other,
not with the wrk figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pstats
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent

import _common as common  # noqa: E402
import httpx  # noqa: E402
from _common import Server, free_port, group_cpu_seconds  # noqa: E402

JUNCTURE = Path(sys.executable).with_name("juncture")
ACTION = "change_email"
PATH = "/access/v1/evaluation"

BUNDLE = """\
journey: acct
applies_to: [bench]
methods:
  password: {kind: password, aal: 1}
  totp: {kind: totp, aal: 2}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {scopes: [app], ttl: 1h}}]
  change_email: [{require: {any: [totp], within: 15m}}, {allow: {}}]
  "*": [{deny: unknown_action}]
"""

#: The shadow version that denies every request the active one allows.
_DIFFERS = BUNDLE.replace(
    "change_email: [{require: {any: [totp], within: 15m}}, {allow: {}}]",
    "change_email: [{deny: shadow_refuses}]",
)
#: The shadow versions of ``--shadow`` and the server's options: one changing another checkpoint
#: (`login`: `change_email` is counted equal, not decided again), one deciding as the active one
#: does (a 10-minute window where the active one has 15: the session's TOTP is seconds old), one
#: denying every request, its differences recorded at the default rate or every one.
SHADOWS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "none": (None, ()),
    "another checkpoint changed": (
        BUNDLE.replace("{allow: {scopes: [app], ttl: 1h}}", "{allow: {scopes: [app], ttl: 2h}}"),
        (),
    ),
    "same answers": (BUNDLE.replace("within: 15m", "within: 10m"), ()),
    "every answer differs": (_DIFFERS, ()),
    "every answer differs, every one recorded": (_DIFFERS, ("--shadow-record-rate", "0")),
}

#: The configurations of the default run, interleaved per round.
KINDS = ("Juncture", "cedarpy", "floor")
NAMES = {"Juncture": "**Juncture**", "cedarpy": "Starlette + cedarpy (peer)",
         "floor": "bare Starlette (floor)"}  # fmt: skip

FLOOR_BODY = b'{"decision":true,"context":{"outcome":"allow"}}'
FLOOR_APP = f'''\
"""The floor: a bare Starlette endpoint that reads the body and answers a constant."""
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

BODY = {FLOOR_BODY!r}


async def evaluation(request):
    await request.body()
    return Response(BODY, media_type="application/json")


async def health(request):
    return Response(b"ok")


app = Starlette(routes=[
    Route("{PATH}", evaluation, methods=["POST"]),
    Route("/healthz", health, methods=["GET"]),
])
'''

#: The peer: what a team would write instead of Juncture: a Starlette endpoint that decides
#: the same `change_email` with cedarpy, stateless (the request carries every attribute the
#: Cedar policy reads) and logging nothing. The anchor's policy and entities
#: (`../shared/anchors/`, `bench/evaluate.py` reads the same), parsed once at start.
ANCHORS = Path(os.environ.get("JUNCTURE_ANCHORS", "/work/shared/anchors/policies"))
CEDAR_BODY = json.dumps(
    {
        "subject": {"type": "user", "id": "alice"},
        "action": {"name": ACTION},
        "resource": {"type": "account", "id": "alice"},
        "context": {
            "now": 1_700_000_100, "session": {"auth_time": 1_700_000_000, "acr": "aal2",
            "amr": ["pwd", "otp"]}, "device": {"managed": True}, "ip": "10.1.2.3",
            "geo": {"country": "FR"}, "risk": {"level": "low"},
        },
    },
    separators=(",", ":"),
).encode()  # fmt: skip
CEDAR_APP = """\
\"\"\"The peer: Starlette + cedarpy deciding change_email from what the request carries.\"\"\"
import json
from pathlib import Path

import cedarpy
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

ANCHORS = Path(ANCHORS_DIR)
POLICIES = cedarpy.PolicySet.from_str((ANCHORS / "change_email.cedar").read_text())
ENTITIES = cedarpy.Entities.from_json_str((ANCHORS / "entities.json").read_text())


async def evaluation(request):
    body = json.loads(await request.body())
    result = cedarpy.is_authorized(
        {
            "principal": {"type": "User", "id": body["subject"]["id"]},
            "action": {"type": "Action", "id": body["action"]["name"]},
            "resource": {"type": "Account", "id": body["resource"]["id"]},
            "context": body["context"],
        },
        POLICIES,
        ENTITIES,
    )
    if result.allowed:
        outcome = "allow"
    else:  # a forbid that matched denies; no permit that matched asks for a step-up
        outcome = "deny" if result.diagnostics.reasons else "step_up"
    answer = {"decision": result.allowed, "context": {"outcome": outcome}}
    return Response(json.dumps(answer), media_type="application/json")


async def health(request):
    return Response(b"ok")


app = Starlette(routes=[
    Route(PATH_VALUE, evaluation, methods=["POST"]),
    Route("/healthz", health, methods=["GET"]),
])
"""

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = [[BODY]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer KEY"

done = function(summary, latency, requests)
  io.write(string.format(
    "WRKJSON {\\"requests\\": %d, \\"duration_us\\": %d, \\"status_errors\\": %d, "
    .. "\\"connect\\": %d, \\"read\\": %d, \\"write\\": %d, \\"timeout\\": %d, "
    .. "\\"p50_us\\": %d, \\"p90_us\\": %d, \\"p99_us\\": %d, \\"p999_us\\": %d, "
    .. "\\"max_us\\": %d, \\"mean_us\\": %f}\\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
"""


# -- the two servers ------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    workers: int
    server: Server
    key: str
    body: bytes
    db: Path | None = None
    notes: list[str] = field(default_factory=list)
    #: The PostgreSQL database the nodes share (the decision log is read from it).
    url: str | None = None
    #: Further nodes on the same database (wrk loads every node at once).
    others: list[Server] = field(default_factory=list)

    @property
    def servers(self) -> list[Server]:
        return [self.server, *self.others]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def request_body(session_id: str) -> bytes:
    return json.dumps(
        {
            "subject": {"type": "user", "id": "alice"},
            "action": {"name": ACTION},
            "resource": {"type": "account", "id": "alice"},
            "context": {"session_id": session_id},
        },
        separators=(",", ":"),
    ).encode()


def start_juncture(
    tmp: Path,
    workers: int,
    decision_log: str = "batched",
    url: str | None = None,
    serve_args: tuple[str, ...] = (),
) -> Target:
    """A `juncture serve` on a SQLite file in ``tmp``, or on the PostgreSQL database ``url``;
    an app, a session and its answered step-up made through it."""
    bundle = tmp / "bundle"
    bundle.mkdir()
    (bundle / "acct.yaml").write_text(BUNDLE)
    db = tmp / "j.db"
    port = free_port()
    args = [str(JUNCTURE), "serve", "--db", url or str(db), "--bundle", str(bundle)]
    args += ["--port", str(port), "--workers", str(workers), "--decision-log", decision_log]
    args += serve_args
    server = Server(args, tmp, {**os.environ}, port).start()
    try:
        admin = next(tmp.glob("*.admin-token")).read_text().strip()
        with httpx.Client(base_url=server.url, timeout=10) as client:
            made = client.post(
                "/admin/v1/apps",
                headers={"Authorization": f"Bearer {admin}"},
                json={"name": "bench", "assertable_methods": ["password", "totp"]},
            )
            assert made.status_code == 201, made.text
            key = made.json()["key"]
            auth = {"Authorization": f"Bearer {key}"}
            started = client.post(
                "/v1/sessions",
                headers=auth,
                json={
                    "subject": {"type": "user", "id": "alice"},
                    "proofs": [{"method": "password"}],
                    "context": {"network": {"ip": "10.1.2.3"}},
                },
            )
            assert started.status_code == 201, started.text
            assert started.json()["decision"]["outcome"] == "allow", started.text
            session_id = started.json()["session"]["id"]
            body = request_body(session_id)
            first = client.post(
                PATH, headers=auth | {"Content-Type": "application/json"}, content=body
            )
            assert first.status_code == 200, first.text
            assert first.json()["context"]["outcome"] == "step_up", first.text
            challenge = first.json()["context"]["challenge_id"]
            verified = client.post(
                f"/v1/challenges/{challenge}/verify", headers=auth, json={"method": "totp"}
            )
            assert verified.status_code == 200, verified.text
            assert verified.json()["decision"]["outcome"] == "allow", verified.text
    except BaseException:
        server.stop()
        raise
    if url is not None:
        return Target("Juncture", workers, server, key, body, url=url)
    return Target("Juncture", workers, server, key, body, db=db)


def start_postgres_nodes(
    tmp: Path, workers: int, url: str, nodes: int, decision_log: str = "batched"
) -> Target:
    """``nodes`` `juncture serve` processes on one PostgreSQL database: the first publishes the
    bundle and makes the app and the session, the others start on what it stored."""
    os.chmod(tmp, 0o755)
    target = start_juncture(tmp, workers, decision_log, url)
    target.name = "PostgreSQL"
    try:
        for n in range(1, nodes):
            cwd = tmp / f"node{n}"
            cwd.mkdir()
            port = free_port()
            args = [str(JUNCTURE), "serve", "--db", url, "--port", str(port)]
            args += ["--workers", str(workers), "--decision-log", decision_log]
            target.others.append(Server(args, cwd, {**os.environ}, port).start())
    except BaseException:
        target.stop()
        raise
    return target


def start_uvicorn_app(tmp: Path, module: str, source: str, workers: int) -> Server:
    """A one-file Starlette app (``source``) under uvicorn, as `juncture serve` runs."""
    (tmp / f"{module}.py").write_text(source)
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", f"{module}:app", "--app-dir", str(tmp)]
    args += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    args += ["--http", "httptools", "--loop", "uvloop", "--log-level", "warning"]
    return Server(args, tmp, {**os.environ}, port).start()


def start_cedar(tmp: Path, workers: int) -> Target:
    """The peer (`CEDAR_APP`) under uvicorn as the floor runs."""
    app = CEDAR_APP.replace("ANCHORS_DIR", repr(str(ANCHORS))).replace("PATH_VALUE", repr(PATH))
    server = start_uvicorn_app(tmp, "cedar_app", app, workers)
    return Target("cedarpy", workers, server, "-", CEDAR_BODY)


def start_floor(tmp: Path, workers: int) -> Target:
    server = start_uvicorn_app(tmp, "floor_app", FLOOR_APP, workers)
    return Target("floor", workers, server, "jct_app_000000000000.floor", request_body("s_floor"))


def check_answer(target: Target) -> str:
    """One request per node, its answer asserted: what the load will be timing is right."""
    for other in target.others:
        _check_answer(target, other)
    return _check_answer(target, target.server)


def _check_answer(target: Target, server: Server) -> str:
    response = httpx.post(
        server.url + PATH,
        content=target.body,
        headers={"Authorization": f"Bearer {target.key}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    if target.name == "floor":
        assert response.content == FLOOR_BODY, response.content
        return "constant"
    answer = response.json()
    assert answer["decision"] is True, answer
    assert answer["context"]["outcome"] == "allow", answer
    return "decision true, outcome allow"


def decision_log(db: Path | str) -> dict[str, int]:
    """Decision records by outcome and action, from the SQLite file or the PostgreSQL URL."""
    query = "SELECT outcome || ' ' || action, COUNT(*) FROM decisions GROUP BY 1"
    if isinstance(db, str):
        import psycopg

        with psycopg.connect(db) as pg:
            return {name: count for name, count in pg.execute(query).fetchall()}
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(query).fetchall()
    return {name: count for name, count in rows}


# -- load ------------------------------------------------------------------------------------------


def wrk(target: Target, script: Path, seconds: float, args: argparse.Namespace) -> dict[str, Any]:
    """wrk against the target's server; with several nodes, one wrk per node at once, the
    connections split evenly between them. Server CPU: every node's process group."""
    servers = target.servers
    connections = max(1, args.connections // len(servers))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = sum(group_cpu_seconds(server.pgid) for server in servers)
    loads = []
    for server in servers:
        cmd = ["wrk", f"-t{args.threads}", f"-c{connections}", f"-d{seconds:g}s"]
        cmd += ["--latency", "--timeout", "5s", "-s", str(script), server.url + PATH]
        loads.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    outputs = []
    for load in loads:
        out, err = load.communicate()
        if load.returncode != 0:
            raise RuntimeError(f"wrk failed: {err.decode()}")
        outputs.append(out.decode())
    cpu_after = sum(group_cpu_seconds(server.pgid) for server in servers)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    parts: list[dict[str, Any]] = []
    for out in outputs:
        line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
        parts.append(json.loads(line.removeprefix("WRKJSON ")))
    result = parts[0] if len(parts) == 1 else combine(parts)
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["server_cpu_s"] = cpu_after - cpu_before
    result["wrk_cpu_s"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    result["socket_errors"] = sum(result[k] for k in ("connect", "read", "write", "timeout"))
    return result


def combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The wrk runs on several nodes at once as one: counts summed, over the longest duration
    (so requests/s is the sum of the nodes' rates at most); latency percentiles are the worst
    node's (percentiles do not add up; the worst is the honest bound)."""
    counts = ("requests", "status_errors", "connect", "read", "write", "timeout")
    result: dict[str, Any] = {key: sum(part[key] for part in parts) for key in counts}
    result["duration_us"] = max(part["duration_us"] for part in parts)
    for key in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us"):
        result[key] = max(part[key] for part in parts)
    result["mean_us"] = sum(p["mean_us"] * p["requests"] for p in parts) / result["requests"]
    return result


def pyload(target: Target, seconds: float, args: argparse.Namespace) -> dict[str, Any]:
    """The fallback without wrk: ``args.connections`` keep-alive connections in a closed loop
    from this process (asyncio + httpx), with wrk's figures (latency percentiles, errors)."""
    import asyncio

    headers = {"Authorization": f"Bearer {target.key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = {"status": 0, "socket": 0}

    async def connection(client: httpx.AsyncClient, until: float) -> None:
        while time.perf_counter() < until:
            started = time.perf_counter()
            try:
                response = await client.post(PATH, content=target.body, headers=headers)
            except httpx.HTTPError:
                errors["socket"] += 1
                continue
            latencies.append(time.perf_counter() - started)
            if response.status_code >= 400:
                errors["status"] += 1

    async def run() -> float:
        limits = httpx.Limits(max_connections=args.connections)
        async with httpx.AsyncClient(
            base_url=target.server.url, limits=limits, timeout=5
        ) as client:
            begun = time.perf_counter()
            until = begun + seconds
            await asyncio.gather(*(connection(client, until) for _ in range(args.connections)))
            return time.perf_counter() - begun

    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = group_cpu_seconds(target.server.pgid)
    elapsed = asyncio.run(run())
    cpu_after = group_cpu_seconds(target.server.pgid)
    after = resource.getrusage(resource.RUSAGE_SELF)
    latencies.sort()

    def pct(p: float) -> int:
        return int(latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] * 1e6)

    return {
        "requests": len(latencies),
        "duration_us": int(elapsed * 1e6),
        "rps": len(latencies) / elapsed,
        "status_errors": errors["status"],
        "socket_errors": errors["socket"],
        "p50_us": pct(50),
        "p90_us": pct(90),
        "p99_us": pct(99),
        "p999_us": pct(99.9),
        "max_us": int(latencies[-1] * 1e6),
        "mean_us": statistics.mean(latencies) * 1e6,
        "server_cpu_s": cpu_after - cpu_before,
        "wrk_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    }


def load(target: Target, script: Path, seconds: float, args: argparse.Namespace) -> dict[str, Any]:
    """wrk when it is installed, else the Python fallback."""
    if shutil.which("wrk") is None:
        return pyload(target, seconds, args)
    return wrk(target, script, seconds, args)


def install_shadow(target: Target, tmp: Path, bundle: str) -> None:
    """Upload ``bundle`` as the shadow version of a running Juncture."""
    admin = next(tmp.glob("*.admin-token")).read_text().strip()
    with httpx.Client(base_url=target.server.url, timeout=10) as client:
        made = client.post(
            "/admin/v1/versions",
            headers={"Authorization": f"Bearer {admin}"},
            json={"files": {"acct.yaml": bundle}, "shadow": True},
        )
        assert made.status_code == 201, made.text


def shadow_settled(target: Target, tmp: Path) -> dict[str, Any]:
    """The node's shadow status once nothing waits (10 s at most)."""
    admin = next(tmp.glob("*.admin-token")).read_text().strip()
    deadline = time.monotonic() + 10
    with httpx.Client(base_url=target.server.url, timeout=10) as client:
        while True:
            status: dict[str, Any] = client.get(
                "/admin/v1/shadow", headers={"Authorization": f"Bearer {admin}"}
            ).json()
            if status["node"]["waiting"] == 0 or time.monotonic() > deadline:
                return status
            time.sleep(0.05)


def run_one(
    kind: str,
    workers: int,
    args: argparse.Namespace,
    mode: str = "batched",
    shadow: str | None = None,
    serve_args: tuple[str, ...] = (),
) -> dict[str, Any]:
    """One timed run of a configuration: ``Juncture`` (SQLite; with ``shadow``, that bundle
    as its shadow version), ``floor``, or ``PostgreSQL ×N`` (N nodes on a fresh database of
    ``args.postgres``)."""
    with tempfile.TemporaryDirectory(prefix="jct-http-") as name:
        tmp = Path(name)
        if kind == "Juncture":
            target = start_juncture(tmp, workers, mode, serve_args=serve_args)
            if shadow is not None:
                install_shadow(target, tmp, shadow)
        elif kind == "cedarpy":
            target = start_cedar(tmp, workers)
        elif kind.startswith("PostgreSQL"):
            nodes = int(kind.rsplit("×", 1)[1])
            url = args.postgres.create_database()
            target = start_postgres_nodes(tmp, workers, url, nodes, mode)
        else:
            target = start_floor(tmp, workers)
        try:
            checked = check_answer(target)
            script = tmp / "load.lua"
            script.write_text(
                WRK_SCRIPT.replace("BODY", target.body.decode()).replace("KEY", target.key)
            )
            warm = load(target, script, args.warmup, args)
            result = load(target, script, args.duration, args)
            if shadow is not None:
                result["shadow"] = shadow_settled(target, tmp)
        finally:
            target.stop()
        result["checked"] = checked
        result["body_bytes"] = len(target.body)
        if target.db is not None or target.url is not None:
            log = decision_log(target.url or target.db)  # type: ignore[arg-type]
            allowed = log.get(f"allow {ACTION}", 0)
            others = {k: v for k, v in log.items() if not k.startswith(f"allow {ACTION}")}
            expected_others = {"allow login": 1, f"step_up {ACTION}": 1}
            counted = warm["requests"] + result["requests"]
            assert others == expected_others, f"unexpected decisions in the log: {others}"
            assert allowed >= counted, f"{allowed} allow records < {counted} requests answered"
            result["log"] = (
                f"{allowed} allow records for {counted} answered requests "
                f"(+{len(target.servers)} check)"
            )
        for problem in (warm, result):
            assert problem["status_errors"] == 0, f"{kind}: non-2xx responses: {problem}"
            assert problem["socket_errors"] == 0, f"{kind}: socket errors: {problem}"
        return result


# -- where the time goes -------------------------------------------------------------------------


def profile(args: argparse.Namespace) -> tuple[list[str], float, int]:
    """cProfile of a 1-worker `juncture serve` (its event-loop thread) under the same load."""
    with tempfile.TemporaryDirectory(prefix="jct-http-profile-") as name:
        tmp = Path(name)
        out = tmp / "serve.prof"
        target = start_juncture(tmp, 1)
        target.server.stop()
        port = free_port()
        cmd = [sys.executable, "-m", "cProfile", "-o", str(out), str(JUNCTURE), "serve"]
        cmd += ["--db", str(target.db), "--bundle", str(tmp / "bundle"), "--port", str(port)]
        # SIGINT: uvicorn re-raises the signal it caught once it has shut down; SIGTERM's
        # default action would end the process before cProfile writes its file.
        server = Server(cmd, tmp, {**os.environ}, port, signal.SIGINT).start()
        target.server = server
        try:
            check_answer(target)
            script = tmp / "load.lua"
            script.write_text(
                WRK_SCRIPT.replace("BODY", target.body.decode()).replace("KEY", target.key)
            )
            result = wrk(target, script, args.profile_seconds, args)
        finally:
            server.stop()
        requests = result["requests"] + 1
        stats = pstats.Stats(str(out))
    return top_table(stats, requests), result["rps"], requests


def _short(path: str) -> str:
    for marker in ("/site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def top_table(stats: pstats.Stats, requests: int, top: int = 25) -> list[str]:
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in entries.values())
    rows = sorted(entries.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    lines = [
        "| function | calls / request | own µs / request | own % | cumulative µs / request |",
        "|---|---:|---:|---:|---:|",
    ]
    for (path, line, func), (_, ncalls, tt, ct, _) in rows:
        where = f"{_short(path)}:{line} {func}" if line else func
        lines.append(
            f"| `{where}` | {ncalls / requests:.1f} | {tt / requests * 1e6:.2f} | "
            f"{tt / total:.0%} | {ct / requests * 1e6:.2f} |"
        )
    return lines


# -- report ----------------------------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values)


def report(
    results: dict[tuple[str, int], list[dict[str, Any]]],
    args: argparse.Namespace,
    info: dict[str, str],
    prof: tuple[list[str], float, int] | None,
) -> str:
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    wrk_version = (wrk_version.splitlines() or ["wrk ?"])[0].split(" [")[0]
    lines = [
        f"## HTTP: session-bound AuthZEN evaluations, {args.connections} connections",
        "",
        *common.machine_lines(info, common.command()),
        f"- load: {wrk_version}, {args.threads} thread(s), {args.connections} keep-alive "
        f"connections, {args.duration:g} s timed after a {args.warmup:g} s warm-up, closed loop, "
        f"127.0.0.1; {args.rounds} round(s), the configurations interleaved per round; "
        "figures are medians over rounds (requests/s range in brackets)",
        "- request: `POST /access/v1/evaluation` with an app key and `context.session_id` "
        f"(`{ACTION}`: TOTP within 15m then allow; the session answered its step-up once), "
        f"{results[('Juncture', args.workers[0])][0]['body_bytes']} bytes of JSON; "
        "the floor receives the same bytes; the peer receives the AuthZEN request with every "
        f"attribute its Cedar policy reads in `context` ({len(CEDAR_BODY)} bytes: a recent "
        "TOTP, a managed device, a trusted IP, low risk: allow)",
        "- servers: `juncture serve --workers N` (uvicorn, httptools, uvloop, log level warning, "
        "SQLite WAL) and the floor `uvicorn floor_app:app --http httptools --loop uvloop "
        "--log-level warning --workers N`: a Starlette route that reads the body and returns a "
        "constant; the peer `uvicorn cedar_app:app` with the same options: a Starlette route "
        "that parses the body and decides with cedarpy (the anchor policy and entities of "
        "`../shared/anchors/`, parsed once; nothing stored or logged); wrk and the server share "
        "the same CPUs",
        "- checked before timing: one request each (Juncture: 200, `decision` true, outcome "
        "`allow`; floor: the constant); during the load: non-2xx responses and socket errors "
        "(all 0); after it: Juncture's decision log holds an `allow` record for every answered "
        "request",
        "",
        "| server | workers | requests/s | p50 ms | p90 ms | p99 ms | p99.9 ms | "
        "server CPU µs / request | wrk CPU µs / request | non-2xx | socket errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workers in args.workers:
        for kind in KINDS:
            runs = results[(kind, workers)]
            rps = [r["rps"] for r in runs]
            name = NAMES[kind]

            def ms(key: str, runs: list[dict[str, Any]] = runs) -> str:
                return f"{med([r[key] for r in runs]) / 1000:.2f}"

            cpu = med([r["server_cpu_s"] / r["requests"] * 1e6 for r in runs])
            wrk_cpu = med([r["wrk_cpu_s"] / r["requests"] * 1e6 for r in runs])
            lines.append(
                f"| {name} | {workers} | {med(rps):,.0f} [{min(rps):,.0f}–{max(rps):,.0f}] | "
                f"{ms('p50_us')} | {ms('p90_us')} | {ms('p99_us')} | {ms('p999_us')} | "
                f"{cpu:.0f} | {wrk_cpu:.0f} | {sum(r['status_errors'] for r in runs)} | "
                f"{sum(r['socket_errors'] for r in runs)} |"
            )
    def rps_of(kind: str, workers: int) -> float:
        return med([r["rps"] for r in results[(kind, workers)]])

    lines += [
        "",
        "| workers | Juncture / peer requests/s (≥ 1.5) | Juncture / floor (≥ 0.45) | "
        "Juncture p99 ms (< 5) | server CPU µs / request (≤ 80) |",
        "|---:|---:|---:|---:|---:|",
    ]
    verdicts: dict[str, bool] = {}

    def mark(ok: bool | None) -> str:
        return "" if ok is None else (" met" if ok else " **not met**")

    for workers in args.workers:
        runs = results[("Juncture", workers)]
        peer = rps_of("Juncture", workers) / rps_of("cedarpy", workers)
        floor = rps_of("Juncture", workers) / rps_of("floor", workers)
        p99 = med([r["p99_us"] for r in runs]) / 1000
        cpu = med([r["server_cpu_s"] / r["requests"] * 1e6 for r in runs])
        checks = {"peer": peer >= 1.5, "floor": floor >= 0.45, "p99": p99 < 5.0}
        if workers == 1:
            checks["cpu"] = cpu <= 80
        for name, ok in checks.items():
            verdicts[name] = verdicts.get(name, True) and ok
        lines.append(
            f"| {workers} | {peer:.2f}×{mark(checks['peer'])} | {floor:.2f}×"
            f"{mark(checks['floor'])} | {p99:.2f}{mark(checks['p99'])} | "
            f"{cpu:.0f}{mark(checks.get('cpu'))} |"
        )
    if 1 in args.workers and 2 in args.workers:
        scaling = rps_of("Juncture", 2) / rps_of("Juncture", 1)
        verdicts["scaling"] = scaling >= 1.6
        lines += ["", f"Two workers / one: {scaling:.2f}× (target ≥ 1.6×"
                  f"{mark(verdicts['scaling'])}; wrk's own CPU per request is in the table:"
                  " where it and the servers fill both CPUs, wrk is the limit)."]  # fmt: skip
    missed = [name for name, ok in verdicts.items() if not ok]
    lines += [
        "",
        "Targets (issue 16: ≥ 1.5× the peer's requests/s, ≥ 0.45× the floor's, p99 < 5 ms at "
        f"{args.connections} connections, ≤ 80 µs of server CPU a request on one worker, two "
        "workers ≥ 1.6× one): "
        + ("**met**." if not missed else f"**not met** ({', '.join(missed)})."),
        "",
        "Per round (requests/s): "
        + "; ".join(
            f"{kind} ×{w}: " + ", ".join(f"{r['rps']:,.0f}" for r in results[(kind, w)])
            for w in args.workers
            for kind in KINDS
        ),
        "",
        "Decision log check, per Juncture run: "
        + "; ".join(
            f"×{w}: " + ", ".join(r["log"] for r in results[("Juncture", w)]) for w in args.workers
        ),
    ]
    if prof is not None:
        table, rps, requests = prof
        lines += [
            "",
            "### Where a Juncture request's time goes (cProfile, 1 worker)",
            "",
            f"`juncture serve` run under `python -m cProfile` (its event-loop thread only; the "
            f"decision-log thread is not in it) with the same load for {args.profile_seconds:g} "
            f"s: {requests} requests at {rps:,.0f}/s with the profiler on. The profiler "
            "inflates call-heavy code: read the shares, not the absolute values. Its clock is "
            "wall time: waits for the GIL held by the decision-log thread land in the call that "
            "released it (sqlite3 `execute`, the transport write in `send`). Top 25 by own time:",
            "",
            *table,
        ]
    return "\n".join(lines) + "\n"


def report_modes(
    results: dict[tuple[str, int], list[dict[str, Any]]],
    args: argparse.Namespace,
    info: dict[str, str],
) -> str:
    """The decision log's modes side by side (``--decision-log batched durable``)."""
    if shutil.which("wrk") is None:
        loader = (
            "the Python fallback (wrk is not installed): asyncio + httpx in the bench process, "
            "sharing the CPUs with the server, so compare the modes with each other only"
        )
    else:
        loader = "wrk"
    lines = [
        f"## HTTP: decision log modes, {args.connections} connections",
        "",
        *common.machine_lines(info, common.command()),
        f"- load: {loader}; {args.connections} keep-alive connections, {args.duration:g} s "
        f"timed after a {args.warmup:g} s warm-up, closed loop, 127.0.0.1; {args.rounds} "
        "round(s), the modes interleaved per round; figures are medians over rounds",
        "- request: as in the `http` section (session-bound `change_email`, allow)",
        "- `batched`: records written by a background thread every 0.2 s after the answers; "
        "`durable`: each answer waits for the commit of its record (synchronous=FULL), "
        "concurrent requests' records committed together (group commit)",
        "- checked after each run: the decision log holds an `allow` record for every answered "
        "request; non-2xx responses and socket errors are 0",
        "",
        "| decision log | workers | requests/s | p50 ms | p90 ms | p99 ms | p99.9 ms | "
        "server CPU µs / request | non-2xx | socket errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workers in args.workers:
        for mode in args.decision_log:
            runs = results[(mode, workers)]
            rps = [r["rps"] for r in runs]

            def ms(key: str, runs: list[dict[str, Any]] = runs) -> str:
                return f"{med([r[key] for r in runs]) / 1000:.2f}"

            cpu = med([r["server_cpu_s"] / r["requests"] * 1e6 for r in runs])
            lines.append(
                f"| `{mode}` | {workers} | {med(rps):,.0f} [{min(rps):,.0f}–{max(rps):,.0f}] | "
                f"{ms('p50_us')} | {ms('p90_us')} | {ms('p99_us')} | {ms('p999_us')} | "
                f"{cpu:.0f} | {sum(r['status_errors'] for r in runs)} | "
                f"{sum(r['socket_errors'] for r in runs)} |"
            )
    if shutil.which("wrk") is None:
        lines += [
            "",
            "With the Python fallback the client, not the server, bounds requests/s and "
            "latency (it takes most of a CPU of the two); read the server CPU per request.",
        ]
    lines += [
        "",
        "Decision log check, per run: "
        + "; ".join(
            f"{mode} ×{w}: " + ", ".join(r["log"] for r in results[(mode, w)])
            for w in args.workers
            for mode in args.decision_log
        ),
    ]
    return "\n".join(lines) + "\n"


def publish(section: str, body: str, args: argparse.Namespace) -> None:
    """Print a section's table and, unless ``--no-write``, write it into RESULTS.md."""
    print(body)
    if not args.no_write:
        common.update_section(section, body)
        print(f"[bench] wrote {common.RESULTS}", file=sys.stderr)


def compare_shadow(args: argparse.Namespace) -> None:
    info = common.machine()
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for round_ in range(args.rounds):
        for workers in args.workers:
            order = list(SHADOWS.items())
            if round_ % 2:  # alternate the order: a drift within a round favours no one
                order.reverse()
            for label, (bundle, serve_args) in order:
                result = run_one("Juncture", workers, args, shadow=bundle, serve_args=serve_args)
                if bundle is not None:
                    node = result["shadow"]["node"]
                    decided = sum(node["transitions"].values())
                    answered = result["requests"]
                    assert node["waiting"] == 0, f"the shadow did not settle: {node}"
                    assert node["errors"] == node["unrecorded"] == 0, node
                    assert decided + node["dropped"] >= answered, (decided, answered, node)
                results.setdefault((label, workers), []).append(result)
                print(
                    f"[bench] round {round_ + 1} shadow {label} ×{workers}: "
                    f"{result['rps']:,.0f} req/s, p99 {result['p99_us'] / 1000:.2f} ms, "
                    f"{result['server_cpu_s'] / result['requests'] * 1e6:.0f} µs/request",
                    file=sys.stderr,
                )
    publish("http-shadow", report_shadow(results, args, info), args)


def report_shadow(
    results: dict[tuple[str, int], list[dict[str, Any]]],
    args: argparse.Namespace,
    info: dict[str, str],
) -> str:
    """Juncture without and with a shadow version (``--shadow``)."""
    lines = [
        f"## HTTP: the cost of a shadow version, {args.connections} connections",
        "",
        *common.machine_lines(info, common.command()),
        f"- load: wrk, {args.connections} keep-alive connections, {args.duration:g} s timed "
        f"after a {args.warmup:g} s warm-up, closed loop, 127.0.0.1; {args.rounds} round(s), "
        "the configurations interleaved per round (their order alternating); figures are "
        "medians over rounds, and a ratio is the median of each round's against that round's "
        "`none`",
        "- request: as in the `http` section (session-bound `change_email`, allow)",
        "- shadow versions (`juncture publish --shadow`, service/shadow.py): `another checkpoint "
        "changed` changes `login` only (`change_email`'s checkpoint is the same in both "
        "versions: counted equal, not decided again); `same answers` "
        "decides `change_email` with a 10-minute TOTP window where the active version has 15 "
        "(the same answer: nothing recorded); `every answer differs` denies it (every decision "
        "an `allow->deny`), its differences recorded at the default rate (200 a second, the "
        "rest counted: `over rate`) or, `every one recorded`, with `--shadow-record-rate 0`. "
        "The shadow decides on the server's event loop between requests, a batch every 50 ms, "
        "and records on a thread of its own; its CPU is in the server's",
        "- checked after each shadowed run: the shadow decided every answered request or counted "
        "it dropped (its queue full), no error, nothing left waiting",
        "",
        "| shadow | workers | requests/s | p50 ms | p99 ms | server CPU µs / request | CPU "
        "against none (≤ 1.15; median of the rounds' ratios, their range) | decided again | "
        "recorded | over rate | dropped |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workers in args.workers:
        bases = [r["server_cpu_s"] / r["requests"] * 1e6 for r in results[("none", workers)]]
        for label in SHADOWS:
            runs = results[(label, workers)]
            rps = [r["rps"] for r in runs]
            per_round = [r["server_cpu_s"] / r["requests"] * 1e6 for r in runs]
            cpu = med(per_round)
            # Each round's run against that round's baseline: the machine drifts across rounds.
            ratios = [c / b for c, b in zip(per_round, bases, strict=True)]
            decided = recorded = over = dropped = "–"
            if "shadow" in runs[0]:
                nodes = [r["shadow"]["node"] for r in runs]
                decided = f"{sum(sum(n['transitions'].values()) for n in nodes):,}"
                recorded = f"{sum(sum(r['shadow']['differences'].values()) for r in runs):,}"
                over = f"{sum(n['over_rate'] for n in nodes):,}"
                dropped = f"{sum(n['dropped'] for n in nodes):,}"
            ratio = med(ratios)
            verdict = "" if label == "none" else (" met" if ratio <= 1.15 else " **not met**")
            spread = "" if label == "none" else f" [{min(ratios):.2f}–{max(ratios):.2f}]"
            lines.append(
                f"| {label} | {workers} | {med(rps):,.0f} [{min(rps):,.0f}–{max(rps):,.0f}] | "
                f"{med([r['p50_us'] for r in runs]) / 1000:.2f} | "
                f"{med([r['p99_us'] for r in runs]) / 1000:.2f} | {cpu:.0f} | "
                f"{ratio:.2f}×{verdict}{spread} | {decided} | {recorded} | {over} | {dropped} |"
            )
    return "\n".join(lines) + "\n"


def compare_modes(args: argparse.Namespace) -> None:
    info = common.machine()
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for round_ in range(args.rounds):
        for workers in args.workers:
            for mode in args.decision_log:
                result = run_one("Juncture", workers, args, mode)
                results.setdefault((mode, workers), []).append(result)
                print(
                    f"[bench] round {round_ + 1} {mode} ×{workers}: {result['rps']:,.0f} req/s, "
                    f"p50 {result['p50_us'] / 1000:.2f} ms, p99 {result['p99_us'] / 1000:.2f} ms",
                    file=sys.stderr,
                )
    publish("http-decision-log", report_modes(results, args, info), args)


def report_postgres(
    results: dict[tuple[str, int], list[dict[str, Any]]],
    kinds: list[str],
    args: argparse.Namespace,
    info: dict[str, str],
) -> str:
    """SQLite and PostgreSQL side by side (``--backends sqlite postgres``)."""
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    wrk_version = (wrk_version.splitlines() or ["wrk ?"])[0].split(" [")[0]
    lines = [
        f"## HTTP on PostgreSQL: one node and two nodes beside SQLite, {args.connections} "
        "connections",
        "",
        *common.machine_lines(info, common.command()),
        f"- load: {wrk_version}, {args.threads} thread(s) per wrk, {args.connections} keep-alive "
        f"connections in all, {args.duration:g} s timed after a {args.warmup:g} s warm-up, "
        f"closed loop, 127.0.0.1; {args.rounds} round(s), the configurations interleaved per "
        "round; figures are medians over rounds (requests/s range in brackets). The machine's "
        "2 CPUs are shared by wrk, the servers, PostgreSQL and possibly another developer's "
        "test run: read the medians and the ranges",
        "- request: as in the `http` section (session-bound `change_email`, allow)",
        "- SQLite: `juncture serve --workers N` on a SQLite file (WAL). PostgreSQL: a server "
        "started for the run as the tests start it (`tests/postgres.py`: Debian's binaries, "
        "fsync off, loopback TCP), a fresh database per run; `juncture serve --db "
        "postgresql://… --workers N` per node. ×2 nodes: two such servers on the same "
        "database (the second started on what the first stored), loaded at once by two wrk "
        "processes, one per node, each with half the connections; requests summed, latency "
        "percentiles the worse node's, server CPU both nodes' process groups (PostgreSQL's own "
        "CPU is not in it)",
        "- PostgreSQL nodes run as `juncture serve` starts them: app keys, the active version and "
        "sessions from each node's caches, kept exact by the database's notifications "
        "(store/postgres/cached.py), and a decision on the event loop until it would wait on the "
        "database (`--store-calls auto`: loop-first, api/boundary.py)",
        "- checked before timing: one request per node (200, `decision` true, outcome "
        "`allow`); during the load: non-2xx responses and socket errors (all 0); after it: the "
        "decision log (SQLite file, or the PostgreSQL table) holds an `allow` record for every "
        "answered request",
        "",
        "| store | nodes × workers | requests/s | p50 ms | p90 ms | p99 ms | p99.9 ms | "
        "server CPU µs / request | wrk CPU µs / request | non-2xx | socket errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for workers in args.workers:
        for kind in kinds:
            runs = results[(kind, workers)]
            rps = [r["rps"] for r in runs]
            nodes = int(kind.rsplit("×", 1)[1]) if "×" in kind else 1
            store = "PostgreSQL" if kind.startswith("PostgreSQL") else "SQLite"

            def ms(key: str, runs: list[dict[str, Any]] = runs) -> str:
                return f"{med([r[key] for r in runs]) / 1000:.2f}"

            cpu = med([r["server_cpu_s"] / r["requests"] * 1e6 for r in runs])
            wrk_cpu = med([r["wrk_cpu_s"] / r["requests"] * 1e6 for r in runs])
            lines.append(
                f"| {store} | {nodes} × {workers} | {med(rps):,.0f} "
                f"[{min(rps):,.0f}–{max(rps):,.0f}] | {ms('p50_us')} | {ms('p90_us')} | "
                f"{ms('p99_us')} | {ms('p999_us')} | {cpu:.0f} | {wrk_cpu:.0f} | "
                f"{sum(r['status_errors'] for r in runs)} | "
                f"{sum(r['socket_errors'] for r in runs)} |"
            )
    if "Juncture" in kinds and "PostgreSQL ×1" in kinds:
        lines += [
            "",
            "| workers | one node: PostgreSQL / SQLite requests/s | target ≥ 0.70 |",
            "|---:|---:|---|",
        ]
        verdicts = []
        for workers in args.workers:
            sqlite = med([r["rps"] for r in results[("Juncture", workers)]])
            pg = med([r["rps"] for r in results[("PostgreSQL ×1", workers)]])
            ratio = pg / sqlite
            verdicts.append(ratio >= 0.70)
            lines.append(
                f"| {workers} | {ratio:.2f}× | {'met' if ratio >= 0.70 else '**not met**'} |"
            )
        lines += [
            "",
            "Target (one node on PostgreSQL at ≥ 70% of the same node's requests/s on SQLite): "
            f"**{'met' if all(verdicts) else 'not met'}**.",
        ]
    lines += [
        "",
        "Per round (requests/s): "
        + "; ".join(
            f"{kind} ×{w} workers: " + ", ".join(f"{r['rps']:,.0f}" for r in results[(kind, w)])
            for w in args.workers
            for kind in kinds
        ),
        "",
        "Decision log check, per run: "
        + "; ".join(
            f"{kind} ×{w} workers: " + ", ".join(r["log"] for r in results[(kind, w)])
            for w in args.workers
            for kind in kinds
        ),
    ]
    return "\n".join(lines) + "\n"


def compare_backends(args: argparse.Namespace) -> None:
    """``--backends`` with postgres: SQLite (when asked) and PostgreSQL with 1 and 2 nodes,
    interleaved per round, in the section `http-postgres` (the `http` section is untouched)."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    sys.path.append(str(_HERE.parent / "tests"))
    from postgres import PostgresServer

    kinds = (["Juncture"] if "sqlite" in args.backends else []) + [
        "PostgreSQL ×1",
        "PostgreSQL ×2",
    ]
    info = common.machine()
    args.postgres = PostgresServer()
    args.postgres.start()
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    try:
        for round_ in range(args.rounds):
            for workers in args.workers:
                for kind in kinds:
                    result = run_one(kind, workers, args)
                    results.setdefault((kind, workers), []).append(result)
                    print(
                        f"[bench] round {round_ + 1} {kind} ×{workers} workers: "
                        f"{result['rps']:,.0f} req/s, p50 {result['p50_us'] / 1000:.2f} ms, "
                        f"p99 {result['p99_us'] / 1000:.2f} ms, server CPU "
                        f"{result['server_cpu_s'] / result['requests'] * 1e6:.0f} µs/request",
                        file=sys.stderr,
                    )
    finally:
        args.postgres.stop()
        args.postgres.remove()
    publish("http-postgres", report_postgres(results, kinds, args, info), args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds timed per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of untimed load")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile-seconds", type=float, default=10.0, help="0: no profile")
    parser.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    parser.add_argument(
        "--decision-log",
        nargs="+",
        choices=["batched", "durable"],
        help="compare these decision log modes (Juncture only; wrk optional)",
    )
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=["sqlite", "postgres"],
        default=["sqlite"],
        help="with postgres: SQLite beside PostgreSQL (1 and 2 nodes), section http-postgres",
    )
    parser.add_argument(
        "--shadow",
        action="store_true",
        help="Juncture without and with a shadow version, section http-shadow",
    )
    args = parser.parse_args()
    if args.shadow:
        compare_shadow(args)
        return
    if args.decision_log:
        compare_modes(args)
        return
    if "postgres" in args.backends:
        compare_backends(args)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")

    info = common.machine()
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for round_ in range(args.rounds):
        for workers in args.workers:
            for kind in KINDS:
                result = run_one(kind, workers, args)
                results.setdefault((kind, workers), []).append(result)
                print(
                    f"[bench] round {round_ + 1} {kind} ×{workers}: {result['rps']:,.0f} req/s, "
                    f"p50 {result['p50_us'] / 1000:.2f} ms, p99 {result['p99_us'] / 1000:.2f} ms",
                    file=sys.stderr,
                )
    prof = profile(args) if args.profile_seconds > 0 else None
    publish("http", report(results, args, info, prof), args)


if __name__ == "__main__":
    main()
