"""Key files are made once, complete, and readable by their owner only.

Workers starting together (``juncture serve --workers 2``) each load the SSF signing key
and the secrets key file, creating them when absent: two creating at once made one crash
(the file existed when it tried to create it) or read a half-written file. And the files
holding password hashes, session handles and keys were created world-readable.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from juncture.methods.delivery import Message, Outbox
from juncture.service.authn import load_or_create_keys
from juncture.service.transmit import load_signer
from service.server import Server
from service.test_http import admin

PROCESSES = 6


def _load_signer(path: str, ready: Any) -> str:
    ready.wait()
    return str(load_signer(Path(path)).kid)


def _load_keys(path: str, ready: Any) -> str:
    ready.wait()
    return load_or_create_keys(Path(path)).code_key


def _race(target, path: Path) -> list[str]:
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        ready = manager.Barrier(PROCESSES)
        with context.Pool(PROCESSES) as pool:
            results = [pool.apply_async(target, (str(path), ready)) for _ in range(PROCESSES)]
            return [r.get(timeout=60) for r in results]


@pytest.mark.parametrize(("target", "name"), [(_load_signer, "ssf-key.json"),
                                              (_load_keys, "keys")])  # fmt: skip
def test_key_file_creation_race_one_key_for_all_workers(tmp_path: Path, target, name: str):
    """Workers racing to create a key file all get the one key the winner wrote."""
    for attempt in range(3):
        path = tmp_path / f"{attempt}.{name}"
        keys = _race(target, path)
        assert len(set(keys)) == 1, keys
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_database_and_secret_files_are_private(tmp_path: Path):
    """I10: the database (password hashes, session handles), its -wal and -shm, the admin
    token and the key files are created readable by their owner only, whatever the umask."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "j.yaml").write_text("journey: j\ncheckpoints:\n  '*': [{deny: no}]\n")
    old = os.umask(0o022)
    try:
        server = Server(tmp_path / "j.db", bundle).start()
    finally:
        os.umask(old)
    try:
        with admin(server) as client:  # a write: the -wal and -shm exist now
            assert client.post("/admin/v1/apps", json={"name": "web"}).status_code == 201
        made = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("j.db"))
        assert {"j.db", "j.db-wal", "j.db-shm", "j.db.admin-token", "j.db.keys"} <= set(made)
        modes = {name: oct(stat.S_IMODE((tmp_path / name).stat().st_mode)) for name in made}
        assert modes == dict.fromkeys(made, oct(0o600)), modes
    finally:
        server.stop()


def test_development_outbox_of_email_codes_is_private(tmp_path: Path):
    """I10: the development outbox (``--outbox``) holds email codes: owner-only."""
    outbox = tmp_path / "outbox.jsonl"
    old = os.umask(0o022)
    try:
        asyncio.run(Outbox(outbox).send(Message(to="a@example.com", subject="s", text="123456")))
    finally:
        os.umask(old)
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o600
