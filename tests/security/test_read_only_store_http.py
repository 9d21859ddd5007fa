"""`/healthz` is not ok when the database refuses writes.

A database that became read-only (a read-only file or file system) still answers reads, so
`/healthz` said ok while every session start, verification and decision record failed. It
now probes a write (rolled back, at most every few seconds) and answers 503 with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from service.server import Server, file_modes_obeyed


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` unwritable (mode 0444); the server is started by `file_modes_obeyed`, so the
    mode binds even when the tests run as root."""
    path.chmod(0o444)
    try:
        yield
    finally:
        path.chmod(0o600)


def test_healthz_not_ok_when_the_database_is_read_only(tmp_path: Path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "j.yaml").write_text("journey: j\ncheckpoints:\n  '*': [{deny: no}]\n")
    db = tmp_path / "j.db"
    server = Server(db, bundle).start()
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    server.stop()
    with read_only(db):
        server = Server(db, bundle, preexec=file_modes_obeyed()).start()
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
