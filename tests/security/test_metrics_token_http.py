"""`/metrics` can be protected: with a metrics token, only `Authorization: Bearer <token>`
reads it (401 otherwise). The token comes from a file or the environment, never the command
line (which every local user can read in the process list)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from service.server import JUNCTURE, Server, free_port

TOKEN = "metrics-secret-0123456789abcdef"


def _bundle(root: Path) -> Path:
    bundle = root / "bundle"
    bundle.mkdir()
    (bundle / "j.yaml").write_text("journey: j\ncheckpoints:\n  '*': [{deny: no}]\n")
    return bundle


def _check(server: Server) -> None:
    url = f"{server.url}/metrics"
    anonymous = httpx.get(url, timeout=10)
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "auth.missing")
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    assert "juncture_decisions" not in anonymous.text
    for wrong in (TOKEN[:-1], TOKEN + "x", "x" * len(TOKEN)):
        answer = httpx.get(url, headers={"Authorization": f"Bearer {wrong}"}, timeout=10)
        assert answer.status_code == 401, answer.text
    basic = httpx.get(url, headers={"Authorization": f"Basic {TOKEN}"}, timeout=10)
    assert basic.status_code == 401
    ok = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert ok.status_code == 200 and "juncture_decisions" in ok.text, ok.text
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200  # still open


def test_metrics_without_token_refused_with_token_file(tmp_path: Path):
    token_file = tmp_path / "metrics-token"
    token_file.write_text(TOKEN + "\n")
    server = Server(tmp_path / "j.db", _bundle(tmp_path),
                    args=("--metrics-token-file", str(token_file))).start()  # fmt: skip
    try:
        _check(server)
    finally:
        server.stop()


def test_metrics_without_token_refused_with_token_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("JUNCTURE_METRICS_TOKEN", TOKEN)
    server = Server(tmp_path / "j.db", _bundle(tmp_path)).start()
    try:
        _check(server)
    finally:
        server.stop()


def test_metrics_token_file_empty_refused_at_start(tmp_path: Path):
    token_file = tmp_path / "metrics-token"
    token_file.write_text("\n")
    args = ["serve", "--db", str(tmp_path / "j.db"), "--bundle", str(_bundle(tmp_path)),
            "--port", str(free_port()), "--metrics-token-file", str(token_file)]  # fmt: skip
    ran = subprocess.run([str(JUNCTURE), *args], capture_output=True, timeout=30, check=False)
    assert ran.returncode == 2
    assert b"holds no metrics token" in ran.stdout + ran.stderr
