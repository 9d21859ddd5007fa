"""Publishing safely against a real server: a version that removes what live sessions or apps
used in the last 24 hours is refused with the list (unless allowed), `publish` shows what
changes before it activates, and every version id may be given as a unique prefix."""

from __future__ import annotations

import time
from pathlib import Path

from typer.testing import CliRunner

from juncture.cli import app
from service.server import Server
from service.test_http import admin, evaluation, new_app, start

ACCT = """\
journey: acct
applies_to: [web]
methods:
  password: {kind: password, aal: 1}
  totp: {kind: totp, aal: 2}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {scopes: [app], ttl: 1h}}]
  change_email: [{require: {any: [totp], within: 10m}}, {allow: {}}]
EXTRA  "*": [{deny: unknown_action}]
"""
SPARE = """\
journey: spare
applies_to: [nobody]
methods: {password: {kind: password}}
checkpoints:
  login: [{require: {any: [password]}}, {allow: {}}]
"""


def write(root: Path, acct: str | None, spare: bool = True) -> Path:
    root.mkdir(parents=True)
    if acct is not None:
        (root / "acct.yaml").write_text(acct)
    if spare:
        (root / "spare.yaml").write_text(SPARE)
    return root


def run(*args: str | Path, token: str):
    env = {"JUNCTURE_ADMIN_TOKEN": token, "COLUMNS": "200"}
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def active_version(server: Server) -> str:
    with admin(server) as client:
        versions = client.get("/admin/v1/versions").json()["versions"]
    return next(v["id"] for v in versions if v["active"])


def used_server(tmp_path: Path) -> tuple[Server, str]:
    """A server on ACCT + SPARE whose `web` app logged in and changed an email just now."""
    server = Server(tmp_path / "p.db", write(tmp_path / "v1", ACCT.replace("EXTRA", ""))).start()
    _, web = new_app(server)
    session = start(web)
    assert evaluation(web, session["session"]["id"])["decision"] is False  # a step-up
    with admin(server) as client:  # the decision log is written just after the answers
        deadline = time.monotonic() + 10
        while len(client.get("/admin/v1/decisions").json()["decisions"]) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    return server, server.admin_token()


def test_publish_removing_a_used_checkpoint_is_refused_with_the_list(tmp_path: Path):
    server, token = used_server(tmp_path)
    try:
        v1 = active_version(server)
        no_email = ACCT.replace("EXTRA", "").replace(
            "  change_email: [{require: {any: [totp], within: 10m}}, {allow: {}}]\n", ""
        )
        v2 = write(tmp_path / "v2", no_email)
        refused = run("publish", v2, "--server", server.url, token=token)
        assert refused.exit_code == 1, refused.output
        assert "- checkpoint acct: change_email" in refused.output  # the summary, first
        assert "removes what is in use" in refused.output
        assert "checkpoint acct: change_email (apps: web; 1 decision(s) in 24 h" in refused.output
        assert "--allow-removal" in refused.output
        assert active_version(server) == v1  # nothing changed

        allowed = run("publish", v2, "--server", server.url, "--allow-removal", token=token)
        assert allowed.exit_code == 0, allowed.output
        assert "published version sha256:" in allowed.output
        assert active_version(server) != v1
    finally:
        server.stop()


def test_publish_removing_a_used_journey_is_refused_by_the_admin_api(tmp_path: Path):
    server, token = used_server(tmp_path)
    try:
        v1 = active_version(server)
        files = {"spare.yaml": SPARE}
        with admin(server, token) as client:
            refused = client.post("/admin/v1/versions", json={"files": files, "activate": True})
            assert refused.status_code == 409, refused.text
            problem = refused.json()
            assert problem["code"] == "version.removes_used"
            (removal,) = problem["removals"]
            assert removal["kind"] == "journey" and removal["journey"] == "acct"
            assert removal["apps"] == ["web"]
            assert removal["decisions_24h"] == 2 and removal["active_sessions"] == 1
            assert active_version(server) == v1
            allowed = client.post(
                "/admin/v1/versions",
                json={"files": files, "activate": True, "allow_removal": True},
            )
            assert allowed.status_code == 200, allowed.text  # stored by the refused call
            assert allowed.json()["changes"]["journeys"]["removed"] == ["acct"]
            assert active_version(server) == allowed.json()["id"]
            # a rollback is an activation too: it would remove `spare`? No: nothing used it.
            back = client.post(f"/admin/v1/versions/{v1}/activate")
            assert back.status_code == 200, back.text
    finally:
        server.stop()


def test_publish_removing_what_nobody_used_goes_ahead_and_shows_the_changes(tmp_path: Path):
    server, token = used_server(tmp_path)
    try:
        added = ACCT.replace("EXTRA", "  profile: [{allow: {}}]\n").replace(
            "within: 10m", "within: 5m"
        )
        published = run(
            "publish", write(tmp_path / "v2", added, spare=False), "--server", server.url,
            token=token,
        )  # fmt: skip
        assert published.exit_code == 0, published.output
        lines = published.output.splitlines()
        assert lines[0].startswith("changes from sha256:")
        assert "  - journey spare" in lines
        assert "  + checkpoint acct: profile" in lines
        assert "  ~ checkpoint acct: change_email" in lines
        assert "  ~ journey acct" in lines
        assert "  - checkpoint spare: login" in lines
        assert lines[-1].startswith("published version sha256:")
        again = run("publish", tmp_path / "v2", "--server", server.url, token=token)
        assert again.exit_code == 0 and "is already active (already stored)" in again.output
    finally:
        server.stop()


def test_rollback_takes_any_unique_prefix_of_a_version_id(tmp_path: Path):
    server, token = used_server(tmp_path)
    try:
        v1 = active_version(server)
        v2 = ACCT.replace("EXTRA", "  profile: [{allow: {}}]\n")
        assert run("publish", write(tmp_path / "v2", v2), "--server", server.url,
                   token=token).exit_code == 0  # fmt: skip
        v2_id = active_version(server)
        back = run("rollback", v1[:14], "--server", server.url, token=token)
        assert back.exit_code == 0, back.output
        assert back.output.strip() == f"active version is now {v1}"
        assert active_version(server) == v1
        # the digest alone, as people copy it from `versions`
        forward = run("rollback", v2_id.removeprefix("sha256:")[:10], "--server", server.url,
                      token=token)  # fmt: skip
        assert forward.exit_code == 0, forward.output
        assert active_version(server) == v2_id

        ambiguous = run("rollback", "sha256:", "--server", server.url, token=token)
        assert ambiguous.exit_code == 2
        assert len(ambiguous.output.strip().splitlines()) == 1
        assert "more than one version starts with `sha256:`" in ambiguous.output
        unknown = run("rollback", "sha256:zzz", "--server", server.url, token=token)
        assert unknown.exit_code == 2
        assert unknown.output.strip() == "error no version starts with `sha256:zzz`"
        with admin(server, token) as client:
            shown = client.get(f"/admin/v1/versions/{v1[:14]}")
            assert shown.status_code == 200 and shown.json()["id"] == v1
            diff = client.get(f"/admin/v1/versions/{v1[:14]}/diff", params={"against": v1[:12]})
            assert diff.status_code == 200 and diff.json()["from"] == v1
            assert client.get(f"/admin/v1/versions/{v1}/diff?against=sha256:").json()["code"] == (
                "version.ambiguous"
            )
    finally:
        server.stop()


def test_publish_taking_a_used_journey_away_from_its_app_is_refused(tmp_path: Path):
    server, token = used_server(tmp_path)
    try:
        moved = ACCT.replace("EXTRA", "").replace("applies_to: [web]", "applies_to: [mobile]")
        files = {"acct.yaml": moved, "spare.yaml": SPARE}
        with admin(server, token) as client:
            refused = client.post("/admin/v1/versions", json={"files": files, "activate": True})
            assert refused.status_code == 409, refused.text
            (removal,) = refused.json()["removals"]
            assert (removal["kind"], removal["journey"], removal["apps"]) == (
                "route", "acct", ["web"],
            )  # fmt: skip
            assert "journey `acct` for app(s) web" in refused.json()["detail"]
    finally:
        server.stop()
