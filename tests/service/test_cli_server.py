"""`juncture publish`, `versions`, `rollback` and `admin-key` against a real server."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from juncture.cli import app

from .server import Server
from .test_http import bundle


def run(*args: str, token: str | None = None):
    env = {"JUNCTURE_ADMIN_TOKEN": token} if token else {}
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def test_publish_versions_rollback(tmp_path: Path):
    server = Server(tmp_path / "c.db", bundle(tmp_path / "v1", "10m")).start()
    try:
        token = server.admin_token()
        listed = run("versions", "--server", server.url, token=token)
        assert listed.exit_code == 0, listed.output
        first = [line for line in listed.output.splitlines() if line.strip().startswith("*")]
        assert len(first) == 1
        v1 = first[0].split()[1]

        published = run(
            "publish",
            bundle(tmp_path / "v2", "1m"),
            "--server",
            server.url,
            "--comment",
            "tighter",
            token=token,
        )
        assert published.exit_code == 0, published.output
        assert "~ checkpoint acct: change_email" in published.output  # what changes, first
        last = published.output.splitlines()[-1]
        assert last.startswith("published version sha256:")
        v2 = last.split()[2]
        again = run("publish", tmp_path / "v2", "--server", server.url, token=token)
        assert "(already stored)" in again.output

        active = [
            ln
            for ln in run("versions", "--server", server.url, token=token).output.splitlines()
            if ln.strip().startswith("*")
        ]
        assert active[0].split()[1] == v2

        back = run("rollback", v1, "--server", server.url, token=token)
        assert back.exit_code == 0 and v1 in back.output
        missing = run("rollback", "sha256:nope", "--server", server.url, token=token)
        assert missing.exit_code == 2 and "no version starts with" in missing.output

        broken = tmp_path / "broken"
        broken.mkdir()
        (broken / "b.yaml").write_text("journey: b\ncheckpoints: {a: [{require: {any: [x]}}]}\n")
        refused = run("publish", broken, "--server", server.url, token=token)
        assert refused.exit_code == 1
        assert "policy.ref.unknown_method" in refused.output

        assert run("versions", "--server", server.url).exit_code == 2  # no key given
        reader = run("admin-key", "--db", server.db, "--scope", "read")
        assert reader.exit_code == 0
        denied = run(
            "publish", tmp_path / "v2", "--server", server.url, token=reader.output.strip()
        )
        assert denied.exit_code == 1 and "auth.forbidden" in denied.output
        assert run("admin-key", "--db", server.db, "--scope", "root").exit_code == 2
    finally:
        server.stop()


def test_serve_refuses_signal_settings_it_cannot_use(tmp_path: Path):
    bad = tmp_path / "lists.yaml"
    bad.write_text("labels:\n  known_bad:\n    cidrs: [not-a-cidr]\n")
    db = str(tmp_path / "j.db")
    result = run("serve", "--db", db, "--reputation", str(bad), "--port", "1")
    assert result.exit_code == 2
    assert "lists.yaml:3" in result.output and "policy.schema.cidr" in result.output
    result = run("serve", "--db", db, "--trusted-proxy", "10.0.0.0/33", "--port", "1")
    assert result.exit_code == 2 and "10.0.0.0/33" in result.output
    result = run("serve", "--db", db, "--context-max-age", "soon", "--port", "1")
    assert result.exit_code == 2 and "duration" in result.output


def test_serve_refuses_transmitters_it_cannot_use(tmp_path: Path):
    db = str(tmp_path / "j.db")
    unknown = tmp_path / "t.yaml"
    unknown.write_text(
        "transmitters:\n  - {name: idp, issuer: 'https://idp', audience: me,\n"
        "     jwks: {keys: []}, pushtoken: x}\n"
    )
    result = run("serve", "--db", db, "--transmitters", str(unknown), "--port", "1")
    assert result.exit_code == 2 and "pushtoken" in result.output
    insecure = tmp_path / "t.json"
    insecure.write_text(
        '{"transmitters": [{"name": "idp", "issuer": "https://idp", "audience": "me",'
        ' "jwks_uri": "http://idp.example.com/jwks"}]}'
    )
    result = run("serve", "--db", db, "--transmitters", str(insecure), "--port", "1")
    assert result.exit_code == 2 and "https" in result.output
    missing = run("serve", "--db", db, "--transmitters", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "cannot read" in missing.output
