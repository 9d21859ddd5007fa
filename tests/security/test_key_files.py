"""Key files are made once, complete, and readable by their owner only.

Workers starting together (``juncture serve --workers 2``) each load the SSF signing key
and the secrets key file, creating them when absent: two creating at once made one crash
(the file existed when it tried to create it) or read a half-written file. And the files
holding password hashes, session handles and keys were created world-readable.
"""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path
from typing import Any

import pytest

from juncture.service.authn import load_or_create_keys
from juncture.service.transmit import load_signer

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
