"""Requests/s and added latency of forward auth: nginx + Juncture (`auth_request`, the config of
docs/proxy.md as written) against the same nginx without `auth_request`, in front of the same
upstream, in the same run.

Three nginx processes (Debian's, one worker each, started by tests/nginx.py as the tests start
them): the upstream (answers `200 ok` to every request), nginx with the block of docs/proxy.md
(its ports and the app's key put in), and nginx with the same block less its `auth_request`
and `error_page 401` lines (everything else, the identity headers set from empty variables
included, the same). One `juncture serve` (SQLite in a temp dir, --workers workers) with an app
whose origin is the auth nginx, a journey whose `routes:` send `GET /` to a checkpoint that
needs a password and allows, and a user logged in through the hosted login page (through
nginx, as a browser does): its `juncture_session` cookie is on every request, to both nginx.
Checked before timing: `/` with the cookie is the upstream's `200 ok` through both nginx, and
without it a 302 to the login page through the auth nginx.

Load: `wrk`, closed loop, --connections keep-alive connections for --duration seconds, after
a --warmup run per configuration that is not counted; the two configurations interleaved per
round, --rounds rounds; the figures are the medians over rounds. During the load: wrk's count
of responses with a status of 400 or more and its socket errors (reported; they must be 0).
After it: Juncture's decision log holds an `allow browse` record for at least every response
wrk counted through nginx + Juncture (a redirect to the login page makes no such record).

    .venv/bin/python bench/forward_auth.py [--duration 10] [--rounds 3] [--connections 16]
        [--workers 1] [--no-write]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))
sys.path.append(str(_HERE.parent / "tests"))

import _common as common  # noqa: E402
import httpx  # noqa: E402
from _common import Server, free_port  # noqa: E402

from nginx import NGINX, Nginx, configured, docs_block  # noqa: E402 (tests/nginx.py)

JUNCTURE = Path(sys.executable).with_name("juncture")
PASSWORD = "correct horse battery staple"

JOURNEY = """\
journey: shop
applies_to: [shop-web]
subjects: [user]
methods:
  password: {kind: password, min_length: 8}
routes:
  shop-web:
    match:
      - {path: /, methods: [GET], checkpoint: browse}
checkpoints:
  login:
    - require: {any: [password]}
    - allow: {}
  browse:
    - require: {any: [password]}
    - allow: {scopes: [shop]}
  "*": [{deny: unknown_action}]
"""

WRK_SCRIPT = """\
wrk.method = "GET"
wrk.headers["Cookie"] = "COOKIE"

done = function(summary, latency, requests)
  io.write(string.format(
    "WRKJSON {\\"requests\\": %d, \\"duration_us\\": %d, \\"status_errors\\": %d, "
    .. "\\"connect\\": %d, \\"read\\": %d, \\"write\\": %d, \\"timeout\\": %d, "
    .. "\\"p50_us\\": %d, \\"p99_us\\": %d}\\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""

CONFIGS = ("nginx alone", "nginx + Juncture")


def without_auth(block: str) -> str:
    """The block less the lines that ask Juncture (auth_request, its error page)."""
    kept = [
        line
        for line in block.splitlines()
        if not re.match(r"\s*(auth_request /_juncture;|error_page 401 )", line)
    ]
    out = "\n".join(kept) + "\n"
    if "auth_request /" in out or out == block:
        raise RuntimeError("the nginx block changed: cannot take auth_request out")
    return out


def start_juncture(tmp: Path, workers: int) -> tuple[Server, str]:
    bundle = tmp / "bundle"
    bundle.mkdir()
    (bundle / "shop.yaml").write_text(JOURNEY)
    port = free_port()
    args = [str(JUNCTURE), "serve", "--db", str(tmp / "j.db"), "--bundle", str(bundle)]
    args += ["--port", str(port), "--workers", str(workers)]
    server = Server(args, tmp, {**os.environ}, port).start()
    admin = next(tmp.glob("*.admin-token")).read_text().strip()
    return server, admin


def set_up(server: Server, admin: str, origin: str) -> str:
    """The app (its origin the auth nginx), the user alice with a password; returns the key."""
    with httpx.Client(
        base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {admin}"}
    ) as client:
        made = client.post("/admin/v1/apps", json={"name": "shop-web", "origins": [origin]})
        assert made.status_code == 201, made.text
        for body, path in (
            ({"id": "alice"}, "/admin/v1/subjects"),
            (
                {"method": "password", "password": PASSWORD},
                "/admin/v1/subjects/alice/authenticators",
            ),
        ):
            answer = client.post(path, json=body)
            assert answer.status_code == 201, answer.text
        return str(made.json()["key"])


def log_in(origin: str) -> str:
    """Log alice in through the hosted login page behind nginx; the session cookie."""
    with httpx.Client(base_url=origin, timeout=10, follow_redirects=False) as browser:
        sent = browser.get("/")
        assert sent.status_code == 302, sent.text
        form = browser.get(sent.headers["location"])
        assert form.status_code == 200, form.text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        done = browser.post(
            "/hosted/v1/login",
            data={
                "csrf": csrf.group(1),
                "return_to": origin + "/",
                "user": "alice",
                "password": PASSWORD,
            },
            headers={"Origin": origin},
        )
        assert done.status_code == 303, done.text
        cookie = browser.cookies["juncture_session"]
        page = browser.get("/")
        assert page.status_code == 200 and page.text == "ok\n", page.text
    return str(cookie)


def wrk(url: str, script: Path, seconds: float, args: argparse.Namespace) -> dict[str, Any]:
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds:g}s"]
    cmd += ["--latency", "--timeout", "5s", "-s", str(script), url]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr}")
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRKJSON "))
    result: dict[str, Any] = json.loads(line.removeprefix("WRKJSON "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["socket_errors"] = sum(result[k] for k in ("connect", "read", "write", "timeout"))
    return result


def decision_log(db: Path) -> dict[str, int]:
    """Decision records by outcome and action, from the SQLite file."""
    query = "SELECT outcome || ' ' || action, COUNT(*) FROM decisions GROUP BY 1"
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return {name: count for name, count in conn.execute(query).fetchall()}


Results = dict[str, list[dict[str, Any]]]


def run(args: argparse.Namespace) -> tuple[Results, dict[str, int]]:
    tmp = Path(tempfile.mkdtemp(prefix="juncture-bench-fa-"))
    nginxes: list[Nginx] = []
    server: Server | None = None
    try:
        server, admin = start_juncture(tmp, args.workers)
        upstream_port, auth_port, plain_port = free_port(), free_port(), free_port()
        origin = f"http://127.0.0.1:{auth_port}"
        key = set_up(server, admin, origin)
        nginxes.append(
            Nginx(
                "upstream",
                f"server {{ listen 127.0.0.1:{upstream_port};\n"
                '  location / { default_type text/plain; return 200 "ok\\n"; } }\n',
                upstream_port,
            )
        )
        block = configured(docs_block(), juncture=server.port, app=upstream_port, key=key)
        auth = block.replace("listen 80;", f"listen 127.0.0.1:{auth_port};")
        plain = without_auth(block).replace("listen 80;", f"listen 127.0.0.1:{plain_port};")
        nginxes.append(Nginx("auth", auth, auth_port))
        nginxes.append(Nginx("plain", plain, plain_port))
        cookie = log_in(origin)
        # The same request, checked on both before timing.
        for port, want in ((auth_port, 200), (plain_port, 200)):
            got = httpx.get(
                f"http://127.0.0.1:{port}/", headers={"Cookie": f"juncture_session={cookie}"}
            )
            assert got.status_code == want and got.text == "ok\n", got.text
        assert httpx.get(f"{origin}/").status_code == 302  # without the cookie: the login page
        script = tmp / "load.lua"
        script.write_text(WRK_SCRIPT.replace("COOKIE", f"juncture_session={cookie}"))
        urls = {"nginx alone": f"http://127.0.0.1:{plain_port}/", "nginx + Juncture": f"{origin}/"}
        results: Results = {name: [] for name in CONFIGS}
        for name in CONFIGS:
            results[name + " warm-up"] = [wrk(urls[name], script, args.warmup, args)]
        for n in range(args.rounds):
            for name in CONFIGS if n % 2 == 0 else tuple(reversed(CONFIGS)):
                result = wrk(urls[name], script, args.duration, args)
                print(
                    f"round {n + 1} {name}: {result['rps']:.0f} req/s, p50 "
                    f"{result['p50_us'] / 1000:.2f} ms, p99 {result['p99_us'] / 1000:.2f} ms",
                    flush=True,
                )
                results[name].append(result)
        server.stop()  # graceful: the decision log is flushed
        return results, decision_log(tmp / "j.db")
    finally:
        for nginx in nginxes:
            nginx.stop()
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def med(values: list[float]) -> float:
    return statistics.median(values)


def report(results: Results, log: dict[str, int], args: argparse.Namespace) -> str:
    info = common.machine()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    wrk_version = (wrk_version.splitlines() or ["wrk ?"])[0].split(" [")[0]
    nginx_version = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
    lines = [
        f"## Forward auth: nginx + Juncture against nginx alone, {args.connections} connections",
        "",
        *common.machine_lines(info, common.command()),
        f"- load: {wrk_version}, {args.threads} thread(s), {args.connections} keep-alive "
        f"connections, {args.duration:g} s per run after a {args.warmup:g} s warm-up per "
        f"configuration, {args.rounds} round(s), the configurations interleaved (their order "
        "alternating) per round; medians over rounds",
        f"- {nginx_version.removeprefix('nginx version: ')}, one worker per process: the "
        "upstream (`return 200`), nginx with the block of docs/proxy.md (`auth_request` to "
        f"`juncture serve --workers {args.workers}` on SQLite), and the same block less its "
        "`auth_request` and `error_page 401` lines; every request `GET /` with the "
        "`juncture_session` cookie of a session logged in through the hosted page (the route's "
        "checkpoint needs a password and allows: every request is an allow, in the decision log)",
        "- wrk, the three nginx and Juncture share the machine's CPUs",
    ]
    if args.note:
        lines.append(f"- note: {args.note}")
    lines += [
        "",
        "| configuration | requests/s | p50 ms | p99 ms | status ≥ 400 | socket errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    figures: dict[str, dict[str, float]] = {}
    for name in CONFIGS:
        runs = results[name]
        rps = med([r["rps"] for r in runs])
        p50 = med([r["p50_us"] / 1000 for r in runs])
        p99 = med([r["p99_us"] / 1000 for r in runs])
        figures[name] = {"rps": rps, "p50": p50, "p99": p99}
        lines.append(
            f"| {name} | {rps:.0f} | {p50:.2f} | {p99:.2f} | "
            f"{sum(r['status_errors'] for r in runs)} | "
            f"{sum(r['socket_errors'] for r in runs)} |"
        )
    alone, auth = figures["nginx alone"], figures["nginx + Juncture"]
    lines += [
        "",
        f"Forward auth adds {auth['p50'] - alone['p50']:.2f} ms at p50 and "
        f"{auth['p99'] - alone['p99']:.2f} ms at p99 (medians of the rounds' percentiles); "
        f"nginx + Juncture serves {auth['rps'] / alone['rps']:.1%} of nginx alone's requests/s "
        f"({alone['rps'] / auth['rps']:.1f}× fewer). Every request through Juncture is a "
        "session-bound decision (session read, checkpoint decided, decision logged), so its "
        "figure is Juncture's decision service over HTTP, not nginx's `auth_request` overhead.",
    ]
    sent = sum(r["requests"] for key in results if "Juncture" in key for r in results[key])
    lines += [
        "",
        f"Decision log after the run: {json.dumps(log, sort_keys=True)}; wrk counted {sent} "
        "responses through nginx + Juncture (warm-up included): every one of them is an "
        "`allow browse` record (a 302 to the login page would be a `login` answer, with no "
        "decision, and would show as fewer records)"
        + ("." if log.get("allow browse", 0) >= sent else " — FEWER RECORDS THAN RESPONSES."),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds timed per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of untimed load")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="juncture serve --workers")
    parser.add_argument("--note", default="", help="a line for RESULTS.md (a shared machine)")
    parser.add_argument("--no-write", action="store_true", help="print, do not update RESULTS.md")
    args = parser.parse_args()
    if shutil.which("wrk") is None or NGINX is None:
        raise SystemExit("this benchmark needs wrk and nginx (make tools installs them)")
    results, log = run(args)
    text = report(results, log, args)
    print(text)
    if not args.no_write:
        common.update_section("forward-auth", text)


if __name__ == "__main__":
    main()
