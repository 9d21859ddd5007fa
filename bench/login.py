"""Full password logins per second per core over HTTP, and the latency of decisions on the same
node during a burst of logins.

Setup, per run: `juncture serve --workers 1 --hash-concurrency N` on a SQLite file in a temp
dir (a free loopback port, its own process group), the journey below with the password
method's argon2id parameters either at Juncture's defaults (OWASP's minimum: 19 MiB, t=2, p=1)
or at argon2-cffi's own defaults (64 MiB, t=3, p=4; Juncture's until then), one user per login
loop enrolled with a password through the admin API, and one more user logged in beforehand
(the probe's session).

A login: `POST /v1/sessions` (the `login` checkpoint answers `step_up` with a password
challenge), `POST /v1/challenges/{id}/verify` with the password (`allow`), then `POST
/access/v1/evaluation` for `read` in the new session (a checkpoint the password satisfies:
decision true). Every answer is checked; a login counts when all three answered as expected.

Measured: --logins closed loops (asyncio + httpx in this process, keep-alive connections, each
loop logging its own user in, again and again) for --duration seconds after a --warmup run
that is not counted. Logins per second per core: the logins over the server process group's
CPU seconds in the window (user + system, every thread: the hashing threads and argon2's lanes
too). Logins per second: over wall time, on a machine whose CPUs the load generator and the
probe share. Meanwhile a separate process (the probe) asks a decision for the logged-in session
(`read`, session-bound, logged) every --probe-interval ms over one keep-alive connection; a
latency runs from the moment the request was due, so a stall also counts against the requests
it delayed. The probe also runs alone for --idle seconds first (the idle figure). Rounds
interleave the configurations; figures are medians over rounds.

Checked after each run (the server stopped): the decision log holds an `allow login` for every
login counted and an `allow read` for every login and probe answer; non-2xx answers (429
`auth.busy` included) and transport errors are 0.

    .venv/bin/python bench/login.py [--duration 15] [--warmup 3] [--rounds 3] [--logins 8]
        [--hash-concurrency 1 2] [--probe-interval 5] [--idle 3] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
import _common as common  # noqa: E402
import argon2  # noqa: E402
import httpx  # noqa: E402
from _common import Server, free_port, group_cpu_seconds  # noqa: E402

JUNCTURE = Path(sys.executable).with_name("juncture")
PASSWORD = "correct horse battery staple"
DECISION = "/access/v1/evaluation"

#: The argon2id parameters compared: the password method's defaults, and argon2-cffi's own.
PARAMETERS = {
    "defaults": {},
    "argon2-cffi": {
        "time_cost": argon2.DEFAULT_TIME_COST,
        "memory_cost": argon2.DEFAULT_MEMORY_COST,
        "parallelism": argon2.DEFAULT_PARALLELISM,
    },
}
NAMES = {
    "defaults": "**Juncture's defaults** (OWASP minimum: 19 MiB, t=2, p=1)",
    "argon2-cffi": "argon2-cffi's defaults (64 MiB, t=3, p=4)",
}

BUNDLE = """\
journey: acct
applies_to: [bench]
methods:
  password: {kind: password, min_length: 12OPTIONS}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {scopes: [app], ttl: 1h}}]
  read: [{require: {any: [password]}}, {allow: {}}]
  "*": [{deny: unknown_action}]
"""

#: Targets (issue 16): logins per second per core with the defaults, decision p99 meanwhile.
TARGET_PER_CORE = 30.0
TARGET_P99_MS = 10.0


def bundle(parameters: str) -> str:
    options = "".join(f", {name}: {value}" for name, value in PARAMETERS[parameters].items())
    return BUNDLE.replace("OPTIONS", options)


def decision_body(user: str, session: str) -> dict[str, Any]:
    return {
        "subject": {"type": "user", "id": user},
        "action": {"name": "read"},
        "resource": {"type": "account", "id": user},
        "context": {"session_id": session},
    }


@dataclass
class Node:
    server: Server
    db: Path
    key: str
    users: list[str]
    probe_body: dict[str, Any]


def start(tmp: Path, parameters: str, hash_concurrency: int, users: int) -> Node:
    """The node, its app, ``users`` users with a password, and the probe's logged-in session."""
    (tmp / "bundle").mkdir()
    (tmp / "bundle" / "acct.yaml").write_text(bundle(parameters))
    db = tmp / "j.db"
    port = free_port()
    args = [str(JUNCTURE), "serve", "--db", str(db), "--bundle", str(tmp / "bundle")]
    args += ["--port", str(port), "--workers", "1", "--hash-concurrency", str(hash_concurrency)]
    server = Server(args, tmp, {**os.environ}, port).start()
    try:
        token = next(tmp.glob("*.admin-token")).read_text().strip()
        names = [f"user{n}" for n in range(users)]
        with httpx.Client(base_url=server.url, timeout=30) as client:
            admin = {"Authorization": f"Bearer {token}"}
            made = client.post("/admin/v1/apps", headers=admin, json={"name": "bench"})
            assert made.status_code == 201, made.text
            key = made.json()["key"]
            for name in [*names, "probe"]:
                added = client.post("/admin/v1/subjects", headers=admin, json={"id": name})
                assert added.status_code == 201, added.text
                enrolled = client.post(
                    f"/admin/v1/subjects/{name}/authenticators",
                    headers=admin,
                    json={"method": "password", "password": PASSWORD},
                )
                assert enrolled.status_code == 201, enrolled.text
        session = asyncio.run(_probe_session(server.url, key))
    except BaseException:
        server.stop()
        raise
    return Node(server, db, key, names, decision_body("probe", session))


async def _probe_session(url: str, key: str) -> str:
    async with httpx.AsyncClient(
        base_url=url, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as client:
        session, _ = await login(client, "probe")
        return session


async def login(client: httpx.AsyncClient, user: str) -> tuple[str, str | None]:
    """One full login of ``user``: its session id, and what went wrong (None: nothing)."""
    started = await client.post("/v1/sessions", json={"subject": {"type": "user", "id": user}})
    if started.status_code != 201:
        return "", f"session {started.status_code}: {started.text[:200]}"
    body = started.json()
    session = body["session"]["id"]
    if body["decision"]["outcome"] != "step_up":
        return session, f"session start: {body['decision']['outcome']}"
    challenge = body["decision"]["challenge"]["id"]
    verified = await client.post(
        f"/v1/challenges/{challenge}/verify", json={"method": "password", "proof": PASSWORD}
    )
    if verified.status_code != 200:
        return session, f"verify {verified.status_code}: {verified.text[:200]}"
    if verified.json()["decision"]["outcome"] != "allow":
        return session, f"verify: {verified.json()['decision']['outcome']}"
    decided = await client.post(DECISION, json=decision_body(user, session))
    if decided.status_code != 200 or decided.json()["decision"] is not True:
        return session, f"decision {decided.status_code}: {decided.text[:200]}"
    return session, None


def load(node: Node, loops: int, seconds: float) -> dict[str, Any]:
    """``loops`` closed login loops for ``seconds``: logins, their latencies, CPU, errors."""
    latencies: list[float] = []
    errors: list[str] = []

    async def loop(client: httpx.AsyncClient, user: str, until: float) -> None:
        while time.perf_counter() < until:
            began = time.perf_counter()
            try:
                _, problem = await login(client, user)
            except httpx.HTTPError as error:
                problem = f"transport: {type(error).__name__}"
            if problem is None:
                latencies.append(time.perf_counter() - began)
            else:
                errors.append(problem)

    async def run() -> float:
        limits = httpx.Limits(max_connections=loops, max_keepalive_connections=loops)
        headers = {"Authorization": f"Bearer {node.key}"}
        async with httpx.AsyncClient(
            base_url=node.server.url, limits=limits, timeout=30, headers=headers
        ) as client:
            began = time.perf_counter()
            until = began + seconds
            await asyncio.gather(*(loop(client, node.users[n], until) for n in range(loops)))
            return time.perf_counter() - began

    cpu_before = group_cpu_seconds(node.server.pgid)
    own_before = resource.getrusage(resource.RUSAGE_SELF)
    elapsed = asyncio.run(run())
    own_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = group_cpu_seconds(node.server.pgid) - cpu_before
    own = (own_after.ru_utime + own_after.ru_stime) - (own_before.ru_utime + own_before.ru_stime)
    return {
        "logins": len(latencies),
        "elapsed_s": elapsed,
        "server_cpu_s": cpu,
        "client_cpu_s": own,
        "latencies": latencies,
        "errors": errors,
    }


# -- the probe: decisions of a logged-in session, in its own process ------------------------------


def probe(url: str, key: str, body: dict[str, Any], interval: float, pipe: Connection) -> None:
    """For each number of seconds received on ``pipe`` (None: stop): a decision every
    ``interval`` s for that long; sends back the latencies (from each request's due time) and
    the problems."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, timeout=30, headers=headers) as client:
        client.post(DECISION, json=body)  # the connection is open before the first run
        while (seconds := pipe.recv()) is not None:
            latencies: list[float] = []
            problems: list[str] = []
            began = time.perf_counter()
            due = began
            while due < began + seconds:
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                try:
                    answer = client.post(DECISION, json=body)
                    if answer.status_code != 200 or answer.json()["decision"] is not True:
                        problems.append(f"{answer.status_code}: {answer.text[:200]}")
                except httpx.HTTPError as error:
                    problems.append(f"transport: {type(error).__name__}")
                latencies.append(time.perf_counter() - due)
                due += interval
            pipe.send((latencies, problems))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def decision_log(db: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT outcome || ' ' || action, COUNT(*) FROM decisions GROUP BY 1"
        ).fetchall()
    return {name: count for name, count in rows}


def run_one(parameters: str, hash_concurrency: int, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="jct-login-") as name:
        tmp = Path(name)
        node = start(tmp, parameters, hash_concurrency, args.logins)
        ours, theirs = multiprocessing.get_context("spawn").Pipe()
        prober = multiprocessing.get_context("spawn").Process(
            target=probe,
            args=(node.server.url, node.key, node.probe_body, args.probe_interval / 1000, theirs),
        )
        prober.start()
        try:
            cpu_before = group_cpu_seconds(node.server.pgid)
            ours.send(args.idle)  # alone: the idle figure, and the server CPU of a decision
            idle, idle_problems = ours.recv()
            probe_cpu_s = (group_cpu_seconds(node.server.pgid) - cpu_before) / len(idle)
            warm = load(node, args.logins, args.warmup)
            ours.send(args.duration)  # beside the timed logins
            result = load(node, args.logins, args.duration)
            burst, problems = ours.recv()
            ours.send(None)
            prober.join(30)
        finally:
            if prober.is_alive():
                prober.kill()
            node.server.stop()
        log = decision_log(node.db)
    counted = warm["logins"] + result["logins"]
    unexpected = {k: v for k, v in log.items() if k not in ("allow login", "step_up login",
                                                             "allow read")}  # fmt: skip
    assert not unexpected, f"unexpected decisions in the log: {unexpected}"
    assert log.get("allow login", 0) >= counted + 1, (log, counted)
    assert log.get("allow read", 0) >= counted + 1 + len(idle) + len(burst), (log, counted)
    for problem in (warm["errors"], result["errors"], idle_problems, problems):
        assert not problem, f"{parameters}, {hash_concurrency} thread(s): {problem[:5]}"
    result["probe"] = burst
    result["idle"] = idle
    result["probe_cpu_s"] = probe_cpu_s * len(burst)  # the probe's share of the server's CPU
    result["log"] = (
        f"{log.get('allow login', 0)} `allow login` and {log.get('allow read', 0)} "
        f"`allow read` records for {counted} logins, {len(idle) + len(burst)} probes"
    )
    return result


def hash_cpu_ms(parameters: str, times: int = 10) -> float:
    """The median CPU of one argon2id verification in this process (every lane's thread)."""
    options = {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1}
    options.update(PARAMETERS[parameters])
    hasher = argon2.PasswordHasher(type=argon2.Type.ID, **options)
    stored = hasher.hash(PASSWORD)
    spent = []
    for _ in range(times):
        before = time.process_time()
        hasher.verify(stored, PASSWORD)
        spent.append(time.process_time() - before)
    return statistics.median(spent) * 1000


# -- report ---------------------------------------------------------------------------------------


def report(
    results: dict[tuple[str, int], list[dict[str, Any]]],
    args: argparse.Namespace,
    info: dict[str, str],
    hashes: dict[str, float],
) -> str:
    med = statistics.median
    lines = [
        "## Password logins per core over HTTP, and decisions during a login burst",
        "",
        *common.machine_lines(info, common.command()),
        "- server: `juncture serve --workers 1 --hash-concurrency N` on SQLite (WAL), one node; "
        "the password method with the argon2id parameters of the row",
        "- a login: `POST /v1/sessions` (step_up, a password challenge), `POST "
        "/v1/challenges/{id}/verify` with the password (allow), `POST /access/v1/evaluation` "
        "for `read` in the new session (decision true); every answer checked",
        f"- load: {args.logins} closed login loops (asyncio + httpx in the bench process, one "
        f"user each, keep-alive), {args.duration:g} s timed after a {args.warmup:g} s warm-up; "
        f"{args.rounds} round(s), the configurations interleaved per round; figures are medians "
        "over rounds (range in brackets)",
        "- logins/s/core: logins over the server process group's CPU seconds (every thread), "
        "the probe's decisions included (conservative); server CPU a login, net: without them "
        "(the server CPU a decision took in the idle run, times the decisions probed during the "
        "burst, deducted); logins/s: over wall time, the machine's CPUs shared with the load "
        "generator and the probe",
        f"- decisions during the burst: a separate process asks a session-bound, logged "
        f"decision (`read`) every {args.probe_interval:g} ms on one keep-alive connection while "
        "the logins run; latency from each request's due time; idle: the same probe alone for "
        f"{args.idle:g} s before the burst",
        "- argon2id verification alone, CPU in the bench process (median of 10): "
        + "; ".join(f"{NAMES[p]}: {hashes[p]:.1f} ms" for p in PARAMETERS),
        "",
        "| argon2id parameters | hash threads | logins/s/core | logins/s | server CPU ms / login "
        "(net) | login p50 / p99 ms | decision p50 / p99 ms during the burst | decision p99 ms "
        "idle | load generator CPU ms / login |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def net_ms(run: dict[str, Any]) -> float:
        return (run["server_cpu_s"] - run["probe_cpu_s"]) / run["logins"] * 1000

    per_core: dict[tuple[str, int], float] = {}
    p99: dict[tuple[str, int], float] = {}
    for threads in args.hash_concurrency:
        for parameters in PARAMETERS:
            runs = results[(parameters, threads)]
            cores = [r["logins"] / r["server_cpu_s"] for r in runs]
            rates = [r["logins"] / r["elapsed_s"] for r in runs]
            per_core[(parameters, threads)] = med(cores)
            p99[(parameters, threads)] = med([percentile(r["probe"], 99) * 1000 for r in runs])

            def ms(key: str, p: float, runs: list[dict[str, Any]] = runs) -> str:
                return f"{med([percentile(r[key], p) * 1000 for r in runs]):.1f}"

            lines.append(
                f"| {NAMES[parameters]} | {threads} | {med(cores):.1f} "
                f"[{min(cores):.1f}–{max(cores):.1f}] | {med(rates):.1f} "
                f"[{min(rates):.1f}–{max(rates):.1f}] | "
                f"{med([r['server_cpu_s'] / r['logins'] * 1000 for r in runs]):.1f} "
                f"({med([net_ms(r) for r in runs]):.1f}) | "
                f"{ms('latencies', 50)} / {ms('latencies', 99)} | "
                f"{ms('probe', 50)} / {ms('probe', 99)} | {ms('idle', 99)} | "
                f"{med([r['client_cpu_s'] / r['logins'] * 1000 for r in runs]):.1f} |"
            )
    default = args.hash_concurrency[0]
    ours, theirs = per_core[("defaults", default)], per_core[("argon2-cffi", default)]
    met_core = ours >= TARGET_PER_CORE
    met_p99 = p99[("defaults", default)] < TARGET_P99_MS
    others = ", ".join(
        f"{p99[('defaults', t)]:.1f} ms with {t} hash threads" for t in args.hash_concurrency[1:]
    )
    lines += [
        "",
        f"Targets (issue 16), with the defaults and {default} hash thread(s) (`juncture serve`'s "
        f"default on this machine): {ours:.1f} logins/s/core (≥ {TARGET_PER_CORE:g}: "
        f"{'met' if met_core else '**not met**'}), {ours / theirs:.1f}× the logins per core of "
        f"argon2-cffi's defaults; decision p99 during the burst {p99[('defaults', default)]:.1f} "
        f"ms (< {TARGET_P99_MS:g} ms: {'met' if met_p99 else '**not met**'})"
        + (f"; {others}." if others else "."),
        "",
        "Per round (logins/s/core): "
        + "; ".join(
            f"{p} ×{t}: "
            + ", ".join(f"{r['logins'] / r['server_cpu_s']:.1f}" for r in results[(p, t)])
            for t in args.hash_concurrency
            for p in PARAMETERS
        ),
        "",
        "Decision log check, per run: "
        + "; ".join(
            f"{p} ×{t}: " + ", ".join(r["log"] for r in results[(p, t)])
            for t in args.hash_concurrency
            for p in PARAMETERS
        ),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds timed per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of untimed logins")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logins", type=int, default=8, help="concurrent login loops")
    parser.add_argument(
        "--hash-concurrency",
        type=int,
        nargs="+",
        default=[max(1, (os.cpu_count() or 2) // 2), os.cpu_count() or 2],
        help="hashing threads of the node (the first: the verdict's; default: serve's, then "
        "one per CPU)",
    )
    parser.add_argument("--probe-interval", type=float, default=5.0, help="ms between probes")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of the idle probe")
    parser.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    args = parser.parse_args()
    args.hash_concurrency = list(dict.fromkeys(args.hash_concurrency))

    info = common.machine()
    hashes = {parameters: hash_cpu_ms(parameters) for parameters in PARAMETERS}
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for round_ in range(args.rounds):
        for threads in args.hash_concurrency:
            for parameters in PARAMETERS:
                result = run_one(parameters, threads, args)
                results.setdefault((parameters, threads), []).append(result)
                print(
                    f"[bench] round {round_ + 1} {parameters} ×{threads}: "
                    f"{result['logins'] / result['server_cpu_s']:.1f} logins/s/core, "
                    f"{result['logins'] / result['elapsed_s']:.1f} logins/s, decision p99 "
                    f"{percentile(result['probe'], 99) * 1000:.1f} ms",
                    file=sys.stderr,
                )
    body = report(results, args, info, hashes)
    print(body)
    if not args.no_write:
        common.update_section("login", body)
        print(f"[bench] wrote {common.RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
