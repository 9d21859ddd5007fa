"""`/healthz` is not ok when the database refuses writes.

A database that became read-only (a read-only file or file system) still answers reads, so
`/healthz` said ok while every session start, verification and decision record failed. It
now probes a write (rolled back, at most every few seconds) and answers 503 with the reason.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from service.server import Server


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` unwritable: mode 0444, or for root (whom modes do not stop) immutable."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o600)
        return
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip("cannot make a file read-only for root here (chattr +i refused)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_healthz_not_ok_when_the_database_is_read_only(tmp_path: Path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "j.yaml").write_text("journey: j\ncheckpoints:\n  '*': [{deny: no}]\n")
    db = tmp_path / "j.db"
    server = Server(db, bundle).start()
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    server.stop()
    with read_only(db):
        server = Server(db, bundle).start()
        try:
            health = httpx.get(f"{server.url}/healthz", timeout=10)
            assert health.status_code == 503, health.text
            assert health.json()["code"] == "unavailable.store"
            assert "writes" in health.json()["detail"] and "readonly" in health.json()["detail"]
        finally:
            server.stop()
    server = Server(db, bundle).start()  # writable again: ok again
    try:
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    finally:
        server.stop()
