"""The shadow version over real HTTP: installed beside the active one, it decides every live
decision again and records what it decides otherwise, never changing an answer, a session,
a challenge or an event; promoted, it is an ordinary publish; on every node of a file."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from juncture.cli import app as cli

from .server import Server
from .test_http import admin

ACTIVE = """\
journey: acct
applies_to: [web]
methods:
  password: {kind: password, aal: 1}
  totp: {kind: totp, aal: 2}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {}}]
  read: [{allow: {}}]
  "*": [{deny: unknown_action}]
"""

#: The candidate: `read` revokes, `export` (unknown to the active one) is allowed, and
#: `report` asks for a TOTP (a challenge, were it the active one).
CANDIDATE = """\
journey: acct
applies_to: [web]
methods:
  password: {kind: password, aal: 1}
  totp: {kind: totp, aal: 2}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {}}]
  read: [{revoke: tightened}]
  export: [{allow: {}}]
  report: [{require: {any: [totp]}}, {allow: {}}]
  "*": [{deny: unknown_action}]
"""

#: The tables a shadow must never write (the decision log and its own records aside).
UNTOUCHED = ("sessions", "challenges", "outbox", "subjects_seen", "approvals", "failures")


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


class World:
    """A server on the active journey, an app, a session of alice's, the candidate stored."""

    def __init__(self, root: Path) -> None:
        bundle = root / "bundle"
        bundle.mkdir()
        (bundle / "acct.yaml").write_text(ACTIVE)
        self.root = root
        self.server = Server(root / "j.db", bundle).start()
        self.admin = admin(self.server)
        made = self.admin.post(
            "/admin/v1/apps", json={"name": "web", "assertable_methods": ["password"]}
        )
        assert made.status_code == 201, made.text
        self.key = made.json()["key"]
        self.app = self.server.client(self.key)
        self.active = self.admin.get("/admin/v1/versions").json()["versions"][0]["id"]
        stored = self.admin.post("/admin/v1/versions", json={"files": {"acct.yaml": CANDIDATE}})
        assert stored.status_code == 201, stored.text
        self.candidate = stored.json()["id"]
        self.session = self.start_session()

    def start_session(self, client: httpx.Client | None = None) -> str:
        started = (client or self.app).post(
            "/v1/sessions",
            json={"subject": {"type": "user", "id": "alice"}, "proofs": [{"method": "password"}]},
        )
        assert started.status_code == 201, started.text
        assert started.json()["decision"]["outcome"] == "allow"
        return str(started.json()["session"]["id"])

    def decide(self, action: str, client: httpx.Client | None = None) -> dict[str, Any]:
        answer = (client or self.app).post(
            "/access/v1/evaluation",
            json={
                "subject": {"type": "user", "id": "alice"},
                "action": {"name": action},
                "resource": {"type": "account", "id": "alice"},
                "context": {"session_id": self.session},
            },
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def status(self) -> dict[str, Any]:
        found = self.admin.get("/admin/v1/shadow")
        assert found.status_code == 200, found.text
        return dict(found.json())

    def shadowed(self, count: int) -> dict[str, Any]:
        """The status once this node's shadow has decided ``count`` decisions in all."""
        status = eventually(
            lambda: (s := self.status())["node"]["waiting"] == 0
            and sum(s["node"]["transitions"].values()) >= count
            and s
        )
        assert status, self.status()
        return dict(status)

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        with sqlite3.connect(self.server.db) as conn:
            return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in UNTOUCHED}

    def stop(self) -> None:
        self.admin.close()
        self.server.stop()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    made = World(tmp_path)
    try:
        yield made
    finally:
        made.stop()


def metric(world: World, name: str, label: str) -> float:
    text = httpx.get(f"{world.server.url}/metrics").text
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and label in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_shadow_decides_again_records_what_differs_and_changes_nothing(world: World):
    installed = world.admin.put("/admin/v1/shadow", json={"version_id": world.candidate[:20]})
    assert installed.status_code == 200, installed.text
    assert installed.json() == {"shadow": world.candidate, "replaced": None}
    before = world.snapshot()

    answers = [world.decide(a) for a in ("read", "read", "export", "report", "login")]
    # Every answer is the active version's: allow, allow, deny, deny, allow.
    assert [a["decision"] for a in answers] == [True, True, False, False, True]
    assert [a["context"]["reason"] for a in answers[2:4]] == ["unknown_action"] * 2
    status = world.shadowed(5)
    assert status["shadow"] == world.candidate and status["active"] == world.active
    assert status["node"]["transitions"] == {
        "allow->revoke": 2, "deny->allow": 1, "deny->step_up": 1, "allow->allow": 1,
    }  # fmt: skip
    assert status["node"]["errors"] == status["node"]["dropped"] == 0
    assert status["differences"] == {"allow->revoke": 2, "deny->allow": 1, "deny->step_up": 1}
    # The shadow revoked nothing, created no challenge, emitted no event, wrote no session.
    assert world.snapshot() == before
    assert world.decide("read")["decision"] is True  # the session is still live
    after = world.shadowed(6)
    assert after["node"]["transitions"]["allow->revoke"] == 3

    page = world.admin.get("/admin/v1/shadow/differences", params={"limit": 2})
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["shadow"] == world.candidate and len(body["differences"]) == 2
    newest = body["differences"][0]
    assert newest["transition"] == "allow->revoke" and newest["action"] == "read"
    assert newest["session_id"] == world.session and newest["subject_id"] == "alice"
    assert newest["active"]["outcome"] == "allow" and newest["active"]["checkpoint"] == "read"
    assert newest["shadow"]["outcome"] == "revoke"
    assert newest["shadow"]["reason"] == "tightened"
    step = newest["shadow"]["explanation"][-1]["step"]
    assert step["file"] == "acct.yaml" and step["line"] > 0
    logged = world.admin.get(f"/admin/v1/decisions?session_id={world.session}&limit=1").json()
    assert logged["decisions"][0]["id"] == newest["decision_id"]  # the live decision's id
    rest = world.admin.get(
        "/admin/v1/shadow/differences", params={"limit": 10, "before": body["next"]}
    ).json()
    assert len(rest["differences"]) == 3 and rest["next"] is None
    only = world.admin.get(
        "/admin/v1/shadow/differences", params={"transition": "deny->step_up"}
    ).json()
    assert [r["action"] for r in only["differences"]] == ["report"]

    assert metric(world, "juncture_shadow_decisions_total", 'transition="allow->revoke"') == 3
    assert metric(world, "juncture_shadow_decisions_total", 'transition="deny->allow"') == 1

    versions = world.admin.get("/admin/v1/versions").json()["versions"]
    assert [(v["id"], v["active"], v["shadow"]) for v in versions] == [
        (world.candidate, False, True), (world.active, True, False),
    ]  # fmt: skip

    dropped = world.admin.delete("/admin/v1/shadow")
    assert dropped.json() == {"shadow": None, "replaced": world.candidate}
    world.decide("read")
    time.sleep(0.2)
    assert sum(world.status()["node"]["transitions"].values()) == 6  # not shadowed any more
    kept = world.admin.get("/admin/v1/shadow/differences", params={"version": world.candidate})
    assert len(kept.json()["differences"]) == 5  # its records stay (equal answers: none)


def test_promoting_the_shadow_publishes_it(world: World):
    world.admin.put("/admin/v1/shadow", json={"version_id": world.candidate})
    promoted = world.admin.post("/admin/v1/shadow/promote")
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["active"] == world.candidate and promoted.json()["sweep"]
    status = world.status()
    assert (status["active"], status["shadow"]) == (world.candidate, None)
    assert world.decide("read")["context"]["outcome"] == "revoke"  # now it is the answer
    refused = world.admin.post("/admin/v1/shadow/promote")
    assert refused.status_code == 409 and refused.json()["code"] == "shadow.none"


def test_bad_shadow_requests_are_refused_and_change_nothing(world: World):
    def refused(response: httpx.Response, status: int, code: str) -> None:
        assert response.status_code == status, response.text
        assert response.json()["code"] == code

    refused(world.admin.put("/admin/v1/shadow", json={"version_id": world.active}), 409,
            "shadow.is_active")  # fmt: skip
    refused(world.admin.put("/admin/v1/shadow", json={"version_id": "sha256:0000"}), 404,
            "version.not_found")  # fmt: skip
    refused(world.admin.put("/admin/v1/shadow", json={"version": world.candidate}), 400,
            "request.invalid")  # fmt: skip
    refused(world.admin.get("/admin/v1/shadow/differences"), 409, "shadow.none")
    refused(world.admin.post("/admin/v1/shadow/promote"), 409, "shadow.none")
    both = {"files": {"acct.yaml": CANDIDATE + "\n"}, "activate": True, "shadow": True}
    refused(world.admin.post("/admin/v1/versions", json=both), 400, "request.invalid")
    assert world.status()["shadow"] is None

    world.admin.put("/admin/v1/shadow", json={"version_id": world.candidate})
    refused(world.admin.get("/admin/v1/shadow/differences", params={"before": "d_nope"}), 404,
            "shadow.not_found")  # fmt: skip
    reader = CliRunner().invoke(cli, ["admin-key", "--db", str(world.server.db), "--scope",
                                      "read"])  # fmt: skip
    assert reader.exit_code == 0, reader.output
    with admin(world.server, reader.output.strip()) as read_only:
        assert read_only.get("/admin/v1/shadow").status_code == 200
        refused(read_only.delete("/admin/v1/shadow"), 403, "auth.forbidden")
        refused(read_only.post("/admin/v1/shadow/promote"), 403, "auth.forbidden")
    assert world.status()["shadow"] == world.candidate
    assert world.status()["active"] == world.active


def test_the_shadow_runs_on_every_node_of_the_file(world: World, tmp_path: Path):
    other = Server(world.server.db, None).start()
    try:
        client = other.client(world.key)
        world.admin.put("/admin/v1/shadow", json={"version_id": world.candidate})
        assert world.decide("read", client)["decision"] is True
        with admin(other, world.server.admin_token()) as there:
            status = eventually(
                lambda: (s := there.get("/admin/v1/shadow").json())["node"]["transitions"]
                and s["node"]["waiting"] == 0 and s["differences"] and s
            )  # counted, then recorded by the writer's thread: both before reading
        assert status["node"]["transitions"] == {"allow->revoke": 1}
        assert status["differences"] == {"allow->revoke": 1}  # recorded in the one file
        assert world.status()["node"]["transitions"] == {}  # this node decided nothing
    finally:
        other.stop()


def test_a_node_records_differences_at_its_record_rate_and_counts_the_rest(world: World):
    """`--shadow-record-rate 1`: a second's worth (one) recorded, the rest counted as
    `over_rate`, in the status and in /metrics; every decision still counted by transition."""
    other = Server(world.server.db, None, args=("--shadow-record-rate", "1")).start()
    try:
        client = other.client(world.key)
        world.admin.put("/admin/v1/shadow", json={"version_id": world.candidate})
        for _ in range(4):
            assert world.decide("read", client)["decision"] is True
        with admin(other, world.server.admin_token()) as there:
            status = eventually(
                lambda: sum((s := there.get("/admin/v1/shadow").json())["node"]["transitions"]
                            .values()) == 4 and s["node"]["waiting"] == 0 and s
            )  # fmt: skip
            assert status["node"]["transitions"] == {"allow->revoke": 4}
            assert status["node"]["over_rate"] >= 2  # 4 in well under the 2 s two more need
            recorded = status["differences"]["allow->revoke"]
            assert recorded + status["node"]["over_rate"] == 4
            text = httpx.get(f"{other.url}/metrics").text
        assert f'juncture_shadow_lost_total{{why="over_rate"}} {status["node"]["over_rate"]}.0' in (
            text
        )
        assert world.status()["node"]["over_rate"] == 0  # the default rate on the first node
    finally:
        other.stop()


def test_the_cli_installs_reads_and_drops_the_shadow(world: World, tmp_path: Path):
    def run(*args: str) -> Any:
        env = {"JUNCTURE_ADMIN_TOKEN": world.server.admin_token()}
        return CliRunner().invoke(cli, [*args, "--server", world.server.url], env=env)

    candidate = tmp_path / "candidate"
    candidate.mkdir()
    (candidate / "acct.yaml").write_text(CANDIDATE.replace("tightened", "tightened_again"))
    published = run("publish", str(candidate), "--shadow")
    assert published.exit_code == 0, published.output
    assert "~ checkpoint acct: read" in published.output
    assert "shadow version sha256:" in published.output
    assert world.status()["active"] == world.active  # not activated

    world.decide("read")
    world.shadowed(1)
    status = run("shadow", "status")
    assert status.exit_code == 0, status.output
    assert "shadow version sha256:" in status.output and "allow->revoke" in status.output
    diff = run("shadow", "diff")
    assert diff.exit_code == 0, diff.output
    assert "allow->revoke" in diff.output and "tightened_again" in diff.output
    assert "acct.yaml:" in diff.output  # the steps, with where they are written
    listed = run("versions")
    assert "(shadow)" in listed.output
    dropped = run("shadow", "drop")
    assert dropped.exit_code == 0 and "dropped shadow version" in dropped.output
    assert run("shadow", "drop").output.strip() == "no shadow version was installed"
    none = run("shadow", "promote")
    assert none.exit_code == 1 and "shadow.none" in none.output
