"""Propagation between nodes: how long after one node acknowledges a change another node's
decisions follow it.

Setup: a PostgreSQL server started for the run (Debian's binaries, as the tests start it:
tests/postgres.py), two `juncture serve` nodes on it (A and B, one worker each), an app and
two journey versions (`open`: login allowed; `closed`: login denied).

Measured, --trials times each:
- publish: A activates the other version; from A's answer, B is asked (`login`, one session)
  until its decision names the version A activated;
- revoke: a session is started on A and allowed on B; A revokes it; from A's answer, B is
  asked until it denies.
The time is from A's answer to B's first answer that follows, so it includes B's request
(a decision over HTTP); p50 and p99 in milliseconds. Target: p99 < 100 ms.

    .venv/bin/python bench/propagation.py [--trials 200] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path.append(str(_HERE.parent / "tests"))
import _common as common  # noqa: E402
import httpx  # noqa: E402

from postgres import PostgresServer, free_port  # noqa: E402

JUNCTURE = Path(sys.executable).with_name("juncture")
OPEN = """\
journey: acct
applies_to: [web]
methods:
  password: {kind: password}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {scopes: [app], ttl: 1h}}]
  "*": [{deny: unknown_action}]
"""
CLOSED = OPEN.replace(
    "login: [{require: {any: [password]}}, {allow: {scopes: [app], ttl: 1h}}]",
    "login: [{deny: login_closed}]",
)


class Node:
    def __init__(self, db: str, cwd: Path, bundle: Path | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [str(JUNCTURE), "serve", "--db", db, "--port", str(self.port)]
        if bundle is not None:
            args += ["--bundle", str(bundle)]
        log = (cwd / f"node-{self.port}.log").open("wb")
        self.process = subprocess.Popen(args, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"node on {self.port} did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def percentiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=100, method="inclusive")
    return statistics.median(values), q[98]


def until(ask: Any, wanted: Any) -> float:
    """Milliseconds from now until ``ask()`` answers what ``wanted`` accepts."""
    started = time.perf_counter()
    while not wanted(ask()):
        if time.perf_counter() - started > 10:
            raise RuntimeError("the other node never followed")
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    server = PostgresServer()
    server.start()
    nodes: list[Node] = []
    try:
        db = server.create_database()
        with tempfile.TemporaryDirectory(prefix="jct-propagation-") as name:
            cwd = Path(name)
            os.chmod(cwd, 0o755)
            bundle = cwd / "bundle"
            bundle.mkdir()
            (bundle / "acct.yaml").write_text(OPEN)
            nodes.append(Node(db, cwd, bundle))
            nodes.append(Node(db, cwd, None))
            results = measure(nodes[0], nodes[1], cwd, db, args.trials)
    finally:
        for node in nodes:
            node.stop()
        server.stop()
        server.remove()
    lines = [
        "## Propagation between nodes on PostgreSQL (bench/propagation.py)",
        "",
        *common.machine_lines(common.machine(), common.command()),
        "",
        "Two `juncture serve` nodes (one worker each) on one PostgreSQL server on this machine;",
        "the time from node A's answer to node B's first decision that follows, B's own",
        f"request included; {args.trials} trials each. B serves the session and the active",
        "version from its caches, which the database's notifications keep exact",
        "(store/postgres/cached.py): the time is mostly the notification's.",
        "",
        "| change on A | p50 ms | p99 ms | target p99 |",
        "|---|---:|---:|---|",
    ]
    for change, values in results.items():
        p50, p99 = percentiles(values)
        met = "met" if p99 < 100 else "**not met**"
        lines.append(f"| {change} | {p50:.2f} | {p99:.2f} | < 100 ms: {met} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        common.update_section("propagation", text)


def measure(a: Node, b: Node, cwd: Path, db: str, trials: int) -> dict[str, list[float]]:
    token = next(cwd.glob("*.admin-token")).read_text().strip()
    admin_a = httpx.Client(base_url=a.url, headers={"Authorization": f"Bearer {token}"})
    made = admin_a.post("/admin/v1/apps", json={"name": "web", "assertable_methods": ["password"]})
    made.raise_for_status()
    key = made.json()["key"]
    app_a = httpx.Client(base_url=a.url, headers={"Authorization": f"Bearer {key}"})
    app_b = httpx.Client(base_url=b.url, headers={"Authorization": f"Bearer {key}"})
    versions = [admin_a.get("/admin/v1/versions").json()["versions"][0]["id"]]
    closed = admin_a.post("/admin/v1/versions", json={"files": {"acct.yaml": CLOSED}})
    closed.raise_for_status()
    versions.append(closed.json()["id"])

    def session() -> str:
        started = app_a.post("/v1/sessions", json={
            "subject": {"type": "user", "id": "alice"}, "proofs": [{"method": "password"}]})
        started.raise_for_status()
        return str(started.json()["session"]["id"])

    def login(session_id: str) -> dict[str, Any]:
        answer = app_b.post("/access/v1/evaluation", json={
            "subject": {"type": "user", "id": "alice"}, "action": {"name": "login"},
            "resource": {"type": "account", "id": "alice"},
            "context": {"session_id": session_id}})
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        return body

    results: dict[str, list[float]] = {"publish (activate a version)": [], "revoke a session": []}
    watched = session()
    for i in range(trials):
        target = versions[(i + 1) % 2]
        admin_a.post(f"/admin/v1/versions/{target}/activate").raise_for_status()
        results["publish (activate a version)"].append(
            until(lambda: login(watched), lambda r, t=target: r["context"]["version"] == t)
        )
    admin_a.post(f"/admin/v1/versions/{versions[0]}/activate").raise_for_status()
    for _ in range(trials):
        live = session()
        assert login(live)["decision"] is True
        ended = app_a.post(f"/v1/sessions/{live}/end", json={"revoke_reason": "stolen_device"})
        ended.raise_for_status()
        results["revoke a session"].append(
            until(lambda s=live: login(s), lambda r: r["decision"] is False)
        )
    for client in (admin_a, app_a, app_b):
        client.close()
    return results


if __name__ == "__main__":
    main()
