"""The publish gate over real HTTP: `juncture publish --rehearse` and `juncture serve
--publish-gate` replay the recorded decisions with a version before it is activated, and refuse
it when a rule breaks, changing nothing; a rollback to a version active before is not held."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from juncture.cli import app as cli

from .server import Server
from .test_http import admin
from .test_shadow_http import ACTIVE, CANDIDATE, eventually

#: Changes nothing `read` answers: `export` allowed (the recorded decisions are all `read`).
HARMLESS = ACTIVE.replace('  "*": [{deny: unknown_action}]', '  export: [{allow: {}}]\n'
                          '  "*": [{deny: unknown_action}]')  # fmt: skip


class Gated:
    """A server (with ``args``), an app, a session of alice's and three recorded `read`s."""

    def __init__(self, root: Path, args: tuple[str, ...] = ()) -> None:
        bundle = root / "bundle"
        bundle.mkdir()
        (bundle / "acct.yaml").write_text(ACTIVE)
        self.root = root
        self.server = Server(root / "j.db", bundle, args=args).start()
        self.admin = admin(self.server)
        made = self.admin.post(
            "/admin/v1/apps", json={"name": "web", "assertable_methods": ["password"]}
        )
        assert made.status_code == 201, made.text
        self.app = self.server.client(made.json()["key"])
        self.active = self.active_now()
        alice = {"type": "user", "id": "alice"}
        started = self.app.post(
            "/v1/sessions", json={"subject": alice, "proofs": [{"method": "password"}]}
        )
        assert started.status_code == 201, started.text
        session = started.json()["session"]["id"]
        for _ in range(3):
            answer = self.app.post("/access/v1/evaluation", json={
                "subject": {"type": "user", "id": "alice"}, "action": {"name": "read"},
                "resource": {"type": "account", "id": "alice"},
                "context": {"session_id": session}})  # fmt: skip
            assert answer.json()["decision"] is True, answer.text
        logged = eventually(  # the log is written just after the answers (batched)
            lambda: len(self.admin.get("/admin/v1/decisions").json()["decisions"]) == 4
        )
        assert logged, self.admin.get("/admin/v1/decisions").text

    def active_now(self) -> str:
        versions = self.admin.get("/admin/v1/versions").json()["versions"]
        return str(next(v["id"] for v in versions if v["active"]))

    def store(self, text: str) -> str:
        stored = self.admin.post("/admin/v1/versions", json={"files": {"acct.yaml": text}})
        assert stored.status_code in (200, 201), stored.text
        return str(stored.json()["id"])

    def bundle(self, name: str, text: str) -> Path:
        path = self.root / name
        path.mkdir()
        (path / "acct.yaml").write_text(text)
        return path

    def cli(self, *args: str) -> Any:
        env = {"JUNCTURE_ADMIN_TOKEN": self.server.admin_token()}
        return CliRunner().invoke(cli, [*args, "--server", self.server.url], env=env)

    def stop(self) -> None:
        self.admin.close()
        self.server.stop()


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[Gated]:
    made = Gated(tmp_path, ("--publish-gate", "allow->revoke>0", "--publish-gate", "changed>50%"))
    try:
        yield made
    finally:
        made.stop()


def test_the_server_gate_refuses_a_version_that_breaks_a_rule_and_changes_nothing(gated: Gated):
    candidate = gated.store(CANDIDATE)  # `read` revokes: 3 of 4 allows (the login stays)
    refused = gated.admin.post(f"/admin/v1/versions/{candidate}/activate")
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["code"] == "version.rehearsal_failed"
    assert body["broken"] == ["allow->revoke>0: 3", "changed>50%: 3 of 4 (75.00%)"]
    assert body["report"]["total"] == 4 and body["report"]["changed"] == 3  # and the login
    assert gated.active_now() == gated.active  # nothing changed
    uploaded = gated.admin.post("/admin/v1/versions", json={
        "files": {"acct.yaml": CANDIDATE + "\n# again\n"}, "activate": True})  # fmt: skip
    assert uploaded.status_code == 409 and uploaded.json()["code"] == "version.rehearsal_failed"
    gated.admin.put("/admin/v1/shadow", json={"version_id": candidate})
    promoted = gated.admin.post("/admin/v1/shadow/promote")
    assert promoted.status_code == 409, promoted.text
    assert gated.active_now() == gated.active

    harmless = gated.store(HARMLESS)
    published = gated.admin.post(f"/admin/v1/versions/{harmless}/activate")
    assert published.status_code == 200, published.text
    assert gated.active_now() == harmless
    # a rollback to a version active before is not rehearsed (it is the way back)
    back = gated.admin.post(f"/admin/v1/versions/{gated.active}/activate")
    assert back.status_code == 200, back.text

    cli = gated.cli("publish", str(gated.bundle("c2", CANDIDATE + "\n# by the cli\n")))
    assert cli.exit_code == 1, cli.output
    assert "publish gate replayed 4 recorded decision(s)" in cli.output  # 3 reads and a login
    assert "allow->revoke>0: 3" in cli.output and "stored, not active" in cli.output


def test_publish_rehearse_prints_the_report_and_refuses_when_a_rule_breaks(tmp_path: Path):
    world = Gated(tmp_path)
    try:
        refused = world.cli("publish", str(world.bundle("c", CANDIDATE)), "--rehearse",
                            "--fail-on", "allow->revoke>0")  # fmt: skip
        assert refused.exit_code == 1, refused.output
        assert "~ checkpoint acct: read" in refused.output  # what changes, first
        assert "4 decisions: 4 replayed, 3 changed" in refused.output
        assert "rule broken: allow->revoke>0: 3" in refused.output
        assert "stored, not active" in refused.output
        assert world.active_now() == world.active

        passed = world.cli("publish", str(world.bundle("h", HARMLESS)), "--rehearse",
                           "--fail-on", "changed>0", "--since", "1h")  # fmt: skip
        assert passed.exit_code == 0, passed.output
        assert "rule changed>0: holds" in passed.output
        assert passed.output.splitlines()[-1].startswith("published version sha256:")
        assert world.active_now() != world.active

        bad = world.cli("publish", str(world.bundle("b", CANDIDATE + "\n#\n")), "--rehearse",
                        "--fail-on", "allow->nope>1")  # fmt: skip
        assert bad.exit_code == 1 and "replay.rule_invalid" in bad.output
    finally:
        world.stop()


def test_serve_refuses_a_publish_gate_it_cannot_use(tmp_path: Path):
    db = str(tmp_path / "j.db")
    for args, said in (
        (("--publish-gate", "allow->maybe>1"), "`maybe` in `allow->maybe>1` is not an outcome"),
        (("--publish-gate", "changed>0", "--publish-gate-since", "yesterday"),
         "`yesterday` is neither a duration"),
    ):  # fmt: skip
        result = CliRunner().invoke(cli, ["serve", "--db", db, "--port", "1", *args])
        assert result.exit_code == 2, result.output
        assert said in " ".join(result.output.split()), result.output
    assert not Path(db).exists()  # refused before anything was made
